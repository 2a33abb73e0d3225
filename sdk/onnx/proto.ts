/**
 * ONNX's protobuf messages through protobufjs (its light build: reflection from the JSON
 * descriptor of the official onnx.proto in `schema.ts`, no `.proto` parsing and no `fs`, so the
 * same code runs in Node and browsers). The wire format is the library's; this file only types
 * the messages edgegrad reads and writes and turns every decoding failure into a FormatError.
 */
import protobuf from 'protobufjs/light.js';
import { ArgumentError, FormatError } from '../errors.js';
import { describe, MAX_ELEMENTS, MAX_RANK } from '../args.js';
import { ONNX_SCHEMA } from './schema.js';

/** ONNX `TensorProto.DataType` codes edgegrad reads or writes. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;
/** ONNX `AttributeProto.AttributeType` codes. */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;
/** The IR version written (ONNX 1.12+, what opset 17 ships with: IR 8). */
export const IR_VERSION = 8;

/** A `TensorProto` (the fields edgegrad uses). */
export interface TensorProto {
  name?: string;
  dims?: number[];
  dataType?: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  docString?: string;
}
/** An `AttributeProto`. */
export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  docString?: string;
}
/** A `NodeProto`. */
export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  opType: string;
  domain?: string;
  attribute?: AttributeProto[];
  docString?: string;
}
/** One dimension of a `TensorShapeProto`: a size or a symbolic name. */
export interface Dim {
  dimValue?: number;
  dimParam?: string;
}
/** A `ValueInfoProto` for a tensor value. */
export interface ValueInfoProto {
  name: string;
  type?: { tensorType?: { elemType?: number; shape?: { dim?: Dim[] } } };
  docString?: string;
}
/** A `GraphProto`. */
export interface GraphProto {
  name?: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
  docString?: string;
}
/** An `OperatorSetIdProto`. */
export interface OpsetId {
  domain?: string;
  version: number;
}
/** A `ModelProto`. */
export interface ModelProto {
  irVersion: number;
  opsetImport: OpsetId[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph: GraphProto;
}

let modelType: protobuf.Type | null = null;
function model(): protobuf.Type {
  modelType ??= protobuf.Root.fromJSON(ONNX_SCHEMA).lookupType('onnx.ModelProto');
  return modelType;
}

/** Serialises a model with protobufjs (deterministic: field order of the schema, no maps). */
export function encodeModel(m: ModelProto): Uint8Array {
  const t = model();
  const msg = t.fromObject(m as unknown as Record<string, unknown>);
  // A plain, unshared Uint8Array in every runtime (Node's protobufjs writer returns a pooled Buffer).
  return new Uint8Array(t.encode(msg).finish());
}

/** Most bytes `decodeModel` reads unless the caller allows more (ONNX files over 2 GiB use external data, which edgegrad does not read). */
export const DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;

/**
 * Parses ONNX bytes into a `ModelProto`. Anything protobufjs rejects (truncated input, bad wire
 * types, lengths past the end, nesting deep enough to exhaust the stack) is a FormatError; so is a
 * model without a graph. Field values are checked later by the importer, node by node.
 */
export function decodeModel(bytes: Uint8Array, maxBytes = DEFAULT_MAX_BYTES): ModelProto {
  if (!(bytes instanceof Uint8Array)) throw new ArgumentError(`ONNX model bytes must be a Uint8Array, got ${describe(bytes)}`);
  if (bytes.length > maxBytes) throw new FormatError(`ONNX model is ${bytes.length} bytes, over the limit of ${maxBytes} (raise maxBytes to allow it)`);
  if (bytes.length === 0) throw new FormatError('ONNX model is empty (0 bytes)');
  let obj: ModelProto;
  try {
    const t = model();
    obj = t.toObject(t.decode(bytes), { longs: Number, enums: Number, arrays: true, defaults: false }) as unknown as ModelProto;
  } catch (e) {
    const why = e instanceof RangeError && /call stack/i.test(e.message) ? 'nested too deeply' : (e as Error)?.message ?? String(e);
    throw new FormatError(`ONNX model is not a valid ModelProto: ${String(why).slice(0, 120)}`);
  }
  if (!obj.graph) throw new FormatError('ONNX model has no graph');
  const g = obj.graph;
  for (const k of ['node', 'initializer', 'input', 'output'] as const) (g as unknown as Record<string, unknown[]>)[k] ??= [];
  return obj;
}

/** The dims of a tensor proto, checked: non-negative integers, rank and element count within the engine's limits. */
export function checkedDims(t: TensorProto, what: string): number[] {
  const dims = t.dims ?? [];
  if (dims.length > MAX_RANK) throw new FormatError(`${what}: rank ${dims.length} is over the limit of ${MAX_RANK}`);
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new FormatError(`${what}: dimension ${describe(d)} is not a non-negative integer`);
    n *= d;
    if (n > MAX_ELEMENTS) throw new FormatError(`${what}: ${dims.join('x')} elements are over the limit of ${MAX_ELEMENTS}`);
  }
  return dims;
}

