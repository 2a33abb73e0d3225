/**
 * Loading the engine and running its worker pool.
 *
 * Two wasm builds ship side by side: `simd-threads` (simd128 + atomics on a shared
 * `WebAssembly.Memory`) and `simd` (single-threaded). `init()` picks the threaded build wherever
 * `SharedArrayBuffer` is usable — always in Node, in cross-origin-isolated pages (COOP
 * `same-origin` + COEP `require-corp`) and their workers — and the single-threaded one otherwise,
 * and `backendInfo()` says which it chose and why.
 *
 * The pool: `threads - 1` workers (Node `worker_threads` or Web Workers, behind one bootstrap,
 * `worker.js`) instantiate the same module on the same memory and sleep in `memory.atomic.wait`
 * until a kernel posts work. The thread that calls edgegrad joins the work itself and never
 * blocks: browsers forbid `Atomics.wait` on their main thread, so the caller waits for the last
 * tasks of a kernel by spinning — only while other threads finish tasks they already claimed,
 * never while idle. Everything stays synchronous for the caller, and works unchanged on a browser
 * main thread, in a Web Worker and in Node.
 */
import * as threadedGlue from './wasm/mt/edgegrad.js';
import * as singleGlue from './wasm/st/edgegrad.js';
import { BackendError, fromEngineError, setPanicMessageSource } from './errors.js';

export type Engine = typeof singleGlue;
export type Build = 'simd-threads' | 'simd';

export interface InitOptions {
  /** Threads for kernels, the calling thread included. Default: the machine's cores, at most 8. */
  threads?: number;
  /** Force a build; `auto` (default) takes threads where the runtime allows them. */
  backend?: 'auto' | Build;
  /** Where to load each build's `.wasm` from, when not beside this file (CDNs, custom servers). */
  wasmUrls?: { threaded?: string | URL; single?: string | URL };
  /** The builds' bytes or compiled modules, for hosts that load them themselves. */
  wasm?: { threaded?: BufferSource | WebAssembly.Module; single?: BufferSource | WebAssembly.Module };
}

export interface BackendInfo {
  build: Build;
  /** Threads kernels use now (see `setNumThreads`). */
  threads: number;
  /** Threads in the pool (the most `setNumThreads` accepts). */
  maxThreads: number;
  runtime: 'node' | 'browser' | 'worker';
  crossOriginIsolated: boolean;
  /** Why the threaded build was not used, when it was not. */
  fallbackReason?: string;
}

const isNode = typeof process !== 'undefined' && process.versions?.node != null && typeof window === 'undefined'
  && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'undefined';
const inWebWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';

interface PoolWorker {
  terminate(): unknown;
}

let engine: Engine | null = null;
let memory: WebAssembly.Memory | null = null;
let info: BackendInfo | null = null;
let workers: PoolWorker[] = [];
let initPromise: Promise<BackendInfo> | null = null;

/** The loaded engine; throws a BackendError before `init()` finished. */
export function E(): Engine {
  if (engine === null) {
    throw new BackendError('edgegrad is not initialised: call `await init()` before creating tensors');
  }
  return engine;
}

/** Runs an engine call, converting engine failures into typed errors. */
setPanicMessageSource(() => {
  try {
    return engine?.engine_panic_message() ?? undefined;
  } catch {
    return undefined;
  }
});

export function call<T>(f: (e: Engine) => T): T {
  const e = E();
  try {
    return f(e);
  } catch (err) {
    throw fromEngineError(err);
  }
}

let nodeCores = 1;
function defaultThreads(): number {
  const n = isNode ? nodeCores : (globalThis.navigator?.hardwareConcurrency ?? 1);
  return Math.max(1, Math.min(8, n));
}

async function nodeImport<T>(name: string): Promise<T> {
  return (await import(/* @vite-ignore */ name)) as T;
}

function defaultUrl(which: 'threaded' | 'single'): URL {
  // Literal `new URL(..., import.meta.url)` so bundlers see and copy the assets.
  return which === 'threaded'
    ? new URL('./wasm/mt/edgegrad_bg.wasm', import.meta.url)
    : new URL('./wasm/st/edgegrad_bg.wasm', import.meta.url);
}

async function loadModule(which: 'threaded' | 'single', opts: InitOptions): Promise<WebAssembly.Module> {
  const given = opts.wasm?.[which];
  if (given instanceof WebAssembly.Module) return given;
  if (given) return WebAssembly.compile(given);
  const url = new URL(String(opts.wasmUrls?.[which] ?? defaultUrl(which)), isNode ? undefined : globalThis.location?.href);
  if (isNode && url.protocol === 'file:') {
    const fs = await nodeImport<typeof import('node:fs/promises')>('node:fs/promises');
    return WebAssembly.compile(await fs.readFile(url));
  }
  const res = await fetch(url);
  if (!res.ok) throw new BackendError(`could not fetch the edgegrad ${which} engine from ${url}: HTTP ${res.status}`);
  return WebAssembly.compile(await res.arrayBuffer());
}

async function spawnWorker(id: number, module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<PoolWorker> {
  const payload = { module, memory, id };
  if (isNode) {
    const { Worker } = await nodeImport<typeof import('node:worker_threads')>('node:worker_threads');
    const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: payload });
    await new Promise<void>((resolve, reject) => {
      w.once('message', (m: unknown) => (m === 'ready' ? resolve() : reject(new BackendError(`worker ${id}: ${String(m)}`))));
      w.once('error', (e: Error) => reject(new BackendError(`worker ${id} failed to start: ${e.message}`)));
    });
    w.unref(); // idle workers never keep a Node process alive
    return w;
  }
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  await new Promise<void>((resolve, reject) => {
    w.onmessage = (ev: MessageEvent) => (ev.data === 'ready' ? resolve() : reject(new BackendError(`worker ${id}: ${String(ev.data)}`)));
    w.onerror = (ev: ErrorEvent) => reject(new BackendError(`worker ${id} failed to start: ${ev.message}`));
    w.postMessage(payload);
  });
  return w;
}

