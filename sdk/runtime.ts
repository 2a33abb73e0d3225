/**
 * Loading the engine and running its worker pool.
 *
 * Two wasm builds ship side by side: `simd-threads` (simd128 + atomics on a shared
 * `WebAssembly.Memory`) and `simd` (single-threaded). `init()` picks the threaded build wherever
 * `SharedArrayBuffer` is usable — always in Node, in cross-origin-isolated pages (COOP
 * `same-origin` + COEP `require-corp`) and their workers — and the single-threaded one otherwise,
 * and `backendInfo()` says which it chose and why.
 *
 * A third build, `rx` (the threaded build plus WebAssembly relaxed SIMD: fused multiply-add in the
 * f32 GEMM micro-kernel that matmul, linear and convolution run on), loads only on request,
 * `init({ relaxed: true | 'auto' })`, after a probe module with relaxed instructions validates.
 * Its results may differ between CPUs, so it is never the default; `backendInfo().relaxed` says
 * whether it runs and `relaxedReason` why not.
 *
 * The pool: `threads - 1` workers (Node `worker_threads` or Web Workers, behind one bootstrap,
 * `worker.js`) instantiate the same module on the same memory; after a job a worker watches for
 * the next one for a few tens of µs, then sleeps in `memory.atomic.wait` until a kernel posts work. The thread that calls edgegrad joins the work itself and never
 * blocks: browsers forbid `Atomics.wait` on their main thread, so the caller waits for the last
 * tasks of a kernel by spinning — only while other threads finish tasks they already claimed,
 * never while idle. Everything stays synchronous for the caller, and works unchanged on a browser
 * main thread, in a Web Worker and in Node.
 */
import * as threadedGlue from './wasm/mt/edgegrad.js';
import * as singleGlue from './wasm/st/edgegrad.js';
import { ArgumentError, BackendError, fromEngineError, MemoryError, setTrapRecovery, type TrapReport } from './errors.js';

export type Engine = typeof singleGlue;
/** Which engine build runs: `'simd-threads'` (SharedArrayBuffer + wasm threads) or `'simd'` (single-threaded). */
export type Build = 'simd-threads' | 'simd';

/** Options of `init` (engine build, threads, where the wasm comes from, memory limit). */
export interface InitOptions {
  /** Threads for kernels, the calling thread included. Default: the machine's cores, at most 8. */
  threads?: number;
  /** Force a build; `auto` (default) takes threads where the runtime allows them. */
  backend?: 'auto' | Build;
  /** Where to load each build's `.wasm` from, when not beside this file (CDNs, custom servers). */
  wasmUrls?: {
    /** URL of the threaded (simd-threads) build. */
    threaded?: string | URL;
    /** URL of the single-threaded (simd) build. */
    single?: string | URL;
    /** URL of the relaxed-SIMD build. */
    relaxed?: string | URL;
  };
  /** The builds' bytes or compiled modules, for hosts that load them themselves. */
  wasm?: {
    /** The threaded (simd-threads) build. */
    threaded?: BufferSource | WebAssembly.Module;
    /** The single-threaded (simd) build. */
    single?: BufferSource | WebAssembly.Module;
    /** The relaxed-SIMD build (used with `relaxed`). */
    relaxed?: BufferSource | WebAssembly.Module;
  };
  /**
   * The opt-in relaxed-SIMD engine (fused multiply-add kernels). `false` (default): the
   * deterministic engine, bitwise identical on every CPU and runtime. `true`: the relaxed build,
   * or a BackendError naming the runtime where it cannot run (no relaxed SIMD, as on Node 20, or
   * no SharedArrayBuffer: it is a threaded build). `'auto'`: the relaxed build where it can run,
   * else the deterministic one with `backendInfo().relaxedReason` saying why. Relaxed results are
   * bitwise identical for any thread count on one machine and runtime, and within a relative
   * 1e-4 of the deterministic engine's (README, "Relaxed SIMD").
   */
  relaxed?: boolean | 'auto';
  /**
   * Most bytes live tensors may hold (default 3 GiB, below wasm32's 4 GiB); an allocation past
   * it throws a MemoryError. Change it later with `setMemoryLimit`.
   */
  memoryLimit?: number;
}

