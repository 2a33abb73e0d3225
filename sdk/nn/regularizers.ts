/** L1 / L2 penalties for weights, biases and activations, added to the training loss. */
import { ArgumentError } from '../errors.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { describe } from '../args.js';

/** Penalty factors: the loss gains l1·Σ|w| + l2·Σw² (Keras' convention, no ½). */
export interface Regularizer {
  /** Factor of the L1 term Σ|w| (>= 0). */
  l1: number;
  /** Factor of the L2 term Σw² (>= 0). */
  l2: number;
}

function check(v: number, what: string): number {
  if (!(typeof v === 'number' && v >= 0 && Number.isFinite(v))) throw new ArgumentError(`${what} regularization factor must be finite and >= 0, got ${describe(v)}`);
  return v;
}

/** An L1 penalty factor·Σ|w| (default 0.01, Keras' `l1`); throws ArgumentError unless finite and >= 0. */
export const l1 = (factor = 0.01): Regularizer => ({ l1: check(factor, 'L1'), l2: 0 });
/** An L2 penalty factor·Σw² (default 0.01, Keras' `l2`: no ½); throws ArgumentError unless finite and >= 0. */
export const l2 = (factor = 0.01): Regularizer => ({ l1: 0, l2: check(factor, 'L2') });
/** Both penalties, l1f·Σ|w| + l2f·Σw² (defaults 0.01, Keras' `l1_l2`). */
export const l1l2 = (l1f = 0.01, l2f = 0.01): Regularizer => ({ l1: check(l1f, 'L1'), l2: check(l2f, 'L2') });

/** l1·Σ|t| + l2·Σt² (Keras' convention: no 1/2 factor), differentiable. */
export function penalty(r: Regularizer, t: Tensor): Tensor {
  if (r === null || typeof r !== 'object') throw new ArgumentError(`penalty needs a regularizer (nn.l1, nn.l2, nn.l1l2), got ${describe(r)}`);
  check(r.l1 ?? 0, 'L1');
  check(r.l2 ?? 0, 'L2');
  assertTensor(t, 'penalty needs a Tensor');
  const parts: Tensor[] = [];
  if (r.l1 > 0) parts.push(t.abs().sum().mul(r.l1));
  if (r.l2 > 0) parts.push(t.square().sum().mul(r.l2));
  if (parts.length === 0) return t.sum().mul(0);
  return parts.length === 1 ? parts[0] : parts[0].add(parts[1]);
}
