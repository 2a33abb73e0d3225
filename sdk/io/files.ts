/**
 * Reading files we may not trust, the same way in Node (from disk) and in browsers (fetch):
 *
 * - sizes are bounded: a file's size is checked before it is read, a download's Content-Length
 *   before its body, and the body is counted while it streams (a file or response that grows
 *   past the limit stops there);
 * - in Node only regular files are opened (never devices such as /dev/zero, FIFOs, sockets or
 *   directories), checked with stat before opening and again on the opened descriptor;
 * - a file named by another file (a model.json's `weightsFile`) must stay inside that file's
 *   folder: a plain relative path, resolved without leaving the folder, also after following
 *   symlinks (realpath) in Node, and on the same origin under the same directory for URLs;
 *   absolute paths, `..`, and URLs of any scheme are refused unless the caller allows it;
 * - every failure (missing file, permission, HTTP status, network) is a FormatError naming the
 *   path, never a raw ENOENT, and never quotes the file's contents.
 */
import { ArgumentError, FormatError } from '../errors.js';
import { describe } from '../args.js';

const isNode = typeof process !== 'undefined' && process.versions?.node != null && typeof window === 'undefined';

/** Default cap for weight files (2 GiB). */
export const DEFAULT_MAX_BYTES = 2 * 1024 * 1024 * 1024;

export interface ReadOptions {
  /** Most bytes read (default 2 GiB). */
  maxBytes?: number;
  /** What the file is, for messages ("model.json", "weights file"). */
  what?: string;
  /** A directory URL (ending in '/') the file must stay inside, after symlinks and redirects. */
  within?: URL;
}

async function nodeModules() {
  const fsName = 'node:fs/promises';
  const pathName = 'node:path';
  const urlName = 'node:url';
  return {
    fs: (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs/promises'),
    fsc: ((await import(/* @vite-ignore */ 'node:fs' as string)) as typeof import('node:fs')).constants,
    path: (await import(/* @vite-ignore */ pathName)) as typeof import('node:path'),
    url: (await import(/* @vite-ignore */ urlName)) as typeof import('node:url'),
  };
}

function checkMax(maxBytes: unknown): number {
  const m = maxBytes ?? DEFAULT_MAX_BYTES;
  if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 0) throw new ArgumentError(`maxBytes must be a non-negative integer, got ${describe(m)}`);
  return m;
}

function tooBig(what: string, where: string, size: number | string, max: number): FormatError {
  return new FormatError(`${what} ${where} is ${size} bytes, more than the ${max} allowed (option maxBytes)`);
}

/** The kind of a non-regular file, for messages. */
function kindOf(st: import('node:fs').Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** A FormatError for a failed file system call, naming the path and the reason (never the contents). */
function fsError(what: string, p: string, e: unknown): FormatError {
  const code = (e as { code?: string }).code;
  const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
    : code === 'ENOTDIR' ? 'a parent is not a directory' : code === 'ELOOP' ? 'too many symbolic links' : code ?? 'unreadable';
  return new FormatError(`cannot read ${what} ${p}: ${reason}`);
}

/** Stat that maps failures to FormatError. */
export async function statPath(p: string, what: string): Promise<import('node:fs').Stats> {
  const { fs } = await nodeModules();
  try {
    return await fs.stat(p);
  } catch (e) {
    throw fsError(what, p, e);
  }
}

async function readNodeFile(url: URL, max: number, what: string, within: URL | undefined): Promise<Uint8Array> {
  const { fs, fsc, path, url: nurl } = await nodeModules();
  let p: string;
  try {
    p = nurl.fileURLToPath(url);
  } catch {
    throw new FormatError(`${what}: ${String(url).slice(0, 200)} is not a valid file path`);
  }
  if (within) {
    // Symlinks may point anywhere: compare real paths.
    let real: string;
    let dir: string;
    try {
      real = await fs.realpath(p);
      dir = await fs.realpath(nurl.fileURLToPath(within));
    } catch (e) {
      throw fsError(what, p, e);
    }
    if (!real.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep)) {
      throw new FormatError(`${what} ${p} resolves outside the model's folder (a symbolic link to ${real}); pass { allowOutsideDir: true } to read it anyway`);
    }
  }
  const st = await statPath(p, what);
  if (!st.isFile()) throw new FormatError(`${what} ${p} is ${kindOf(st)}; only regular files are read`);
  if (st.size > max) throw tooBig(what, p, st.size, max);
  let fh: import('node:fs/promises').FileHandle;
  try {
    // O_NONBLOCK: should the path have been swapped for a FIFO since the stat, open must not block.
    fh = await fs.open(p, fsc.O_RDONLY | (fsc.O_NONBLOCK ?? 0));
  } catch (e) {
    throw fsError(what, p, e);
  }
  try {
    const st2 = await fh.stat();
    if (!st2.isFile()) throw new FormatError(`${what} ${p} is ${kindOf(st2)}; only regular files are read`);
    if (st2.size > max) throw tooBig(what, p, st2.size, max);
    const buf = new Uint8Array(st2.size);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    // A file still growing after its stat is refused rather than read without bound.
    const probe = new Uint8Array(1);
    if ((await fh.read(probe, 0, 1, n)).bytesRead > 0) throw new FormatError(`${what} ${p} changed size while being read`);
    return n === buf.length ? buf : buf.subarray(0, n);
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw fsError(what, p, e);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Reads a byte stream to its end, cancelling it and throwing `tooLarge()` as soon as it passes
 * `max` bytes (a download or a decompression must not grow without bound).
 */
export async function readStream(stream: ReadableStream<Uint8Array>, max: number, tooLarge: () => Error): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.byteLength;
  }
  return out;
}