async function doInit(opts: InitOptions): Promise<BackendInfo> {
  if (isNode) {
    const os = await nodeImport<typeof import('node:os')>('node:os');
    nodeCores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  }
  const runtime: BackendInfo['runtime'] = isNode ? 'node' : inWebWorker ? 'worker' : 'browser';
  const coi = isNode || globalThis.crossOriginIsolated === true;
  const sabOk = typeof SharedArrayBuffer === 'function' && coi;
  const want = opts.backend ?? 'auto';
  const threads = Math.floor(opts.threads ?? defaultThreads());
  if (!(threads >= 1 && threads <= 16)) throw new BackendError(`threads must be between 1 and 16, got ${opts.threads}`);
  let fallbackReason: string | undefined;

  if (want === 'simd-threads' && !sabOk) {
    throw new BackendError('the threaded build needs SharedArrayBuffer: serve the page cross-origin isolated (COOP same-origin + COEP require-corp)');
  }
  if (want !== 'simd' && sabOk) {
    try {
      const module = await loadModule('threaded', opts);
      const exports = (await threadedGlue.default({ module_or_path: module })) as unknown as { memory: WebAssembly.Memory };
      const shared = exports.memory;
      memory = shared;
      engine = threadedGlue as unknown as Engine;
      const spawned: PoolWorker[] = [];
      try {
        for (let id = 1; id < threads; id++) spawned.push(await spawnWorker(id, module, shared));
      } catch (e) {
        fallbackReason = `worker pool failed to start (${(e as Error).message}); running on one thread`;
        for (const w of spawned) w.terminate();
        spawned.length = 0;
      }
      workers = spawned;
      engine.engine_set_workers(workers.length);
      engine.engine_set_num_threads(workers.length + 1);
      return (info = { build: 'simd-threads', threads: workers.length + 1, maxThreads: workers.length + 1, runtime,
        crossOriginIsolated: coi, fallbackReason });
    } catch (e) {
      if (want === 'simd-threads') throw e;
      engine = null;
      fallbackReason = `threaded build failed to load (${(e as Error).message})`;
    }
  } else if (want !== 'simd') {
    fallbackReason = typeof SharedArrayBuffer !== 'function'
      ? 'SharedArrayBuffer is not available in this runtime'
      : 'the page is not cross-origin isolated (needs COOP same-origin + COEP require-corp headers)';
  }
  const module = await loadModule('single', opts);
  const exports = (await singleGlue.default({ module_or_path: module })) as unknown as { memory: WebAssembly.Memory };
  memory = exports.memory;
  engine = singleGlue;
  return (info = { build: 'simd', threads: 1, maxThreads: 1, runtime, crossOriginIsolated: coi,
    fallbackReason: want === 'simd' ? 'single-threaded build requested' : fallbackReason });
}

/**
 * Loads the engine (once; later calls return the same result). Must finish before any tensor is
 * created.
 */
export function init(opts: InitOptions = {}): Promise<BackendInfo> {
  initPromise ??= doInit(opts).catch((e) => {
    initPromise = null;
    throw e instanceof BackendError ? e : new BackendError(`edgegrad failed to initialise: ${(e as Error).message}`);
  });
  return initPromise;
}

/** Which build runs, with how many threads, and why. */
export function backendInfo(): BackendInfo {
  if (info === null) throw new BackendError('edgegrad is not initialised: call `await init()` first');
  return { ...info, threads: E().engine_num_threads() };
}

/**
 * Threads for the kernels that follow (1..maxThreads). Results are bitwise identical for any
 * count: work is split by output tiles and reductions run in a fixed order.
 */
export function setNumThreads(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new BackendError(`setNumThreads needs a positive integer, got ${n}`);
  return E().engine_set_num_threads(n);
}

/** Stops the worker pool (kernels then run on the calling thread). */
export function shutdownWorkers(): void {
  for (const w of workers) w.terminate();
  workers = [];
  if (engine) {
    engine.engine_set_workers(0);
    engine.engine_set_num_threads(1);
  }
  if (info) info = { ...info, maxThreads: 1 };
}

let metaPtr = 0;
let metaBuf: ArrayBufferLike | null = null;
let metaView: Uint32Array | null = null;
/**
 * `[handle, dtype, rank, dims...]` of the tensor the engine created last, read in place from
 * linear memory (the view is rebuilt whenever the memory has grown).
 */
export function lastTensorMeta(): Uint32Array {
  const buf = wasmMemory().buffer;
  if (buf !== metaBuf) {
    if (metaPtr === 0) metaPtr = E().engine_meta_ptr();
    metaView = new Uint32Array(buf, metaPtr, 32);
    metaBuf = buf;
  }
  return metaView!;
}

/** The engine's linear memory (build views from `.buffer` at the moment of use: it can grow). */
export function wasmMemory(): WebAssembly.Memory {
  if (memory === null) throw new BackendError('edgegrad is not initialised: call `await init()` first');
  return memory;
}

/** True once `init()` has completed. */
export function isInitialized(): boolean {
  return engine !== null;
}
