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

const byName: Record<string, new (m: string) => EdgegradError> = {
  ShapeError, DTypeError, ArgumentError, AutogradError, FormatError, InternalError,
};

let panicMessage: (() => string | undefined) | null = null;
/** Wiring (set by the runtime): reads the engine's recorded panic message. */
export function setPanicMessageSource(f: () => string | undefined): void {
  panicMessage = f;
}

/** Converts an error thrown by the wasm engine into the matching typed error. */
export function fromEngineError(e: unknown): Error {
  if (e instanceof EdgegradError) return e;
  if (e instanceof Error) {
    const cls = byName[e.name];
    if (cls) return new cls(e.message);
    if (e instanceof WebAssembly.RuntimeError) {
      const detail = panicMessage?.();
      return new InternalError(`the edgegrad engine trapped (${e.message}${detail ? `: ${detail}` : ''}); this is a bug, please report it`);
    }
    if (typeof e.message === 'string' && e.message.startsWith('a worker thread of the edgegrad engine failed')) return new InternalError(e.message);
    return e;
  }
  return new InternalError(String(e));
}
