/**
 * Bundled data sets, loaded the same way in Node (from the package files) and in browsers (fetched
 * beside the bundle). Attribution: `assets/README.md`.
 */
import { ArgumentError, FormatError } from './errors.js';
import { checkOptions, describe } from './args.js';
import { readBytes, readStream } from './io/files.js';

const isNode = typeof process !== 'undefined' && process.versions?.node != null && typeof window === 'undefined';

/**
 * Reads a packaged (or user-given) file as bytes: from disk in Node (regular files only), with
 * fetch elsewhere, at most `maxBytes` (default 2 GiB; see `io/files.ts`). FormatError when the
 * file is missing, special, unreachable or too large.
 */
export async function readAsset(url: URL, o: { maxBytes?: number } = {}): Promise<Uint8Array> {
  return readBytes(url, { maxBytes: checkOptions(o, 'readAsset options').maxBytes, what: 'file' });
}

/** Most bytes a gunzipped data set may expand to (a small file must not inflate without bound). */
const MAX_GUNZIPPED = 256 * 1024 * 1024;

/** Gunzips unless the bytes are already plain (servers often send .gz with Content-Encoding: gzip, which fetch decodes). */
async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  if (!(bytes[0] === 0x1f && bytes[1] === 0x8b)) return bytes;
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream('gzip'));
  try {
    return await readStream(stream, MAX_GUNZIPPED, () => new FormatError(`gzip data expands past ${MAX_GUNZIPPED} bytes`));
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError('corrupt gzip data');
  }
}

/** The bundled UCI optical digits, as `loadDigits` returns them. */
export interface Digits {
  /** `n x 64` pixel intensities 0..16, row-major 8x8 images. */
  images: Float32Array;
  /** `n` labels 0..9. */
  labels: Int32Array;
  /** Number of examples. */
  n: number;
}

/**
 * The UCI optical digits (1797 8x8 images, 10 classes; Alpaydin & Kaynak 1998), bundled with
 * edgegrad. `url` overrides where the gzipped CSV is read from.
 */
export async function loadDigits(opts: { url?: string | URL } = {}): Promise<Digits> {
  opts = checkOptions(opts, 'loadDigits options');
  if (opts.url !== undefined && typeof opts.url !== 'string' && !(opts.url instanceof URL)) throw new ArgumentError(`loadDigits url must be a string or URL, got ${describe(opts.url)}`);
  let url: URL;
  try {
    url = opts.url !== undefined
      ? new URL(String(opts.url), isNode ? undefined : globalThis.location?.href)
      : new URL('./assets/digits.csv.gz', import.meta.url);
  } catch {
    throw new ArgumentError(`loadDigits url is not a valid URL: ${describe(String(opts.url))}`);
  }
  const text = new TextDecoder().decode(await gunzip(await readAsset(url)));
  const rows = text.split('\n').filter((l) => l.trim().length > 0);
  const n = rows.length;
  const images = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  rows.forEach((line, i) => {
    const cols = line.split(',');
    if (cols.length !== 65) throw new FormatError(`digits: row ${i} has ${cols.length} columns, expected 65`);
    for (let j = 0; j < 64; j++) images[i * 64 + j] = Number(cols[j]);
    labels[i] = Number(cols[64]);
  });
  return { images, labels, n };
}
