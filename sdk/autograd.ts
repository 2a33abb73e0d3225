/** Autograd controls: regions that record nothing. */
import { checkFunction, isAsyncFunction } from './args.js';
import { ArgumentError } from './errors.js';
import { call } from './runtime.js';

/**
 * Runs `fn` without recording autograd history (inference, manual updates). Synchronous only: the
 * no-grad region ends when `fn` returns, so the code after an `await` would record again.
 */
export function noGrad<T>(fn: () => T): T {
  checkFunction(fn, 'noGrad() argument');
  if (isAsyncFunction(fn)) throw asyncRefused();
  call((e) => e.grad_push_no_grad());
  let result: T;
  try {
    result = fn();
  } finally {
    call((e) => e.grad_pop_no_grad());
  }
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    // Keep the rejection of the refused promise from surfacing as an unhandled one.
    Promise.resolve(result).catch(() => {});
    throw asyncRefused();
  }
  return result;
}

function asyncRefused(): ArgumentError {
  return new ArgumentError('noGrad() cannot wrap an async function: only its part before the first await would run without gradients; call noGrad inside it around synchronous code');
}

/** Whether ops are currently recorded for backward. */
export function isGradEnabled(): boolean {
  return call((e) => e.grad_enabled());
}