/** What `backendInfo()` reports about the running engine. */
export interface BackendInfo {
  /** The engine build in use. */
  build: Build;
  /** Threads kernels use now (see `setNumThreads`). */
  threads: number;
  /** Threads in the pool (the most `setNumThreads` accepts). */
  maxThreads: number;
  /** Where the engine runs: Node.js, a browser main thread, or a Web Worker. */
  runtime: 'node' | 'browser' | 'worker';
  /** Whether the page is cross-origin isolated (needed for SharedArrayBuffer and so threads in browsers); true in Node. */
  crossOriginIsolated: boolean;
  /** Why the threaded build was not used, when it was not. */
  fallbackReason?: string;
  /** Whether the relaxed-SIMD engine runs (`init({ relaxed })`; then `build` is `simd-threads`). */
  relaxed: boolean;
  /** Why the relaxed engine does not run, when `init({ relaxed: 'auto' })` asked for it. */
  relaxedReason?: string;
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
/** What respawning or restarting pool workers needs. */
let threadedModule: WebAssembly.Module | null = null;
/** Bumped by `shutdownWorkers`: a worker of an older pool that exits is not replaced. */
let poolGeneration = 0;
/** The calling instance's shadow-stack pointer and its value between engine calls. */
let stackPointer: WebAssembly.Global | null = null;
let idleStackPointer = 0;

/** The loaded engine; throws a BackendError before `init()` finished. */
export function E(): Engine {
  if (engine === null) {
    throw new BackendError('edgegrad is not initialised: call `await init()` before creating tensors');
  }
  return engine;
}

/**
 * The one recovery path after a trap (a panic, or a failure the engine recorded before trapping,
 * such as out-of-memory): the engine voids what the trapped call held (borrows, the parallel job,
 * no-grad levels) and reports what failed; then the shadow stack, which a trap does not unwind,
 * is reset to its idle position (after the recovery: pool helpers may still read the trapped
 * call's frames until the engine has waited for them).
 */
function recoverAfterTrap(): TrapReport | null {
  if (engine === null) return null;
  let text = '';
  try {
    text = engine.engine_recover();
  } finally {
    if (stackPointer !== null) stackPointer.value = idleStackPointer;
  }
  if (text === '') return null;
  const nl = text.indexOf('\n');
  return { name: text.slice(0, nl), message: text.slice(nl + 1) };
}
setTrapRecovery(recoverAfterTrap);

let flagsPtr = 0;
let flagsView: Uint32Array | null = null;
/**
 * The engine's per-call flags `[MemoryError pending, inputs lent]` in linear memory (the view
 * is rebuilt when memory growth detached it).
 */
function callFlags(e: Engine): Uint32Array {
  if (flagsView === null || flagsView.length === 0) {
    if (flagsPtr === 0) flagsPtr = e.engine_call_flags_ptr();
    flagsView = new Uint32Array(wasmMemory().buffer, flagsPtr, 2);
  }
  return flagsView;
}

/**
 * Runs an engine call, converting engine failures into typed errors (recovering after traps).
 * An op on existing tensors that went past the memory limit finishes, frees what it made and
 * leaves a MemoryError pending (a trap then would keep its inputs alive): calls that return a
 * tensor report it themselves, the others are reported here.
 */
export function call<T>(f: (e: Engine) => T): T {
  const e = E();
  const flags = callFlags(e);
  flags[1] = 0;
  let result: T;
  try {
    result = f(e);
  } catch (err) {
    const typed = fromEngineError(err); // recovers first after a trap
    if (callFlags(e)[0] !== 0) e.engine_take_memory_error();
    throw typed;
  }
  if (callFlags(e)[0] !== 0) throw new MemoryError(e.engine_take_memory_error());
  return result;
}

let nodeCores = 1;
function defaultThreads(): number {
  const n = isNode ? nodeCores : (globalThis.navigator?.hardwareConcurrency ?? 1);
  return Math.max(1, Math.min(8, n));
}

async function nodeImport<T>(name: string): Promise<T> {
  return (await import(/* @vite-ignore */ name)) as T;
}

type Which = 'threaded' | 'single' | 'relaxed';

function defaultUrl(which: Which): URL {
  // Literal `new URL(..., import.meta.url)` so bundlers see and copy the assets.
  if (which === 'relaxed') return new URL('./wasm/rx/edgegrad_bg.wasm', import.meta.url);
  return which === 'threaded'
    ? new URL('./wasm/mt/edgegrad_bg.wasm', import.meta.url)
    : new URL('./wasm/st/edgegrad_bg.wasm', import.meta.url);
}

/**
 * A module whose one function runs `f32x4.relaxed_madd` and `i32x4.relaxed_dot_i8x16_i7x16_add_s`
 * on a v128 local: it validates only where the runtime has WebAssembly relaxed SIMD.
 */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
  0x03, 0x02, 0x01, 0x00, // functions: one of type 0
  0x0a, 0x16, 0x01, 0x14, 0x01, 0x01, 0x7b, // code: one body of 20 bytes, one v128 local
  0x20, 0x00, 0x20, 0x00, 0x20, 0x00, 0xfd, 0x85, 0x02, // f32x4.relaxed_madd(x, x, x)
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x93, 0x02, 0x0b, // i32x4.relaxed_dot_i8x16_i7x16_add_s(_, x, x); end
]);

