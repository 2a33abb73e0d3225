/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping names to
 * `{dtype, shape, data_offsets}` (plus optional string `__metadata__`), then raw little-endian
 * data. Reading checks everything a corrupt or hostile file could get wrong and throws
 * FormatError naming it. F16, BF16 and F64 tensors are widened/narrowed to float32 and I64 to
 * int32 on load (what PyTorch exports often holds).
 */
import { ArgumentError, FormatError } from '../errors.js';
import { describe, MAX_ELEMENTS, MAX_RANK } from '../args.js';
import { tensor } from '../creation.js';
import { Tensor, type DType } from '../tensor.js';
import { parseJson } from './json.js';
import { fail, keyPath, v, validate, type Schema } from './validate.js';

const MAX_HEADER = 100 * 1024 * 1024;
/** Most tensors a file may hold unless the caller allows more (`maxTensors`). */
export const DEFAULT_MAX_TENSORS = 100_000;
const CODES: Record<DType, string> = { float32: 'F32', int32: 'I32', int8: 'I8' };
const SIZES: Record<string, number> = { F32: 4, I32: 4, I8: 1, U8: 1, F16: 2, BF16: 2, F64: 8, I64: 8 };

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Serialises named tensors (and string metadata). Data starts 8-byte aligned. */
export function encodeSafetensors(tensors: Record<string, Tensor> | Map<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  if (tensors === null || typeof tensors !== 'object' || Array.isArray(tensors)) {
    throw new ArgumentError(`safetensors needs named tensors ({ name: Tensor } or a Map), got ${describe(tensors)}`);
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata) || Object.values(metadata).some((m) => typeof m !== 'string')) {
    throw new ArgumentError(`safetensors metadata must be { key: string }, got ${describe(metadata)}`);
  }
  const src = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  for (const [name, t] of src) {
    if (typeof name !== 'string') throw new ArgumentError(`safetensors: tensor names must be strings, got ${describe(name)}`);
    if (!(t instanceof Tensor)) throw new ArgumentError(`safetensors: '${shortName(name)}' must be a Tensor, got ${describe(t)}`);
  }
  const names = [...src.keys()].sort();
  // No prototype: a tensor named `__proto__` must be written as a key, not set the prototype.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new ArgumentError("'__metadata__' is reserved by safetensors and cannot name a tensor");
    const t = src.get(name)!;
    const d = t.dataSync();
    const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength); // typed arrays are little-endian on every platform we run on
    header[name] = { dtype: CODES[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    datas.push(bytes);
    offset += bytes.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const b of datas) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}

export interface ParsedSafetensors {
  /** Entries by name (an object without a prototype: any name is an ordinary key). */
  entries: Record<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  dataStart: number;
}

/** edgegrad's dtype for each stored dtype (the others are converted on load). */
const OURS: Record<string, DType> = { F32: 'float32', F16: 'float32', BF16: 'float32', F64: 'float32', I32: 'int32', U8: 'int32', I64: 'int32', I8: 'int8' };
const BYTES: Record<DType, number> = { float32: 4, int32: 4, int8: 1 };

/** The dtype an entry has once loaded. */
export function entryDType(e: SafetensorsEntry): DType {
  return OURS[e.dtype];
}
/** Elements of an entry (its shape's product; checked below the engine's limit when parsed). */
export function entrySize(e: SafetensorsEntry): number {
  return e.shape.reduce((a, d) => a * d, 1);
}
/** Bytes an entry takes once loaded into the engine. */
export function entryEngineBytes(e: SafetensorsEntry): number {
  return entrySize(e) * BYTES[entryDType(e)];
}

