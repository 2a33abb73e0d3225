/**
 * Bundled data sets, loaded the same way in Node (from the package files) and in browsers (fetched
 * beside the bundle). Attribution: `assets/README.md`.
 */
import { FormatError } from './errors.js';

const isNode = typeof process !== 'undefined' && process.versions?.node != null && typeof window === 'undefined';

/** Reads a packaged (or user-given) file as bytes: from disk in Node, with fetch elsewhere. */
export async function readAsset(url: URL): Promise<Uint8Array> {
  if (isNode && url.protocol === 'file:') {
    const fsName = 'node:fs/promises';
    const fs = (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs/promises');
    return new Uint8Array(await fs.readFile(url));
  }
  const res = await fetch(url);
  if (!res.ok) throw new FormatError(`could not fetch ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Gunzips unless the bytes are already plain (servers often send .gz with Content-Encoding: gzip, which fetch decodes). */
async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  if (!(bytes[0] === 0x1f && bytes[1] === 0x8b)) return bytes;
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export interface Digits {
  /** `n x 64` pixel intensities 0..16, row-major 8x8 images. */
  images: Float32Array;
  /** `n` labels 0..9. */
  labels: Int32Array;
  n: number;
}

/**
 * The UCI optical digits (1797 8x8 images, 10 classes; Alpaydin & Kaynak 1998), bundled with
 * edgegrad. `url` overrides where the gzipped CSV is read from.
 */
export async function loadDigits(opts: { url?: string | URL } = {}): Promise<Digits> {
  const url = opts.url !== undefined
    ? new URL(String(opts.url), isNode ? undefined : globalThis.location?.href)
    : new URL('./assets/digits.csv.gz', import.meta.url);
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