/** Whether this runtime validates WebAssembly relaxed SIMD (the probe module above). */
export function relaxedSimdSupported(): boolean {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

/** The runtime, in words, for error messages. */
function runtimeName(): string {
  if (isNode) return `Node.js ${process.versions.node}`;
  return globalThis.navigator?.userAgent ?? 'this JavaScript runtime';
}

/** Why the relaxed engine cannot run here, or undefined when it can. */
function relaxedBlocker(want: 'auto' | Build, sabOk: boolean): string | undefined {
  if (!relaxedSimdSupported()) {
    return `${runtimeName()} does not support WebAssembly relaxed SIMD (it needs Node.js 22+ or Chromium 114+)`;
  }
  if (want === 'simd') return "the relaxed engine is a threaded build, and backend 'simd' was requested";
  if (!sabOk) {
    return 'the relaxed engine is a threaded build and needs SharedArrayBuffer: serve the page cross-origin isolated (COOP same-origin + COEP require-corp)';
  }
  return undefined;
}

async function loadModule(which: Which, opts: InitOptions): Promise<WebAssembly.Module> {
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

/**
 * The parent's execArgv minus what only makes sense for the main script: a worker inheriting
 * `--eval`/`--print`/`--input-type` fails to start (so `node --input-type=module -e` programs
 * ran on one thread).
 */
export function workerExecArgv(argv: readonly string[]): string[] {
  const withValue = new Set(['-e', '--eval', '-p', '--print', '--input-type']);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (withValue.has(a)) {
      i++;
    } else if (!/^(--eval|--print|--input-type)=/.test(a) && a !== '-pe') {
      out.push(a);
    }
  }
  return out;
}

/**
 * Starts pool worker `id`. A worker survives panics (worker.js catches the trap and re-enters the
 * work loop); should one die anyway, `onDeath` replaces it, so the pool keeps its strength.
 */
async function spawnWorker(id: number, module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<PoolWorker> {
  const payload = { module, memory, id };
  const generation = poolGeneration;
  let ready = false;
  const onDeath = () => {
    if (!ready || generation !== poolGeneration) return;
    ready = false;
    void spawnWorker(id, module, memory).then((w) => {
      const i = workers.findIndex((x) => x === dead);
      if (i >= 0 && generation === poolGeneration) workers[i] = w;
      else w.terminate();
    }, () => {});
  };
  let dead: PoolWorker;
  if (isNode) {
    const { Worker } = await nodeImport<typeof import('node:worker_threads')>('node:worker_threads');
    const w = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: payload, execArgv: workerExecArgv(process.execArgv),
    });
    dead = w;
    await new Promise<void>((resolve, reject) => {
      w.once('message', (m: unknown) => (m === 'ready' ? resolve() : reject(new BackendError(`worker ${id}: ${String(m)}`))));
      w.once('error', (e: Error) => reject(new BackendError(`worker ${id} failed to start: ${e.message}`)));
    });
    ready = true;
    w.on('error', () => {});
    w.once('exit', onDeath);
    w.unref(); // idle workers never keep a Node process alive
    return w;
  }
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  dead = w;
  await new Promise<void>((resolve, reject) => {
    w.onmessage = (ev: MessageEvent) => (ev.data === 'ready' ? resolve() : reject(new BackendError(`worker ${id}: ${String(ev.data)}`)));
    w.onerror = (ev: ErrorEvent) => reject(new BackendError(`worker ${id} failed to start: ${ev.message}`));
    w.postMessage(payload);
  });
  ready = true;
  w.onerror = (ev: ErrorEvent) => {
    ev.preventDefault();
    onDeath();
  };
  return w;
}

