/** A finite-difference gradient check for every differentiable op, in Node and in Chromium. */
import { beforeAll, describe, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { awayFromZero, gradcheck, setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const v = vals;

describe('gradients: arithmetic with broadcasting', () => {
  it('add', () => gradcheck('add', [{ shape: [3, 4], values: v(12, 1) }, { shape: [4], values: v(4, 2) }], ([a, b]) => a.add(b)));
  it('sub', () => gradcheck('sub', [{ shape: [2, 3, 1], values: v(6, 3) }, { shape: [3, 4], values: v(12, 4) }], ([a, b]) => a.sub(b)));
  it('mul', () => gradcheck('mul', [{ shape: [3, 4], values: v(12, 5) }, { shape: [3, 1], values: v(3, 6) }], ([a, b]) => a.mul(b)));
  it('div', () => gradcheck('div', [{ shape: [3, 4], values: v(12, 7) }, { shape: [1, 4], values: awayFromZero(4, 8, 0.5, 2) }], ([a, b]) => a.div(b)));
  it('pow (tensor exponent)', () => gradcheck('pow', [{ shape: [2, 3], values: v(6, 9, 0.5, 2) }, { shape: [3], values: v(3, 10) }], ([a, b]) => a.pow(b)));
  it('pow (scalar exponent)', () => gradcheck('pow scalar', [{ shape: [6], values: v(6, 11, 0.2, 2) }], ([a]) => a.pow(2.5)));
  it('square', () => gradcheck('square', [{ shape: [6], values: v(6, 12) }], ([a]) => a.square()));
  it('maximum', () => gradcheck('maximum', [{ shape: [8], values: v(8, 13) }, { shape: [8], values: v(8, 14) }], ([a, b]) => a.maximum(b)));
  it('minimum', () => gradcheck('minimum', [{ shape: [2, 4], values: v(8, 15) }, { shape: [4], values: v(4, 16) }], ([a, b]) => a.minimum(b)));
  it('scalar add/sub/mul/affine', () => gradcheck('scalars', [{ shape: [5], values: v(5, 17) }], ([a]) => a.add(0.3).sub(0.1).mul(2).affine(-1.5, 0.25)));
  it('same tensor twice', () => gradcheck('x*x', [{ shape: [5], values: v(5, 18) }], ([a]) => a.mul(a)));
  it('functional ops with numbers', () => gradcheck('functional', [{ shape: [4], values: v(4, 19, 0.5, 1) }], ([a]) => eg.div(1, eg.sub(2, a))));
});

describe('gradients: unary math and activations', () => {
  it('neg', () => gradcheck('neg', [{ shape: [2, 3], values: v(6, 20) }], ([a]) => a.neg()));
  it('exp', () => gradcheck('exp', [{ shape: [2, 3], values: v(6, 21) }], ([a]) => a.exp()));
  it('log', () => gradcheck('log', [{ shape: [6], values: v(6, 22, 0.2, 3) }], ([a]) => a.log()));
  it('sqrt', () => gradcheck('sqrt', [{ shape: [6], values: v(6, 23, 0.2, 3) }], ([a]) => a.sqrt()));
  it('abs', () => gradcheck('abs', [{ shape: [6], values: awayFromZero(6, 24) }], ([a]) => a.abs()));
  it('clamp', () => gradcheck('clamp', [{ shape: [8], values: awayFromZero(8, 25, 0.1, 2) }], ([a]) => a.clamp(-0.8, 0.9)));
  it('relu', () => gradcheck('relu', [{ shape: [8], values: awayFromZero(8, 26, 0.05, 1) }], ([a]) => a.relu()));
  it('sigmoid', () => gradcheck('sigmoid', [{ shape: [8], values: v(8, 27, -4, 4) }], ([a]) => a.sigmoid()));
  it('tanh', () => gradcheck('tanh', [{ shape: [8], values: v(8, 28, -2, 2) }], ([a]) => a.tanh()));
});

describe('gradients: matmul', () => {
  it('2-D', () => gradcheck('matmul', [{ shape: [3, 4], values: v(12, 40) }, { shape: [4, 5], values: v(20, 41) }], ([a, b]) => a.matmul(b)));
  it('batched', () => gradcheck('bmm', [{ shape: [2, 3, 4], values: v(24, 42) }, { shape: [2, 4, 5], values: v(40, 43) }], ([a, b]) => a.matmul(b)));
  it('broadcast batch', () => gradcheck('bmm bcast', [{ shape: [2, 3, 4], values: v(24, 44) }, { shape: [4, 5], values: v(20, 45) }], ([a, b]) => a.matmul(b)));
  it('vector', () => gradcheck('vecmat', [{ shape: [4], values: v(4, 46) }, { shape: [4, 5], values: v(20, 47) }], ([a, b]) => a.matmul(b)));
  it('transposed operands', () => gradcheck('matmulT', [{ shape: [4, 3], values: v(12, 48) }, { shape: [5, 4], values: v(20, 49) }], ([a, b]) => a.matmulT(b, true, true)));
  it('large enough to use the thread pool', () => gradcheck('big', [{ shape: [40, 60], values: v(2400, 50, -0.5, 0.5) }, { shape: [60, 3], values: v(180, 51) }], ([a, b]) => a.matmul(b).tanh(), 3e-2));
});

describe('gradients: layout', () => {
  it('reshape', () => gradcheck('reshape', [{ shape: [3, 4], values: v(12, 60) }], ([a]) => a.mul(2).reshape([2, -1])));
  it('permute', () => gradcheck('permute', [{ shape: [2, 3, 4], values: v(24, 61) }], ([a]) => a.permute([2, 0, 1]).contiguous()));
  it('transpose', () => gradcheck('transpose', [{ shape: [3, 4], values: v(12, 62) }], ([a]) => a.transpose(0, 1)));
  it('slice with steps', () => gradcheck('slice', [{ shape: [4, 6], values: v(24, 63) }], ([a]) => a.slice([1, 0], [4, 6], [2, 2])));
  it('slice negative bounds', () => gradcheck('slice neg', [{ shape: [5], values: v(5, 64) }], ([a]) => a.slice([-3], [-1])));
  it('concat', () => gradcheck('concat', [{ shape: [2, 3], values: v(6, 65) }, { shape: [2, 2], values: v(4, 66) }], ([a, b]) => eg.concat([a, b], 1)));
  it('stack', () => gradcheck('stack', [{ shape: [3], values: v(3, 67) }, { shape: [3], values: v(3, 68) }], ([a, b]) => eg.stack([a, b], 1)));
  it('indexSelect', () => gradcheck('indexSelect', [{ shape: [4, 3], values: v(12, 69) }], ([a]) => a.indexSelect(0, eg.tensor([[3, 0], [3, 1]], undefined, 'int32'))));
  it('gather', () => gradcheck('gather', [{ shape: [3, 4], values: v(12, 70) }], ([a]) => a.gather(1, eg.tensor([[0, 3], [1, 1], [2, 0]], undefined, 'int32'))));
  it('expand', () => gradcheck('expand', [{ shape: [3, 1], values: v(3, 71) }], ([a]) => a.expand([2, 3, 4])));
  it('squeeze / expandDims', () => gradcheck('squeeze', [{ shape: [3, 1], values: v(3, 72) }], ([a]) => a.squeeze().expandDims(0)));
  it('where', () => gradcheck('where', [{ shape: [6], values: v(6, 73) }, { shape: [6], values: v(6, 74) }], ([a, b]) => eg.where(eg.tensor([1, 0, 1, 1, 0, 0]), a, b)));
  it('clone', () => gradcheck('clone', [{ shape: [4], values: v(4, 75) }], ([a]) => a.clone().mul(3)));
});

describe('gradients: reductions and softmax', () => {
  it('sum (all)', () => gradcheck('sum', [{ shape: [3, 4], values: v(12, 80) }], ([a]) => a.sum()));
  it('sum (axis, keepDims)', () => gradcheck('sum axis', [{ shape: [2, 3, 4], values: v(24, 81) }], ([a]) => a.sum(1, true)));
  it('sum (non-adjacent axes)', () => gradcheck('sum 0,2', [{ shape: [2, 3, 4], values: v(24, 82) }], ([a]) => a.sum([0, 2])));
  it('mean', () => gradcheck('mean', [{ shape: [2, 3, 4], values: v(24, 83) }], ([a]) => a.mean(-1)));
  it('max', () => gradcheck('max', [{ shape: [2, 3, 4], values: v(24, 84) }], ([a]) => a.max(1)));
  it('min', () => gradcheck('min', [{ shape: [2, 3, 4], values: v(24, 85) }], ([a]) => a.min([0, 2], true)));
  it('softmax (last axis)', () => gradcheck('softmax', [{ shape: [3, 4], values: v(12, 86) }], ([a]) => a.softmax()));
  it('softmax (axis 0)', () => gradcheck('softmax 0', [{ shape: [3, 4], values: v(12, 87) }], ([a]) => a.softmax(0)));
  it('logSoftmax', () => gradcheck('logSoftmax', [{ shape: [3, 4], values: v(12, 88) }], ([a]) => a.logSoftmax(1)));
});
