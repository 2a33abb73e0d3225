/**
 * The `eg.he` wire format: every context, key bundle, secret key and ciphertext crosses the wire
 * as one frame
 *
 *   "EGHE" | u8 version (1) | u8 kind | u16 section count | u32 metadata length | metadata (JSON)
 *   | per section: u32 length | bytes                                      (little-endian)
 *
 * Metadata is parsed with the bounded JSON parser and checked by a `sdk/io/validate.ts` schema;
 * sections are SEAL's own serialisations, each checked against its SEAL header and a size bound
 * computed from the parameters before SEAL's loader sees it, so a hostile length or a truncated
 * frame is a FormatError, never an allocation SEAL makes on an attacker's word.
 */
import { FormatError } from '../errors.js';
import { parseJson } from '../io/json.js';
import { validate, type Schema } from '../io/validate.js';

/** Frame kinds. */
export const KIND = { context: 1, publicBundle: 2, ciphertext: 3, secretKey: 4 } as const;
export type Kind = (typeof KIND)[keyof typeof KIND];
const KIND_NAMES: Record<number, string> = { 1: 'context', 2: 'public bundle', 3: 'ciphertext', 4: 'secret key' };

const MAGIC = [0x45, 0x47, 0x48, 0x45]; // "EGHE"
const VERSION = 1;
const HEADER = 12;
/** Largest frame accepted (1 GiB): well above a 32768-degree key bundle with a few dozen rotation keys. */
export const MAX_FRAME_BYTES = 1 << 30;
/** Most sections in a frame (ciphertext chunks, keys). */
export const MAX_SECTIONS = 4096;
const MAX_META_BYTES = 1 << 20;

/** Encodes a frame. */
export function writeFrame(kind: Kind, meta: unknown, sections: Uint8Array[]): Uint8Array {
  const metaBytes = new TextEncoder().encode(JSON.stringify(meta));
  const total = HEADER + metaBytes.length + sections.reduce((a, s) => a + 4 + s.length, 0);
  if (sections.length > MAX_SECTIONS || total > MAX_FRAME_BYTES) {
    throw new FormatError(`eg.he: a ${KIND_NAMES[kind]} of ${total} bytes in ${sections.length} sections exceeds the wire format's limits (${MAX_FRAME_BYTES} bytes, ${MAX_SECTIONS} sections)`);
  }
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  out[5] = kind;
  dv.setUint16(6, sections.length, true);
  dv.setUint32(8, metaBytes.length, true);
  out.set(metaBytes, HEADER);
  let at = HEADER + metaBytes.length;
  for (const s of sections) {
    dv.setUint32(at, s.length, true);
    out.set(s, at + 4);
    at += 4 + s.length;
  }
  return out;
}

/** A parsed frame: checked metadata and the sections (views into the input). */
export interface Frame<M> {
  meta: M;
  sections: Uint8Array[];
}