/** Starts workers 1..threads-1 on the threaded engine; on failure, none (the reason returned). */
async function startPool(threads: number): Promise<string | undefined> {
  const spawned: PoolWorker[] = [];
  let reason: string | undefined;
  try {
    for (let id = 1; id < threads; id++) spawned.push(await spawnWorker(id, threadedModule!, memory!));
  } catch (e) {
    reason = `worker pool failed to start (${(e as Error).message}); running on one thread`;
    for (const w of spawned) w.terminate();
    spawned.length = 0;
  }
  workers = spawned;
  engine!.engine_set_workers(workers.length);
  engine!.engine_set_num_threads(workers.length + 1);
  return reason;
}

/** Remembers the instance's shadow-stack pointer (exported by the build) at rest. */
function captureStackPointer(exports: Record<string, unknown>): void {
  const sp = exports.__stack_pointer;
  stackPointer = sp instanceof WebAssembly.Global ? sp : null;
  idleStackPointer = stackPointer !== null ? (stackPointer.value as number) : 0;
}

function checkMemoryLimit(bytes: unknown): number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
    throw new ArgumentError(`memoryLimit must be a non-negative whole number of bytes, got ${String(bytes)}`);
  }
  return bytes;
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
  const limit = opts.memoryLimit === undefined ? undefined : checkMemoryLimit(opts.memoryLimit);
  const relaxed = opts.relaxed ?? false;
  if (relaxed !== true && relaxed !== false && relaxed !== 'auto') {
    throw new ArgumentError(`relaxed must be true, false or 'auto', got ${String(relaxed)}`);
  }
  let relaxedReason: string | undefined;
  if (relaxed !== false) {
    relaxedReason = relaxedBlocker(want, sabOk);
    if (relaxedReason === undefined) {
      try {
        await loadThreaded('relaxed', opts, threads, runtime, coi);
      } catch (e) {
        engine = null;
        relaxedReason = `the relaxed build failed to load (${(e as Error).message})`;
      }
    }
    if (relaxedReason !== undefined && relaxed === true) throw new BackendError(`init({ relaxed: true }): ${relaxedReason}`);
  }
  if (engine === null) {
    await loadEngine(opts, want, threads, runtime, coi, sabOk);
    // Never silent: 'auto' that fell back says why.
    if (relaxedReason !== undefined) info = { ...info!, relaxedReason };
  }
  if (limit !== undefined) engine!.engine_set_memory_limit(limit);
  return info!;
}

/**
 * Instantiates a threaded engine, the default (`mt`) or the relaxed one (`rx`, which runs under mt's
 * glue: same exports, build-wasm.sh checks), and starts its worker pool.
 */