const WIDTH: Record<number, number> = { [DataType.FLOAT]: 4, [DataType.UINT8]: 1, [DataType.INT8]: 1, [DataType.INT32]: 4, [DataType.INT64]: 8 };

/**
 * The values of a tensor proto as numbers (float32 as Float32Array; int64 values must be safe
 * integers). Raw data is little-endian, as ONNX specifies; typed fields are used otherwise.
 */
export function tensorValues(t: TensorProto, what: string): { dims: number[]; dataType: number; data: Float32Array | Int32Array | Int8Array | Uint8Array | number[] } {
  const dims = checkedDims(t, what);
  const n = dims.reduce((a, b) => a * b, 1);
  const dt = t.dataType ?? 0;
  const width = WIDTH[dt];
  if (width === undefined) throw new FormatError(`${what}: data type ${dt} is not supported (float32, int8, uint8, int32, int64 are)`);
  const raw = t.rawData;
  if (raw && raw.length) {
    if (raw.length !== n * width) throw new FormatError(`${what}: raw data has ${raw.length} bytes, its shape [${dims.join(', ')}] needs ${n * width}`);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    if (dt === DataType.FLOAT) return { dims, dataType: dt, data: Float32Array.from({ length: n }, (_, i) => view.getFloat32(4 * i, true)) };
    if (dt === DataType.INT32) return { dims, dataType: dt, data: Int32Array.from({ length: n }, (_, i) => view.getInt32(4 * i, true)) };
    if (dt === DataType.INT8) return { dims, dataType: dt, data: new Int8Array(raw.slice().buffer) };
    if (dt === DataType.UINT8) return { dims, dataType: dt, data: raw.slice() };
    const out: number[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = safe(view.getBigInt64(8 * i, true), what);
    return { dims, dataType: dt, data: out };
  }
  const field = dt === DataType.FLOAT ? t.floatData : dt === DataType.INT64 ? t.int64Data : t.int32Data;
  const vals = field ?? [];
  if (vals.length !== n) throw new FormatError(`${what}: holds ${vals.length} values, its shape [${dims.join(', ')}] needs ${n}`);
  if (dt === DataType.FLOAT) return { dims, dataType: dt, data: Float32Array.from(vals) };
  if (dt === DataType.INT64) return { dims, dataType: dt, data: vals.map((v) => safe(v, what)) };
  if (dt === DataType.INT32) return { dims, dataType: dt, data: Int32Array.from(vals) };
  return { dims, dataType: dt, data: dt === DataType.INT8 ? Int8Array.from(vals) : Uint8Array.from(vals) };
}

function safe(v: bigint | number, what: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new FormatError(`${what}: int64 value ${String(v).slice(0, 24)} is out of range`);
  return n;
}

/** A tensor proto holding `data` (little-endian raw data). */
export function tensorProto(name: string, dims: number[], data: Float32Array | Int32Array | Int8Array | Uint8Array | BigInt64Array): TensorProto {
  const dataType = data instanceof Float32Array ? DataType.FLOAT : data instanceof Int32Array ? DataType.INT32
    : data instanceof Int8Array ? DataType.INT8 : data instanceof Uint8Array ? DataType.UINT8 : DataType.INT64;
  // Copies, so the proto never aliases engine memory; little-endian is every platform JS runs on.
  const rawData = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  return { name, dims, dataType, rawData };
}
