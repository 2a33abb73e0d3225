/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping names to
 * `{dtype, shape, data_offsets}` (plus optional string `__metadata__`), then raw little-endian
 * data. Reading checks everything a corrupt or hostile file could get wrong and throws
 * FormatError naming it. F16, BF16 and F64 tensors are widened/narrowed to float32 and I64 to
 * int32 on load (what PyTorch exports often holds).
 */
import { FormatError } from '../errors.js';
import { tensor } from '../creation.js';
import { Tensor, type DType } from '../tensor.js';

const MAX_HEADER = 100 * 1024 * 1024;
const CODES: Record<DType, string> = { float32: 'F32', int32: 'I32', int8: 'I8' };
const SIZES: Record<string, number> = { F32: 4, I32: 4, I8: 1, U8: 1, F16: 2, BF16: 2, F64: 8, I64: 8 };

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Serialises named tensors (and string metadata). Data starts 8-byte aligned. */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
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
  entries: Record<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  dataStart: number;
}

/** Reads and validates the header. */
export function parseSafetensorsHeader(buf: Uint8Array): ParsedSafetensors {
  if (buf.length < 8) throw new FormatError(`not a safetensors file: ${buf.length} bytes is shorter than the 8-byte header length`);
  const n = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, buf.length - 8))) {
    throw new FormatError(`corrupt safetensors header: it claims ${n} bytes but the file has ${buf.length - 8} after the length field`);
  }
  const hlen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + hlen)));
  } catch (e) {
    throw new FormatError(`corrupt safetensors header: not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new FormatError('corrupt safetensors header: not a JSON object');
  const dataStart = 8 + hlen;
  const dataLen = buf.length - dataStart;
  const entries: Record<string, SafetensorsEntry> = {};
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object' || Object.values(v).some((x) => typeof x !== 'string')) throw new FormatError('safetensors __metadata__ must map strings to strings');
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as SafetensorsEntry;
    if (!e || typeof e !== 'object' || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) {
      throw new FormatError(`safetensors entry '${name}' is malformed (needs dtype, shape and data_offsets)`);
    }
    const size = SIZES[e.dtype];
    if (!size) throw new FormatError(`safetensors entry '${name}' has unsupported dtype ${e.dtype} (supported: ${Object.keys(SIZES).join(', ')})`);
    if (!e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new FormatError(`safetensors entry '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    const [b, end] = e.data_offsets;
    if (!Number.isInteger(b) || !Number.isInteger(end) || b < 0 || end < b || end > dataLen) {
      throw new FormatError(`safetensors entry '${name}' has data offsets [${b}, ${end}] outside the ${dataLen}-byte data section`);
    }
    const count = e.shape.reduce((a, d) => a * d, 1);
    if (count * size !== end - b) {
      throw new FormatError(`safetensors entry '${name}': shape [${e.shape.join(', ')}] of ${e.dtype} needs ${count * size} bytes but its offsets span ${end - b}`);
    }
    entries[name] = e;
    spans.push([b, end, name]);
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let pos = 0;
  for (const [b, end, name] of spans) {
    if (b !== pos) throw new FormatError(`safetensors data is not contiguous: '${name}' starts at ${b}, expected ${pos} (overlap or gap)`);
    pos = end;
  }
  if (pos !== dataLen) throw new FormatError(`safetensors data section has ${dataLen - pos} trailing bytes not described by the header`);
  return { entries, metadata, dataStart };
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

/** Decodes every tensor (new tensors the caller owns) and the metadata. */
export function decodeSafetensors(data: Uint8Array | ArrayBuffer): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const buf = data instanceof Uint8Array ? data : new Uint8Array(data);
  const { entries, metadata, dataStart } = parseSafetensorsHeader(buf);
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [name, e] of Object.entries(entries)) tensors[name] = decodeEntry(name, e, buf, dataStart);
  } catch (err) {
    for (const t of Object.values(tensors)) t.dispose();
    throw err;
  }
  return { tensors, metadata };
}