async function loadThreaded(which: 'threaded' | 'relaxed', opts: InitOptions, threads: number, runtime: BackendInfo['runtime'], coi: boolean): Promise<BackendInfo> {
  const module = await loadModule(which, opts);
  const exports = (await threadedGlue.default({ module_or_path: module })) as unknown as { memory: WebAssembly.Memory };
  memory = exports.memory;
  captureStackPointer(exports as unknown as Record<string, unknown>);
  engine = threadedGlue as unknown as Engine;
  threadedModule = module;
  const fallbackReason = await startPool(threads);
  return (info = { build: 'simd-threads', threads: workers.length + 1, maxThreads: workers.length + 1, runtime,
    crossOriginIsolated: coi, fallbackReason, relaxed: which === 'relaxed' });
}

async function loadEngine(opts: InitOptions, want: 'auto' | Build, threads: number, runtime: BackendInfo['runtime'],
  coi: boolean, sabOk: boolean): Promise<BackendInfo> {
  let fallbackReason: string | undefined;

  if (want === 'simd-threads' && !sabOk) {
    throw new BackendError('the threaded build needs SharedArrayBuffer: serve the page cross-origin isolated (COOP same-origin + COEP require-corp)');
  }
  if (want !== 'simd' && sabOk) {
    try {
      return await loadThreaded('threaded', opts, threads, runtime, coi);
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
  captureStackPointer(exports as unknown as Record<string, unknown>);
  engine = singleGlue;
  return (info = { build: 'simd', threads: 1, maxThreads: 1, runtime, crossOriginIsolated: coi,
    fallbackReason: want === 'simd' ? 'single-threaded build requested' : fallbackReason, relaxed: false });
}

/**
 * Loads the engine (once; later calls return the same result, after restarting the worker pool
 * if `shutdownWorkers()` stopped it). Must finish before any tensor is created.
 */
export function init(opts: InitOptions = {}): Promise<BackendInfo> {
  if (initPromise !== null && info !== null && opts.memoryLimit !== undefined) {
    try {
      E().engine_set_memory_limit(checkMemoryLimit(opts.memoryLimit));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  if (initPromise !== null && info !== null && poolStopped) {
    poolStopped = false;
    initPromise = restartPool(opts).catch((e) => {
      poolStopped = true;
      throw e instanceof BackendError ? e : new BackendError(`edgegrad failed to restart its workers: ${(e as Error).message}`);
    });
  }
  initPromise ??= doInit(opts).catch((e) => {
    initPromise = null;
    throw e instanceof ArgumentError || e instanceof BackendError ? e
      : new BackendError(`edgegrad failed to initialise: ${(e as Error).message}`);
  });
  return initPromise;
}

let poolStopped = false;

async function restartPool(opts: InitOptions): Promise<BackendInfo> {
  const threads = Math.floor(opts.threads ?? defaultThreads());
  if (!(threads >= 1 && threads <= 16)) throw new BackendError(`threads must be between 1 and 16, got ${opts.threads}`);
  if (info!.build !== 'simd-threads') return info!;
  const fallbackReason = await startPool(threads);
  return (info = { ...info!, threads: workers.length + 1, maxThreads: workers.length + 1, fallbackReason });
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
  const max = backendInfo().maxThreads;
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new ArgumentError(`setNumThreads needs a whole number from 1 to ${max} (the threads in the pool), got ${n}`);
  }
  return call((e) => e.engine_set_num_threads(n));
}

/**
 * Stops the worker pool (kernels then run on the calling thread). A later `init()` starts it
 * again.
 */
export function shutdownWorkers(): void {
  poolGeneration++;
  for (const w of workers) w.terminate();
  workers = [];
  if (engine) engine.engine_set_workers(0);
  if (info) {
    info = { ...info, threads: 1, maxThreads: 1 };
    poolStopped = info.build === 'simd-threads';
  }
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
