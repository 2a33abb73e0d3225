/**
 * Bounded JSON parsing for files we do not trust: the size is checked before decoding, the
 * nesting depth and the number of top-level entries are counted by a linear scan before
 * `JSON.parse` (deep nesting makes `JSON.parse` and recursive checks throw RangeError; a million
 * entries cost seconds and gigabytes), and every failure is a FormatError naming the source
 * without quoting its text. `JSON.parse` defines keys as own data properties, so a key
 * `__proto__` stays a key; validate the result with `validate.ts`.
 */
import { FormatError } from '../errors.js';

export interface JsonLimits {
  /** Most bytes (UTF-8) accepted (default 16 MiB). */
  maxBytes?: number;
  /** Most nesting levels of arrays and objects (default 64). */
  maxDepth?: number;
  /** Most entries of the top-level object or array (default unbounded). */
  maxEntries?: number;
  /** The error message when `maxEntries` is passed (default: "more than N top-level entries"). */
  entriesMessage?: string;
}

export const DEFAULT_JSON_BYTES = 16 * 1024 * 1024;

/**
 * Scans JSON text for its nesting depth and top-level entry count (commas + 1), throwing FormatError
 * as soon as a limit is passed (strings are skipped, so brackets inside them do not count).
 */
function scan(text: string, source: string, maxDepth: number, maxEntries: number, entriesMessage?: string): void {
  let depth = 0;
  let commas = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) throw new FormatError(`${source}: JSON nested more than ${maxDepth} levels deep`);
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if (c === 0x2c && depth === 1 && ++commas >= maxEntries) {
      throw new FormatError(`${source}: ${entriesMessage ?? `more than ${maxEntries} top-level entries`}`);
    }
  }
}

/** Decodes UTF-8 strictly; FormatError naming the source when the bytes are not UTF-8. */
export function decodeUtf8(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError(`${source} is not valid UTF-8 text`);
  }
}

/** Parses JSON text or UTF-8 bytes within `limits`; FormatError naming `source` on any failure. */
export function parseJson(input: string | Uint8Array, source: string, limits: JsonLimits = {}): unknown {
  const maxBytes = limits.maxBytes ?? DEFAULT_JSON_BYTES;
  // A JS string of n UTF-16 units has at most 3n UTF-8 bytes and at least n.
  const size = typeof input === 'string' ? input.length : input.byteLength;
  if (size > maxBytes) throw new FormatError(`${source} is ${size} bytes, more than the ${maxBytes} allowed for JSON`);
  const text = typeof input === 'string' ? input : decodeUtf8(input, source);
  scan(text, source, limits.maxDepth ?? 64, limits.maxEntries ?? Infinity, limits.entriesMessage);
  try {
    return JSON.parse(text);
  } catch (e) {
    // V8 quotes the text around the error: report only where it is.
    const at = /position (\d+)/.exec((e as Error).message);
    throw new FormatError(`${source} is not valid JSON${at ? ` (error at character ${at[1]})` : ''}`);
  }
}
