/**
 * `eg.onnx`: ONNX export and import, the bridge to ONNX Runtime and other engines.
 *
 * ```ts
 * const bytes = eg.onnx.exportModel(model, { inputShapes: [1, 28, 28, 1] }); // serve with onnxruntime
 * const back = eg.onnx.importModel(bytes);                                    // a runnable Module
 * ```
 *
 * Protobuf goes through protobufjs with the official onnx.proto (ONNX 1.23.2, Apache-2.0,
 * vendored in sdk/onnx with its licence). See `export.ts` for the layer mapping and layouts.
 */
import { ArgumentError } from '../errors.js';
import { checkOptions, describe } from '../args.js';
import { decodeModel, DEFAULT_MAX_BYTES } from './proto.js';
import { OnnxModule } from './graph-module.js';
import { OPS } from './ops.js';

export { exportModel, exportableLayers } from './export.js';
export type { ExportOptions } from './export.js';
export { OnnxModule, MIN_OPSET, MAX_OPSET } from './graph-module.js';
export { ONNX_SCHEMA_VERSION } from './schema.js';
export { DEFAULT_MAX_BYTES } from './proto.js';

/** Options of `importModel`. */
export interface ImportOptions {
  /** Largest model accepted, in bytes (default 1 GiB); larger input is a FormatError before parsing. */
  maxBytes?: number;
}

/**
 * Reads ONNX bytes into a runnable `OnnxModule` (its `forward` returns the first graph output).
 * Malformed, truncated or hostile bytes throw FormatError; a model using operators outside
 * `supportedOps()` throws ArgumentError naming every one of them.
 */
export function importModel(bytes: Uint8Array | ArrayBuffer, opts: ImportOptions = {}): OnnxModule {
  opts = checkOptions(opts, 'importModel options');
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new ArgumentError(`importModel maxBytes must be a positive integer, got ${describe(opts.maxBytes)}`);
  const u8 = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  return new OnnxModule(decodeModel(u8, maxBytes));
}

/** The ONNX operators (default domain) `importModel` runs. */
export function supportedOps(): string[] {
  return Object.keys(OPS);
}
