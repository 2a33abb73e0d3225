/**
 * Model integrity through Web Crypto (`crypto.subtle`: the same API and the same bytes in Node and
 * browsers). `saveModel` writes the SHA-256 digest of the weights file into model.json
 * (`weightsDigest`) and, with `signWith`, an Ed25519 signature of the model's manifest (model.json
 * without its `signature` field, digest included, as canonical JSON); `loadModel` checks the digest
 * whenever one is present and, with `verifyWith`, requires a signature that verifies.
 *
 * A digest alone catches a damaged or swapped weights file, not a deliberate edit of both files
 * (the editor rewrites the digest); a signature catches that too, as long as the private key is safe.
 */
import { ArgumentError, BackendError, FormatError } from '../errors.js';
import { describe } from '../args.js';
import { v, type Schema } from './validate.js';

/**
 * A model file that fails its integrity check: its weights do not match their digest, or its
 * signature is missing or does not verify with the given key. A `FormatError`, so code that
 * catches every bad file still catches it.
 */
export class IntegrityError extends FormatError {}

/** An Ed25519 signature of a model's manifest, as stored in model.json. */
export interface ModelSignature {
  /** Signature scheme; always `'Ed25519'`. */
  algorithm: 'Ed25519';
  /** The 64-byte signature, base64. */
  value: string;
}

/** `sha256:` and 64 lowercase hex digits (the form `sha256sum` prints, prefixed like OCI digests). */
export const digestSchema: Schema<string> = v.string({ pattern: /^sha256:[0-9a-f]{64}$/, patternName: "'sha256:' followed by 64 lowercase hex digits" });

/** model.json's `signature`. */
export const signatureSchema: Schema<ModelSignature> = v.object({
  algorithm: v.literal('Ed25519' as const),
  value: v.string({ pattern: /^[A-Za-z0-9+/]{85}[AQgw]==$/, patternName: 'the base64 of a 64-byte signature' }),
});

/** Web Crypto's `subtle`, or a BackendError saying why it is missing. */
function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) {
    throw new BackendError('model integrity needs Web Crypto (crypto.subtle), which this runtime does not offer: use Node >= 20, or a browser page served from https or localhost (a secure context)');
  }
  return s;
}

/** Turns a Web Crypto failure (a DOMException such as NotSupportedError) into a typed error. */
async function webCrypto<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    const name = (e as { name?: string } | null)?.name;
    if (name === 'NotSupportedError') {
      throw new BackendError(`${what}: this runtime's Web Crypto has no Ed25519 (it needs Node >= 20, Chrome >= 137, Firefox >= 129 or Safari >= 17)`);
    }
    if (name === 'InvalidAccessError') throw new ArgumentError(`${what}: the key cannot be used for this (${(e as Error).message})`);
    throw new BackendError(`${what} failed in Web Crypto: ${(e as Error)?.message ?? String(e)}`);
  }
}

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** A copy in a plain ArrayBuffer (Web Crypto refuses views of a SharedArrayBuffer, such as wasm memory). */
function ownBytes(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? b as Uint8Array<ArrayBuffer> : new Uint8Array(b);
}

/** The SHA-256 digest of `bytes` as `sha256:<hex>`. */
export async function sha256Digest(bytes: Uint8Array): Promise<string> {
  const d = await webCrypto('SHA-256', () => subtle().digest('SHA-256', ownBytes(bytes)));
  return `sha256:${hex(new Uint8Array(d))}`;
}

/** Checks `bytes` against a stored digest; IntegrityError naming the file otherwise. */
export async function checkDigest(bytes: Uint8Array, expected: string, file: string): Promise<void> {
  const found = await sha256Digest(bytes);
  if (found !== expected) {
    throw new IntegrityError(`weights file '${file.slice(0, 200)}' does not match model.json's weightsDigest (expected ${expected.slice(0, 23)}..., found ${found.slice(0, 23)}...): the file was changed or swapped after saving`);
  }
}

/**
 * JSON with object keys sorted (UTF-16 order) and no whitespace: one text per value, whatever the
 * key order or formatting a file was written with. Numbers and strings print as `JSON.stringify`
 * prints them, which the language fixes exactly, so Node and browsers produce the same text.
 */
