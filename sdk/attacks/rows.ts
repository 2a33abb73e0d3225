/**
 * Row bookkeeping shared by the attacks that work on the examples still to fool (restarts, APGD,
 * Square) and by the robustness evaluation: pick rows, write rows back, replace a held tensor.
 * Exact copies (gathers), so they never change a bit.
 */
import { tensor } from '../creation.js';
import { tidy } from '../memory.js';
import { concat } from '../ops.js';
import type { Tensor } from '../tensor.js';

/** Replaces `old` by `next` (freeing `old` unless it is `next`). */
export function swap(old: Tensor, next: Tensor): Tensor {
  if (old !== next) old.dispose();
  return next;
}

/**
 * `base` with row i replaced by row `from[i]` of `sub` where `from[i] >= 0` (one gather; exact
 * copies). A new tensor.
 */
export function mergeRows(base: Tensor, sub: Tensor, from: Int32Array): Tensor {
  return tidy(() => {
    const n = base.shape[0];
    const idx = Int32Array.from(from, (k, i) => (k >= 0 ? n + k : i));
    return concat([base, sub], 0).indexSelect(0, tensor(idx, [n], 'int32'));
  });
}

/** Rows `idx` of `t` (a new tensor). */
export function pickRows(t: Tensor, idx: Int32Array): Tensor {
  return tidy(() => t.indexSelect(0, tensor(idx, [idx.length], 'int32')));
}