const ENTRY: Schema<SafetensorsEntry> = v.refine(v.object({
  dtype: v.oneOf(Object.keys(SIZES)),
  shape: v.array(v.int({ min: 0, max: MAX_ELEMENTS }), { max: MAX_RANK }),
  data_offsets: v.tuple<[number, number]>([v.int({ min: 0 }), v.int({ min: 0 })]),
}), (e) => {
  // Any zero size makes the product 0; otherwise stop as soon as it passes the limit (no overflow).
  let n = e.shape.includes(0) ? 0 : 1;
  for (const d of e.shape) if (n > 0 && (n *= d) > MAX_ELEMENTS) return `has shape [${e.shape.join(', ')}], more than the ${MAX_ELEMENTS} elements a tensor can hold`;
  if (e.data_offsets[1] < e.data_offsets[0]) return `has data_offsets [${e.data_offsets.join(', ')}] that end before they start`;
  if (n * SIZES[e.dtype] !== e.data_offsets[1] - e.data_offsets[0]) {
    return `has shape [${e.shape.join(', ')}] of ${e.dtype}, which needs ${n * SIZES[e.dtype]} bytes, but its data_offsets span ${e.data_offsets[1] - e.data_offsets[0]}`;
  }
  return null;
});
const METADATA = v.record(v.string({ maxLength: MAX_HEADER }), { maxKeys: 4096 });
const NAME = v.string({ minLength: 1, maxLength: 1024 });

/** Header of a safetensors file: checked sizes, names, dtypes, shapes and offsets, before any tensor exists. */
const HEADER: Schema<{ entries: Record<string, SafetensorsEntry>; metadata: Record<string, string> }> = {
  expect: 'an object',
  check(x, path) {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) fail(path, 'must be a JSON object');
    const entries: Record<string, SafetensorsEntry> = Object.create(null);
    let metadata: Record<string, string> = Object.create(null);
    for (const [name, e] of Object.entries(x)) {
      if (name === '__metadata__') metadata = METADATA.check(e, keyPath(path, name));
      else entries[NAME.check(name, keyPath(path, name))] = ENTRY.check(e, keyPath(path, name));
    }
    return { entries, metadata };
  },
};

/**
 * Reads and validates the header (no tensor is created). At most `maxTensors` entries (default
 * 100,000), counted before the header is parsed.
 */
export function parseSafetensorsHeader(buf: Uint8Array, o: { maxTensors?: number } = {}): ParsedSafetensors {
  if (!(buf instanceof Uint8Array)) throw new FormatError('not a safetensors file: expected bytes (a Uint8Array or ArrayBuffer)');
  if (buf.length < 8) throw new FormatError(`not a safetensors file: ${buf.length} bytes is shorter than the 8-byte header length`);
  const n = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, buf.length - 8))) {
    throw new FormatError(`corrupt safetensors header: it claims ${n} bytes but the file has ${buf.length - 8} after the length field (at most ${MAX_HEADER})`);
  }
  const hlen = Number(n);
  // +1: the metadata entry does not count.
  const maxEntries = (o.maxTensors ?? DEFAULT_MAX_TENSORS) + 1;
  const tooMany = `more than the ${maxEntries - 1} tensors allowed (option maxTensors)`;
  const json = parseJson(buf.subarray(8, 8 + hlen), 'safetensors header', { maxBytes: MAX_HEADER, maxDepth: 4, maxEntries, entriesMessage: tooMany });
  const { entries, metadata } = validate(HEADER, json, 'safetensors header');
  const count = Object.keys(entries).length;
  if (count > maxEntries - 1) throw new FormatError(`safetensors header: ${count} tensors, ${tooMany}`);
  const dataStart = 8 + hlen;
  const dataLen = buf.length - dataStart;
  const spans: [number, number, string][] = [];
  for (const [name, e] of Object.entries(entries)) {
    const [b, end] = e.data_offsets;
    if (end > dataLen) throw new FormatError(`safetensors entry '${shortName(name)}' has data offsets [${b}, ${end}] outside the ${dataLen}-byte data section`);
    spans.push([b, end, name]);
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let pos = 0;
  for (const [b, end, name] of spans) {
    if (b !== pos) throw new FormatError(`safetensors data is not contiguous: '${shortName(name)}' starts at ${b}, expected ${pos} (overlap or gap)`);
    pos = end;
  }
  if (pos !== dataLen) throw new FormatError(`safetensors data section has ${dataLen - pos} trailing bytes not described by the header`);
  return { entries, metadata, dataStart };
}

