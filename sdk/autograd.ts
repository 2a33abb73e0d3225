/** Autograd controls: regions that record nothing. */
import { call } from './runtime.js';

/** Runs `fn` without recording autograd history (inference, manual updates). */
export function noGrad<T>(fn: () => T): T {
  call((e) => e.grad_push_no_grad());
  try {
    return fn();
  } finally {
    call((e) => e.grad_pop_no_grad());
  }
}

/** Whether ops are currently recorded for backward. */
export function isGradEnabled(): boolean {
  return call((e) => e.grad_enabled());
}