/** Parses and checks a frame of `kind` whose metadata must match `schema`. */
export function readFrame<M>(bytes: unknown, kind: Kind, schema: Schema<M>, source: string): Frame<M> {
  const want = KIND_NAMES[kind];
  if (!(bytes instanceof Uint8Array)) throw new FormatError(`${source}: expected the bytes of an eg.he ${want} (Uint8Array), got ${bytes === null ? 'null' : typeof bytes}`);
  if (bytes.length > MAX_FRAME_BYTES) throw new FormatError(`${source} is ${bytes.length} bytes, more than the ${MAX_FRAME_BYTES} an eg.he frame may have`);
  if (bytes.length < HEADER || MAGIC.some((m, i) => bytes[i] !== m)) throw new FormatError(`${source} is not an eg.he frame (bad magic or shorter than its ${HEADER}-byte header)`);
  if (bytes[4] !== VERSION) throw new FormatError(`${source}: eg.he frame version ${bytes[4]} is not supported (this build reads version ${VERSION})`);
  if (bytes[5] !== kind) throw new FormatError(`${source}: expected an eg.he ${want}, got a ${KIND_NAMES[bytes[5]] ?? `frame of unknown kind ${bytes[5]}`}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = dv.getUint16(6, true);
  const metaLen = dv.getUint32(8, true);
  if (count > MAX_SECTIONS) throw new FormatError(`${source}: ${count} sections, more than ${MAX_SECTIONS}`);
  if (metaLen > MAX_META_BYTES || HEADER + metaLen > bytes.length) throw new FormatError(`${source}: metadata length ${metaLen} runs past the end of the ${bytes.length}-byte frame`);
  const meta = validate(schema, parseJson(bytes.subarray(HEADER, HEADER + metaLen), `${source} metadata`, { maxBytes: MAX_META_BYTES, maxDepth: 8 }), `${source} metadata`);
  const sections: Uint8Array[] = [];
  let at = HEADER + metaLen;
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.length) throw new FormatError(`${source}: truncated before section ${i} of ${count}`);
    const len = dv.getUint32(at, true);
    if (len > bytes.length - at - 4) throw new FormatError(`${source}: section ${i} claims ${len} bytes but only ${bytes.length - at - 4} remain`);
    sections.push(bytes.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  if (at !== bytes.length) throw new FormatError(`${source}: ${bytes.length - at} unexpected bytes after the last section`);
  return { meta, sections };
}

/**
 * Checks a SEAL serialisation before SEAL loads it: SEAL's 16-byte header (magic 0xA15E, header
 * size 16, a known compression mode) whose declared size equals the section's length, and that
 * length within `maxBytes` (the largest such object the parameters allow).
 */
export function checkSealBlob(blob: Uint8Array, maxBytes: number, what: string): void {
  if (blob.length < 16) throw new FormatError(`${what}: ${blob.length} bytes is shorter than SEAL's 16-byte header`);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (dv.getUint16(0, true) !== 0xa15e || blob[2] !== 16) throw new FormatError(`${what}: not a SEAL serialisation (bad SEAL header magic)`);
  if (blob[5] !== 0 && blob[5] !== 2) throw new FormatError(`${what}: SEAL compression mode ${blob[5]} is not accepted (only none and zstd, whose frames declare their size)`);
  const declared = dv.getBigUint64(8, true);
  if (declared !== BigInt(blob.length)) throw new FormatError(`${what}: SEAL header declares ${declared} bytes but the section has ${blob.length}`);
  if (blob.length > maxBytes) throw new FormatError(`${what}: ${blob.length} bytes, more than the ${maxBytes} these parameters allow`);
  if (blob[5] === 2) {
    const inflated = zstdContentSize(blob.subarray(16), what);
    if (inflated > maxBytes) throw new FormatError(`${what}: decompresses to ${inflated} bytes, more than the ${maxBytes} these parameters allow`);
  }
}

/**
 * Total content size declared by the zstd frames of `data` (RFC 8878), walked block by block: every
 * frame must declare its size (zstd's decoder then refuses output beyond it), so a small
 * "decompression bomb" is refused here instead of making SEAL allocate gigabytes.
 */
function zstdContentSize(data: Uint8Array, what: string): number {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const bad = (why: string) => new FormatError(`${what}: invalid zstd data (${why})`);
  let at = 0;
  let total = 0;
  let frames = 0;
  while (at < data.length) {
    if (++frames > 64) throw bad('too many frames');
    if (at + 6 > data.length || dv.getUint32(at, true) !== 0xfd2fb528) throw bad('bad frame magic');
    const fhd = data[at + 4];
    const fcsFlag = fhd >> 6;
    const single = (fhd >> 5) & 1;
    const checksum = (fhd >> 2) & 1;
    const dictBytes = [0, 1, 2, 4][fhd & 3];
    const fcsBytes = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag];
    if (fcsBytes === 0) throw bad('a frame does not declare its content size');
    let p = at + 5 + (single ? 0 : 1) + dictBytes;
    if (p + fcsBytes > data.length) throw bad('truncated frame header');
    let size: number;
    if (fcsBytes === 1) size = data[p];
    else if (fcsBytes === 2) size = dv.getUint16(p, true) + 256;
    else if (fcsBytes === 4) size = dv.getUint32(p, true);
    else size = Number(dv.getBigUint64(p, true));
    total += size;
    p += fcsBytes;
    for (;;) {
      if (p + 3 > data.length) throw bad('truncated block');
      const header = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16);
      const type = (header >> 1) & 3;
      const blockSize = header >>> 3;
      if (type === 3) throw bad('reserved block type');
      p += 3 + (type === 1 ? 1 : blockSize);
      if (p > data.length) throw bad('block runs past the end');
      if (header & 1) break;
    }
    at = p + (checksum ? 4 : 0);
  }
  if (at !== data.length) throw bad('truncated checksum');
  return total;
}