/** A tensor name for messages: at most 60 characters. */
export function shortName(name: string): string {
  return name.length > 60 ? `${name.slice(0, 60)}...` : name;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** One tensor's values as a typed array of edgegrad's dtypes. */
function decodeEntry(name: string, e: SafetensorsEntry, buf: Uint8Array, dataStart: number): Tensor {
  name = shortName(name);
  const start = buf.byteOffset + dataStart + e.data_offsets[0];
  const len = e.data_offsets[1] - e.data_offsets[0];
  const bytes = buf.buffer.slice(start, start + len) as ArrayBuffer; // copy: aligned for typed arrays
  const dv = new DataView(bytes);
  const count = e.shape.reduce((a, d) => a * d, 1);
  switch (e.dtype) {
    case 'F32':
      return tensor(new Float32Array(bytes), e.shape, 'float32');
    case 'I32':
      return tensor(new Int32Array(bytes), e.shape, 'int32');
    case 'I8':
      return tensor(new Int8Array(bytes), e.shape, 'int8');
    case 'U8':
      return tensor(Int32Array.from(new Uint8Array(bytes)), e.shape, 'int32');
    case 'F16':
      return tensor(Float32Array.from({ length: count }, (_, i) => f16ToF32(dv.getUint16(2 * i, true))), e.shape, 'float32');
    case 'BF16': {
      const bits = new Uint32Array(count);
      for (let i = 0; i < count; i++) bits[i] = dv.getUint16(2 * i, true) << 16; // bf16 is the top half of an f32
      return tensor(new Float32Array(bits.buffer), e.shape, 'float32');
    }
    case 'F64':
      return tensor(Float32Array.from({ length: count }, (_, i) => dv.getFloat64(8 * i, true)), e.shape, 'float32');
    case 'I64':
      return tensor(Int32Array.from({ length: count }, (_, i) => {
        const v = dv.getBigInt64(8 * i, true);
        if (v > 2147483647n || v < -2147483648n) throw new FormatError(`safetensors entry '${name}': int64 value ${v} does not fit in int32`);
        return Number(v);
      }), e.shape, 'int32');
    default:
      throw new FormatError(`safetensors entry '${name}' has unsupported dtype ${e.dtype}`);
  }
}

/** One entry of a parsed file as a new tensor (the caller owns it). */
export function decodeTensor(buf: Uint8Array, parsed: ParsedSafetensors, name: string): Tensor {
  if (!Object.hasOwn(parsed.entries, name)) throw new FormatError(`safetensors file has no tensor '${shortName(name)}'`);
  return decodeEntry(name, parsed.entries[name], buf, parsed.dataStart);
}

/**
 * Decodes every tensor (new tensors the caller owns; the result has no prototype, so any name is
 * an ordinary key) and the metadata. `maxTensors` bounds the entry count (default 100,000).
 */
export function decodeSafetensors(data: Uint8Array | ArrayBuffer, o: { maxTensors?: number } = {}): {
  /** Every tensor by name. */
  tensors: Record<string, Tensor>;
  /** The header's `__metadata__` strings. */
  metadata: Record<string, string>;
} {
  const buf = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array);
  const parsed = parseSafetensorsHeader(buf, o);
  const tensors: Record<string, Tensor> = Object.create(null);
  try {
    for (const name of Object.keys(parsed.entries)) tensors[name] = decodeTensor(buf, parsed, name);
  } catch (err) {
    for (const t of Object.values(tensors)) t.dispose();
    throw err;
  }
  return { tensors, metadata: parsed.metadata };
}
