/**
 * Typed errors. Every failure the SDK or the engine reports is one of these, with a message that
 * names the problem (shapes, dtypes, the disposed tensor, the bad option...).
 */
export class EdgegradError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** Shapes that do not fit an op: broadcasting, matmul inner dimensions, axes out of range. */
export class ShapeError extends EdgegradError {}
/** A dtype the op does not accept. */
export class DTypeError extends EdgegradError {}
/** A bad argument or option value. */
export class ArgumentError extends EdgegradError {}
/** Autograd misuse: backward from a non-scalar, a freed graph, a tensor modified in place. */
export class AutogradError extends EdgegradError {}
/** A corrupt or inconsistent file or buffer. */
export class FormatError extends EdgegradError {}
/** A tensor was used after `dispose()`. */
export class DisposedError extends EdgegradError {}
/** The engine is not initialised, or could not be loaded. */
export class BackendError extends EdgegradError {}
/** A bug in edgegrad: an invariant that should hold did not. Please report it. */
export class InternalError extends EdgegradError {}
/**
 * An allocation was refused: it would pass the memory limit (`init({ memoryLimit })`,
 * `setMemoryLimit`, `withAllocationLimit`), or the runtime could not grow wasm memory. The
 * message names the bytes requested, the bytes live and the limit. The engine keeps working:
 * dispose tensors and retry.
 */
export class MemoryError extends EdgegradError {}

const byName: Record<string, new (m: string) => EdgegradError> = {
  ShapeError, DTypeError, ArgumentError, AutogradError, FormatError, InternalError, MemoryError,
};

/** What the engine recorded about a trap, read (and the engine reset) by `recover`. */
export interface TrapReport {
  /** Error class the engine recorded for the trap (`MemoryError` becomes a MemoryError; anything else an InternalError). */
  name: string;
  /** The engine's message. */
  message: string;
}
let recoverEngine: (() => TrapReport | null) | null = null;
/** Wiring (set by the runtime): puts the engine back in order after a trap, says what failed. */
export function setTrapRecovery(f: () => TrapReport | null): void {
  recoverEngine = f;
}

/**
 * Converts an error thrown by the wasm engine into the matching typed error. A trap (a Rust
 * panic, or a failure such as out-of-memory that the engine records before trapping) first runs
 * the engine's recovery, so the next call works as if the failed one never happened.
 */
export function fromEngineError(e: unknown): Error {
  if (e instanceof EdgegradError) return e;
  if (e instanceof WebAssembly.RuntimeError) {
    const report = recoverEngine?.() ?? null;
    if (report !== null && report.name === 'MemoryError') return new MemoryError(report.message);
    const detail = report === null ? e.message : `${e.message}: ${report.message}`;
    return new InternalError(`the edgegrad engine failed (${detail}); the call was abandoned and the engine recovered. This is a bug, please report it`);
  }
  if (e instanceof Error) {
    const cls = byName[e.name];
    if (cls) return new cls(e.message);
    if (e instanceof RangeError && /call stack|stack size/i.test(e.message)) {
      recoverEngine?.();
      return new InternalError(`the edgegrad engine ran out of stack (${e.message}); this is a bug, please report it`);
    }
    return e;
  }
  return new InternalError(String(e));
}
