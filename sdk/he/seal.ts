/**
 * node-seal (Microsoft SEAL 4.1 compiled to wasm) loaded once, lazily, and the ownership rule for
 * its objects: SEAL objects live in SEAL's wasm heap, so every one our wrappers create goes through
 * `own` and is freed through `free` — `liveObjects()` is the count of those still held.
 *
 * Entry point: node-seal's `throws_wasm_web_es` build. It embeds its wasm as base64 and uses no
 * Node built-ins, so the same module loads in Node (checked on 20, 22, 24), in browsers and under
 * bundlers (vite, rollup); the `*_node_*` builds import `fs`/`crypto` and would not bundle for the
 * browser. The "throws" builds turn SEAL's C++ exceptions into JS errors instead of aborting.
 */
import type { SEALLibrary } from 'node-seal/implementation/seal';
import { BackendError, EdgegradError } from '../errors.js';

export type { SEALLibrary };

let library: Promise<SEALLibrary> | null = null;

/** The SEAL library, loaded on first use (the first call awaits the wasm). */
export function loadSeal(): Promise<SEALLibrary> {
  if (!library) {
    library = (async () => {
      try {
        const mod = (await import('node-seal/throws_wasm_web_es.js')) as { default: () => Promise<SEALLibrary> };
        return await mod.default();
      } catch (e) {
        library = null; // a later call may retry (e.g. after a transient fetch failure in a browser)
        throw new BackendError(`eg.he could not load node-seal (Microsoft SEAL): ${(e as Error)?.message ?? String(e)}`);
      }
    })();
  }
  return library;
}

let live = 0;

/** Anything SEAL allocated that must be deleted. */
export interface SealObject {
  delete(): void;
}

/** Takes ownership of a freshly created SEAL object (counted until `free`). */
export function own<T extends SealObject>(obj: T): T {
  live++;
  return obj;
}

/** Deletes owned SEAL objects (null/undefined are skipped). */
export function free(...objs: (SealObject | null | undefined)[]): void {
  for (const o of objs) {
    if (!o) continue;
    o.delete();
    live--;
  }
}

/** Moves `n` objects into (+) or out of (−) the live count (contexts kept idle for reuse are not live). */
export function adjustLive(n: number): void {
  live += n;
}

/** Runs `fn` on a temporary SEAL object (e.g. a `parmsId` getter's result) and frees it after. */
export function withTemp<T extends SealObject, R>(obj: T, fn: (o: T) => R): R {
  own(obj);
  try {
    return fn(obj);
  } finally {
    free(obj);
  }
}

/**
 * The number of SEAL objects (contexts, keys, ciphertexts, plaintexts, encoders, evaluators) held
 * by live `eg.he` wrappers. Flat across repeated encrypt/forward/decrypt cycles when every wrapper
 * is disposed.
 */
export function liveObjects(): number {
  return live;
}

/** Runs a SEAL call, turning its exceptions into `ErrorClass` with `what` as context. */
export function sealCall<R>(what: string, fn: () => R, ErrorClass: new (m: string) => EdgegradError): R {
  try {
    return fn();
  } catch (e) {
    if (e instanceof EdgegradError) throw e;
    const msg = e instanceof Error ? e.message : typeof e === 'string' ? e : String(e);
    throw new ErrorClass(`${what}: ${msg}`);
  }
}