export function canonicalJson(x: unknown): string {
  if (x === null || typeof x !== 'object') return JSON.stringify(x) ?? 'null';
  if (Array.isArray(x)) return `[${x.map((e) => (e === undefined ? 'null' : canonicalJson(e))).join(',')}]`;
  const rec = x as Record<string, unknown>;
  const keys = Object.keys(rec).filter((k) => rec[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(rec[k])}`).join(',')}}`;
}

/** Domain separation: a model signature cannot be replayed as a signature of anything else. */
const CONTEXT = 'edgegrad-model-manifest-v1\n';

/** The signed bytes: the context line, then model.json without `signature` as canonical JSON. */
function manifest(json: object): Uint8Array<ArrayBuffer> {
  const { signature: _, ...rest } = json as { signature?: unknown };
  return new TextEncoder().encode(CONTEXT + canonicalJson(rest));
}

function isCryptoKey(k: unknown): k is CryptoKey {
  return typeof CryptoKey !== 'undefined' && k instanceof CryptoKey;
}

/** `k` once checked to be an Ed25519 CryptoKey of `type` usable for `usage`. */
export function checkSigningKey(k: unknown, type: 'private' | 'public', what: string): CryptoKey {
  const want = type === 'private' ? 'an Ed25519 private CryptoKey (generateSigningKeys().privateKey)' : 'an Ed25519 public CryptoKey (generateSigningKeys().publicKey)';
  if (!isCryptoKey(k)) throw new ArgumentError(`${what} must be ${want}, got ${describe(k)}`);
  if (k.algorithm.name !== 'Ed25519') throw new ArgumentError(`${what} must be ${want}, got a ${k.algorithm.name.slice(0, 40)} key`);
  if (k.type !== type) throw new ArgumentError(`${what} must be ${want}, got the ${k.type} key`);
  const usage = type === 'private' ? 'sign' : 'verify';
  if (!k.usages.includes(usage)) throw new ArgumentError(`${what}: the key was made without the '${usage}' usage`);
  return k;
}

/** Signs a model.json's manifest (everything but `signature`, the weights' digest included). */
export async function signManifest(json: object, privateKey: CryptoKey): Promise<ModelSignature> {
  const sig = await webCrypto('signing the model', () => subtle().sign({ name: 'Ed25519' }, privateKey, manifest(json)));
  return { algorithm: 'Ed25519', value: btoa(String.fromCharCode(...new Uint8Array(sig))) };
}

/**
 * Verifies a model.json's signature with `publicKey`: IntegrityError when it has none or when it
 * does not verify (the file was changed after signing, or another key signed it).
 */
export async function verifyManifest(json: { signature?: ModelSignature; weightsDigest?: string }, publicKey: CryptoKey): Promise<void> {
  if (!json.signature) throw new IntegrityError('model.json is not signed, but loadModel was given verifyWith: refusing an unsigned model');
  if (!json.weightsDigest) throw new IntegrityError('model.json is signed but holds no weightsDigest, so its signature does not cover the weights: refusing it');
  const sig = Uint8Array.from(atob(json.signature.value), (c) => c.charCodeAt(0));
  const ok = await webCrypto('verifying the model signature', () => subtle().verify({ name: 'Ed25519' }, publicKey, sig, manifest(json)));
  if (!ok) {
    throw new IntegrityError('model.json\'s signature does not verify with the given public key: the model was changed after signing, or another key signed it');
  }
}

/**
 * A new Ed25519 key pair for signing models (`saveModel(..., { signWith: privateKey })`) and
 * verifying them (`loadModel(..., { verifyWith: publicKey })`). The private key is not extractable
 * unless `extractable` is true (to store it: `crypto.subtle.exportKey('pkcs8', privateKey)`); the
 * public key always is (`crypto.subtle.exportKey('raw', publicKey)` gives its 32 bytes to publish,
 * and `crypto.subtle.importKey('raw', bytes, { name: 'Ed25519' }, true, ['verify'])` reads them back).
 */
export async function generateSigningKeys(o: { extractable?: boolean } = {}): Promise<CryptoKeyPair> {
  if (o === null || typeof o !== 'object') throw new ArgumentError(`generateSigningKeys options must be an object, got ${describe(o)}`);
  const extractable = o.extractable ?? false;
  if (typeof extractable !== 'boolean') throw new ArgumentError(`generateSigningKeys: extractable must be true or false, got ${describe(extractable)}`);
  return webCrypto('generating an Ed25519 key pair', () => subtle().generateKey({ name: 'Ed25519' }, extractable, ['sign', 'verify']) as Promise<CryptoKeyPair>);
}