async function fetchBounded(url: URL, max: number, what: string, within: URL | undefined): Promise<Uint8Array> {
  const shown = String(url).slice(0, 200);
  const ctrl = new AbortController();
  let res: Response;
  try {
    res = await fetch(url, { signal: ctrl.signal });
  } catch (e) {
    throw new FormatError(`could not fetch ${what} ${shown}: ${(e as Error)?.message ?? 'network error'}`);
  }
  try {
    if (!res.ok) throw new FormatError(`could not fetch ${what} ${shown}: HTTP ${res.status}`);
    if (within && res.url && !isInside(new URL(res.url), within)) throw new FormatError(`${what} ${shown} was redirected outside the model's folder`);
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > max) throw tooBig(what, shown, declared, max);
    if (!res.body) {
      const b = new Uint8Array(await res.arrayBuffer());
      if (b.length > max) throw tooBig(what, shown, b.length, max);
      return b;
    }
    return await readStream(res.body, max, () => tooBig(what, shown, `over ${max}`, max));
  } catch (e) {
    ctrl.abort();
    if (e instanceof FormatError) throw e;
    throw new FormatError(`could not read ${what} ${shown}: ${(e as Error)?.message ?? 'network error'}`);
  }
}

/** Reads a file (Node, `file:` URLs) or fetches a URL, within the size bound; see the module docs. */
export async function readBytes(url: URL, o: ReadOptions = {}): Promise<Uint8Array> {
  const max = checkMax(o.maxBytes);
  const what = o.what ?? 'file';
  if (!(url instanceof URL)) throw new FormatError(`${what}: expected a URL, got ${typeof url}`);
  if (isNode && url.protocol === 'file:') return readNodeFile(url, max, what, o.within);
  return fetchBounded(url, max, what, o.within);
}

/** True when `u` is `dir` itself or below it, on the same origin (protocol, host, port). */
function isInside(u: URL, dir: URL): boolean {
  return u.protocol === dir.protocol && u.host === dir.host && u.pathname.startsWith(dir.pathname);
}

/** The directory URL (ending in '/') of a file URL. */
export function dirOf(u: URL): URL {
  return new URL('./', u);
}

/**
 * Resolves `ref`, a file name stored in the file at `base`, to a URL. Unless `allowOutsideDir`,
 * `ref` must be a plain relative path inside `base`'s folder: no URL scheme, no absolute path,
 * no `..` segment, no `%`-escapes, `?` or `#`. FormatError otherwise, naming the option.
 */
export function resolveInside(base: URL, ref: unknown, o: { allowOutsideDir?: boolean; what: string }): URL {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > 1024 || /[\u0000-\u001f]/.test(ref)) {
    throw new FormatError(`${o.what} must be a file name of 1 to 1024 printable characters`);
  }
  const shown = JSON.stringify(ref.length > 60 ? `${ref.slice(0, 60)}...` : ref);
  let u: URL;
  try {
    u = new URL(ref, base);
  } catch {
    throw new FormatError(`${o.what} ${shown} is not a valid path`);
  }
  if (o.allowOutsideDir) return u;
  const hint = 'files are read only from the model\'s own folder (pass { allowOutsideDir: true } to a trusted file to lift this)';
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(ref)) throw new FormatError(`${o.what} ${shown} is a URL or drive path; ${hint}`);
  if (/^[\\/]/.test(ref)) throw new FormatError(`${o.what} ${shown} is an absolute path; ${hint}`);
  if (ref.split(/[\\/]/).includes('..')) throw new FormatError(`${o.what} ${shown} climbs out of its folder ('..'); ${hint}`);
  if (/[%?#]/.test(ref)) throw new FormatError(`${o.what} ${shown} contains '%', '?' or '#'; ${hint}`);
  if (!isInside(u, dirOf(base))) throw new FormatError(`${o.what} ${shown} resolves outside the model's folder; ${hint}`);
  return u;
}
