/**
 * Memory management. Tensors hold engine memory until disposed. Three tools, in order of
 * preference: `tidy(fn)` frees every tensor created inside `fn` except those it returns;
 * `t.dispose()` frees one tensor; a FinalizationRegistry frees tensors the garbage collector
 * found unreachable — a safety net, not a plan (GC timing is unpredictable).
 */
import { checkFunction, describe, isAsyncFunction } from './args.js';
import { ArgumentError } from './errors.js';
import { call, isInitialized, wasmMemory } from './runtime.js';

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Set<Disposable>[] = [];

/** What the GC safety net holds per tensor: its handle, zeroed once the tensor is disposed. */
export interface HandleCell {
  handle: number;
}

const registry = new FinalizationRegistry<HandleCell>((cell) => {
  if (!isInitialized() || cell.handle === 0) return;
  try {
    call((e) => e.tensor_dispose(cell.handle)); // through call(): a trap here is recovered too
  } catch {
    // already gone
  }
});

/**
 * Called by every new tensor: joins the innermost tidy scope and the GC safety net. Disposing a
 * tensor zeroes its cell instead of unregistering it (cheaper; the finalizer then does nothing).
 */
export function track(t: Disposable, cell: HandleCell): void {
  registry.register(t, cell);
  if (scopes.length > 0) scopes[scopes.length - 1].add(t);
}

/** Called on dispose. */
export function untrack(t: Disposable): void {
  for (const s of scopes) s.delete(t);
}

function collect(value: unknown, out: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Disposable).dispose === 'function' && 'isDisposed' in (value as object) && (value as { __tensor?: true }).__tensor) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, seen);
  }
}

/**
 * Runs `fn` and frees every tensor it created, except the tensors in its result (a tensor, or
 * arrays/plain objects/Maps of tensors), which move to the enclosing scope. Synchronous only.
 */
export function tidy<T>(fn: () => T): T {
  checkFunction(fn, 'tidy() argument');
  if (isAsyncFunction(fn)) throw asyncTidy();
  scopes.push(new Set());
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of scopes.pop()!) if (!t.isDisposed) t.dispose();
    throw e;
  }
  const scope = scopes.pop()!;
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    for (const t of scope) if (!t.isDisposed) t.dispose();
    Promise.resolve(result).catch(() => {});
    throw asyncTidy();
  }
  const kept = new Set<Disposable>();
  collect(result, kept, new Set());
  for (const t of scope) {
    if (kept.has(t)) {
      if (scopes.length > 0) scopes[scopes.length - 1].add(t);
    } else if (!t.isDisposed) {
      t.dispose();
    }
  }
  return result;
}

function asyncTidy(): ArgumentError {
  return new ArgumentError('tidy() cannot wrap an async function: tensors would be freed before it finishes');
}

/** Takes a tensor out of every tidy scope, so only an explicit `dispose()` frees it. */
export function keep<T extends Disposable>(t: T): T {
  if (t === null || typeof t !== 'object' || typeof t.dispose !== 'function') {
    throw new ArgumentError(`keep() needs a Tensor, got ${describe(t)}`);
  }
  for (const s of scopes) s.delete(t);
  return t;
}

/** Disposes every tensor found in `value` (a tensor, or arrays/objects/Maps of them). */
export function dispose(value: unknown): void {
  const found = new Set<Disposable>();
  collect(value, found, new Set());
  for (const t of found) if (!t.isDisposed) t.dispose();
}

/** What `memory()` reports: live tensors and bytes, the buffer pool, wasm memory and the limit. */
export interface MemoryInfo {
  /** Tensors alive in the engine (handles not yet disposed). */
  numTensors: number;
  /** Bytes held by live tensor storage (views share storage). */
  numBytes: number;
  /** Distinct storage buffers alive. */
  numBuffers: number;
  /** Bytes kept in the engine's buffer pool for reuse. */
  pooledBytes: number;
  /** Size of the wasm linear memory (grows, never shrinks). */
  wasmBytes: number;
  /** Most bytes live tensors may hold (`init({ memoryLimit })`, `setMemoryLimit`). */
  limit: number;
}

/** The engine's memory right now (`numTensors` counts live tensors: leak checks use it). */
export function memory(): MemoryInfo {
  const [numTensors, numBytes, numBuffers, pooledBytes, limit] = call((e) => e.engine_memory());
  return { numTensors, numBytes, numBuffers, pooledBytes, wasmBytes: wasmMemory().buffer.byteLength, limit };
}

/** Returns pooled buffers to the engine's allocator. */
export function releasePool(): void {
  call((e) => e.engine_release_pool());
}

function checkBytes(bytes: unknown, what: string): number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
    throw new ArgumentError(`${what} must be a non-negative whole number of bytes, got ${describe(bytes)}`);
  }
  return bytes;
}

/**
 * Caps the bytes live tensors may hold (default 3 GiB; `memory().limit` reads it); returns the
 * previous cap. An allocation past it throws a MemoryError naming the request, the live bytes and
 * the limit, and the engine keeps working. Tensors already alive are not affected.
 */
export function setMemoryLimit(bytes: number): number {
  const b = checkBytes(bytes, 'setMemoryLimit()');
  return call((e) => e.engine_set_memory_limit(b));
}

/**
 * Runs `fn` with live tensor bytes capped at what is live now plus `extraBytes` (or the current
 * limit, if tighter; nested calls take the tightest), restoring the previous limit afterwards,
 * also when `fn` throws. An allocation past the cap throws a MemoryError before the memory is
 * taken: use it around work sized by untrusted input (a model file's declared shapes).
 * Synchronous only.
 */
export function withAllocationLimit<T>(extraBytes: number, fn: () => T): T {
  const extra = checkBytes(extraBytes, 'withAllocationLimit() extraBytes');
  checkFunction(fn, 'withAllocationLimit() function');
  if (isAsyncFunction(fn)) {
    throw new ArgumentError('withAllocationLimit() cannot wrap an async function: the limit would end at its first await');
  }
  const { numBytes, limit } = memory();
  const previous = setMemoryLimit(Math.min(limit, numBytes + extra));
  try {
    return fn();
  } finally {
    setMemoryLimit(previous);
  }
}
