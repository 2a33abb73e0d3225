/**
 * Reference parity with TensorFlow.js (CPU backend) as an independent oracle: for identical
 * weights and inputs, layers, activations, losses and one optimizer step agree within 1e-5
 * relative, measured as max|ours − tfjs| / max|tfjs| over each output. Runs in Node and Chromium.
 * Pieces tfjs lacks (GELU, SiLU, AdamW) are checked against their formulas in layers/optim tests.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
  await tf.setBackend('cpu');
});

const F = eg.nn.functional;

function close(ours: eg.Tensor | ArrayLike<number>, ref: tf.Tensor | ArrayLike<number>, what: string, tol = 1e-5): void {
  const a = ours instanceof eg.Tensor ? ours.dataSync() : ours;
  const b = ref instanceof tf.Tensor ? ref.dataSync() : ref;
  expect(a.length, `${what}: element count`).toBe(b.length);
  let maxRef = 0;
  let maxErr = 0;
  for (let i = 0; i < b.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(b[i]));
    maxErr = Math.max(maxErr, Math.abs(a[i] - b[i]));
  }
  expect(maxErr / Math.max(maxRef, 1e-30), `${what}: relative error (max abs err ${maxErr}, max |ref| ${maxRef})`).toBeLessThanOrEqual(tol);
}

const data = (shape: number[], seed: number, lo = -1, hi = 1) => ({ shape, v: vals(shape.reduce((a, b) => a * b, 1), seed, lo, hi) });

/** d/dx of Σ w·avgPool3x3/2('same', padding excluded) for NHWC `shape`, in float64. */
function avgPoolSameGrad(shape: number[], w: ArrayLike<number>, outShape: number[]): Float64Array {
  const [n, h, wd, c] = shape;
  const [, oh, ow] = outShape;
  const padT = Math.floor(Math.max((oh - 1) * 2 + 3 - h, 0) / 2);
  const padL = Math.floor(Math.max((ow - 1) * 2 + 3 - wd, 0) / 2);
  const g = new Float64Array(n * h * wd * c);
  for (let b = 0; b < n; b++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    const cells: [number, number][] = [];
    for (let di = 0; di < 3; di++) for (let dj = 0; dj < 3; dj++) {
      const y = i * 2 - padT + di;
      const xx = j * 2 - padL + dj;
      if (y >= 0 && y < h && xx >= 0 && xx < wd) cells.push([y, xx]);
    }
    for (let ch = 0; ch < c; ch++) {
      const share = w[((b * oh + i) * ow + j) * c + ch] / cells.length;
      for (const [y, xx] of cells) g[((b * h + y) * wd + xx) * c + ch] += share;
    }
  }
  return g;
}

describe('parity with tfjs: layers', () => {
  it('Dense forward and gradients (weights [out, in] = tfjs kernelᵀ)', () => {
    const x = data([5, 7], 1);
    const k = data([7, 4], 2);
    const b = data([4], 3);
    eg.tidy(() => {
      const xe = eg.tensor(x.v, x.shape).requiresGrad_();
      const we = eg.tensor(k.v, k.shape).transpose().contiguous().detach().requiresGrad_();
      const be = eg.tensor(b.v, b.shape).requiresGrad_();
      const ye = F.linear(xe, we, be);
      ye.sum().backward();
      const [xt, kt, bt] = [tf.tensor(x.v, x.shape), tf.tensor(k.v, k.shape), tf.tensor(b.v, b.shape)];
      const f = (xx: tf.Tensor, kk: tf.Tensor, bb: tf.Tensor) => tf.add(tf.matMul(xx as tf.Tensor2D, kk as tf.Tensor2D), bb);
      close(ye, f(xt, kt, bt), 'dense forward');
      const [gx, gk, gb] = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => f(a, c, d).sum())([xt, kt, bt]);
      close(xe.grad!, gx, 'dense dx');
      close(we.grad!.transpose(), gk, 'dense dW');
      close(be.grad!, gb, 'dense db');
    });
  });

  const convCases: { name: string; x: number[]; k: number[]; stride: [number, number]; pad: 'same' | 'valid'; dil: [number, number] }[] = [
    { name: '3x3 same', x: [2, 7, 6, 3], k: [3, 3, 3, 4], stride: [1, 1], pad: 'same', dil: [1, 1] },
    { name: '3x3 stride 2 same', x: [2, 8, 7, 2], k: [3, 3, 2, 5], stride: [2, 2], pad: 'same', dil: [1, 1] },
    { name: '5x3 valid', x: [1, 9, 8, 3], k: [5, 3, 3, 2], stride: [1, 2], pad: 'valid', dil: [1, 1] },
    { name: 'dilated', x: [1, 9, 9, 2], k: [3, 3, 2, 3], stride: [1, 1], pad: 'valid', dil: [2, 2] },
    { name: '1x1', x: [2, 4, 4, 6], k: [1, 1, 6, 5], stride: [1, 1], pad: 'valid', dil: [1, 1] },
  ];
  for (const c of convCases) {
    it(`Conv2d ${c.name}: forward and gradients`, () => {
      const x = data(c.x, 10);
      const k = data(c.k, 11);
      const b = data([c.k[3]], 12);
      eg.tidy(() => {
        const xe = eg.tensor(x.v, x.shape).requiresGrad_();
        const we = eg.tensor(k.v, k.shape).requiresGrad_();
        const be = eg.tensor(b.v, b.shape).requiresGrad_();
        const ye = F.conv2d(xe, we, be, { stride: c.stride, padding: c.pad, dilation: c.dil });
        const wout = eg.rand(ye.shape, -1, 1, { seed: 13 });
        ye.mul(wout).sum().backward();
        const f = (xx: tf.Tensor, kk: tf.Tensor, bb: tf.Tensor) =>
          tf.add(tf.conv2d(xx as tf.Tensor4D, kk as tf.Tensor4D, c.stride, c.pad, 'NHWC', c.dil), bb);
        const [xt, kt, bt] = [tf.tensor(x.v, x.shape), tf.tensor(k.v, k.shape), tf.tensor(b.v, b.shape)];
        close(ye, f(xt, kt, bt), 'conv forward');
        // tfjs has no gradients for dilation > 1; ours are checked by finite differences in nn.test.ts
        if (c.dil[0] > 1) return;
        const wt = tf.tensor(wout.dataSync(), wout.shape);
        const [gx, gk, gb] = tf.grads((a: tf.Tensor, d: tf.Tensor, e: tf.Tensor) => f(a, d, e).mul(wt).sum())([xt, kt, bt]);
        close(xe.grad!, gx, 'conv dx');
        close(we.grad!, gk, 'conv dW');
        close(be.grad!, gb, 'conv db');
      });
    });
  }

  it('depthwise Conv2d (groups = channels) against tf.depthwiseConv2d', () => {
    const x = data([2, 6, 6, 3], 20);
    const k = data([3, 3, 3, 2], 21); // tfjs [kh, kw, C, multiplier]
    eg.tidy(() => {
      const ye = F.conv2d(eg.tensor(x.v, x.shape), eg.tensor(k.v, [3, 3, 1, 6]), null, { padding: 'same', groups: 3 });
      close(ye, tf.depthwiseConv2d(tf.tensor4d(x.v, x.shape as [number, number, number, number]), tf.tensor4d(k.v, k.shape as [number, number, number, number]), 1, 'same'), 'depthwise forward');
    });
  });

  for (const [kind, pad] of [['max', 'valid'], ['max', 'same'], ['avg', 'valid'], ['avg', 'same']] as const) {
    it(`${kind} pooling (${pad}): forward and gradient`, () => {
      const x = data([2, 7, 5, 3], 30);
      eg.tidy(() => {
        const xe = eg.tensor(x.v, x.shape).requiresGrad_();
        const ye = kind === 'max' ? F.maxPool2d(xe, 3, { stride: 2, padding: pad }) : F.avgPool2d(xe, 3, { stride: 2, padding: pad, countIncludePad: false }); // TensorFlow's 'same' excludes padding
        const wout = eg.rand(ye.shape, -1, 1, { seed: 31 });
        ye.mul(wout).sum().backward();
        const f = (xx: tf.Tensor) => (kind === 'max' ? tf.maxPool : tf.avgPool)(xx as tf.Tensor4D, 3, 2, pad);
        const xt = tf.tensor(x.v, x.shape);
        close(ye, f(xt), 'pool forward');
        if (kind === 'avg' && pad === 'same') {
          // tfjs's avgPool gradient divides by the full window even where its forward excluded the
          // padding (so it is not the derivative of its own output); compare with the exact
          // derivative of that forward instead: each output's weight spread over its valid inputs.
          close(xe.grad!, avgPoolSameGrad(x.shape, wout.dataSync(), ye.shape), 'pool dx (exact derivative)');
          return;
        }
        const wt = tf.tensor(wout.dataSync(), wout.shape);
        close(xe.grad!, tf.grad((a: tf.Tensor) => f(a).mul(wt).sum())(xt), 'pool dx');
      });
    });
  }

  it('BatchNorm in training mode: output, gradients and running statistics (Keras convention)', () => {
    const x = data([4, 3, 3, 5], 40, -2, 3);
    const g = data([5], 41, 0.5, 1.5);
    const b = data([5], 42);
    eg.tidy(() => {
      const bn = new eg.nn.BatchNorm2d(5, { momentum: 0.01, eps: 1e-3, unbiasedRunningVar: false });
      bn.loadStateDict({ ...bn.stateDict(), weight: eg.tensor(g.v), bias: eg.tensor(b.v) });
      const xe = eg.tensor(x.v, x.shape).requiresGrad_();
      const ye = bn.forward(xe);
      const wout = eg.rand(ye.shape, -1, 1, { seed: 43 });
      ye.mul(wout).sum().backward();
      const layer = tf.layers.batchNormalization({ axis: -1, momentum: 0.99, epsilon: 1e-3, gammaInitializer: 'ones' });
      const xt = tf.tensor4d(x.v, x.shape as [number, number, number, number]);
      layer.build(xt.shape);
      layer.setWeights([tf.tensor1d(g.v), tf.tensor1d(b.v), tf.zeros([5]), tf.ones([5])]);
      const yt = layer.apply(xt, { training: true }) as tf.Tensor;
      close(ye, yt, 'batchnorm train forward');
      const [, , mm, mv] = layer.getWeights();
      const sd = bn.stateDict();
      close(sd.running_mean, mm, 'running mean');
      close(sd.running_var, mv, 'running var');
      // gradient of the training-mode formula, through the batch statistics
      const wt = tf.tensor(wout.dataSync(), wout.shape);
      const gt = tf.tensor1d(g.v);
      const btt = tf.tensor1d(b.v);
      const dx = tf.grad((a: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.batchNorm(a as tf.Tensor4D, mean, variance, btt, gt, 1e-3).mul(wt).sum();
      })(xt);
      close(xe.grad!, dx, 'batchnorm train dx');
    });
  });

  it('BatchNorm in evaluation mode uses the running statistics', () => {
    const x = data([3, 4], 50, -2, 2);
    eg.tidy(() => {
      const bn = new eg.nn.BatchNorm1d(4, { eps: 1e-3 });
      const st = { weight: data([4], 51, 0.5, 2), bias: data([4], 52), running_mean: data([4], 53), running_var: data([4], 54, 0.5, 2) };
      bn.loadStateDict(Object.fromEntries(Object.entries(st).map(([k, d]) => [k, eg.tensor(d.v)])));
      bn.eval();
      const ye = bn.forward(eg.tensor(x.v, x.shape));
      const yt = tf.batchNorm(tf.tensor2d(x.v, x.shape as [number, number]), tf.tensor1d(st.running_mean.v), tf.tensor1d(st.running_var.v),
        tf.tensor1d(st.bias.v), tf.tensor1d(st.weight.v), 1e-3);
      close(ye, yt, 'batchnorm eval');
    });
  });
});

describe('parity with tfjs: activations', () => {
  const x = data([4, 6], 60, -3, 3);
  const cases: [string, (t: eg.Tensor) => eg.Tensor, (t: tf.Tensor) => tf.Tensor][] = [
    ['relu', (t) => t.relu(), (t) => tf.relu(t)],
    ['leakyRelu', (t) => t.leakyRelu(0.2), (t) => tf.leakyRelu(t, 0.2)],
    ['elu', (t) => t.elu(), (t) => tf.elu(t)],
    ['sigmoid', (t) => t.sigmoid(), (t) => tf.sigmoid(t)],
    ['tanh', (t) => t.tanh(), (t) => tf.tanh(t)],
    ['softplus', (t) => t.softplus(), (t) => tf.softplus(t)],
    ['softmax', (t) => t.softmax(), (t) => tf.softmax(t)],
    ['logSoftmax', (t) => t.logSoftmax(), (t) => tf.logSoftmax(t)],
  ];
  for (const [name, ours, ref] of cases) {
    it(`${name}: forward and gradient`, () => {
      eg.tidy(() => {
        const xe = eg.tensor(x.v, x.shape).requiresGrad_();
        const ye = ours(xe);
        const w = eg.rand(ye.shape, -1, 1, { seed: 61 });
        ye.mul(w).sum().backward();
        const xt = tf.tensor(x.v, x.shape);
        close(ye, ref(xt), `${name} forward`);
        const wt = tf.tensor(w.dataSync(), w.shape);
        close(xe.grad!, tf.grad((a: tf.Tensor) => ref(a).mul(wt).sum())(xt), `${name} gradient`);
      });
    });
  }
});

describe('parity with tfjs: losses', () => {
  const p = data([6, 5], 70);
  const probs = () => eg.tensor(p.v, p.shape).softmax();
  const labels = Int32Array.from([0, 3, 4, 1, 1, 2]);
  const onehot = () => eg.data.oneHot(eg.tensor(labels, [6], 'int32'), 5);
  const target = data([6, 5], 71);
  const bin = Float32Array.from(vals(30, 72, 0, 1), (v) => (v > 0.5 ? 1 : 0));
  const cases: [string, () => eg.Tensor, () => tf.Tensor][] = [
    ['mse', () => eg.losses.mse(eg.tensor(p.v, p.shape), eg.tensor(target.v, target.shape)),
      () => tf.losses.meanSquaredError(tf.tensor(target.v, target.shape), tf.tensor(p.v, p.shape))],
    ['mae', () => eg.losses.mae(eg.tensor(p.v, p.shape), eg.tensor(target.v, target.shape)),
      () => tf.losses.absoluteDifference(tf.tensor(target.v, target.shape), tf.tensor(p.v, p.shape))],
    ['huber', () => eg.losses.huber(eg.tensor(p.v, p.shape).mul(3), eg.tensor(target.v, target.shape), { delta: 1 }),
      () => tf.losses.huberLoss(tf.tensor(target.v, target.shape), tf.tensor(p.v, p.shape).mul(3), undefined, 1)],
    ['binary cross-entropy (logits)', () => eg.losses.binaryCrossEntropy(eg.tensor(p.v, p.shape).mul(4), eg.tensor(bin, p.shape), { fromLogits: true }),
      () => tf.losses.sigmoidCrossEntropy(tf.tensor(bin, p.shape), tf.tensor(p.v, p.shape).mul(4))],
    ['binary cross-entropy (probabilities)', () => eg.losses.binaryCrossEntropy(eg.tensor(p.v, p.shape).sigmoid(), eg.tensor(bin, p.shape)),
      () => tf.metrics.binaryCrossentropy(tf.tensor(bin, p.shape), tf.sigmoid(tf.tensor(p.v, p.shape))).mean()],
    ['categorical cross-entropy (logits, label smoothing 0.1)', () => eg.losses.categoricalCrossEntropy(eg.tensor(p.v, p.shape).mul(3), onehot(), { fromLogits: true, labelSmoothing: 0.1 }),
      () => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, 'int32'), 5), tf.tensor(p.v, p.shape).mul(3), undefined, 0.1)],
    ['categorical cross-entropy (probabilities)', () => eg.losses.categoricalCrossEntropy(probs(), onehot()),
      () => tf.metrics.categoricalCrossentropy(tf.oneHot(tf.tensor1d(labels, 'int32'), 5), tf.softmax(tf.tensor(p.v, p.shape))).mean()],
    ['sparse categorical cross-entropy', () => eg.losses.sparseCategoricalCrossEntropy(probs(), eg.tensor(labels, [6], 'int32')),
      () => tf.metrics.categoricalCrossentropy(tf.oneHot(tf.tensor1d(labels, 'int32'), 5), tf.softmax(tf.tensor(p.v, p.shape))).mean()],
    ['KL divergence (batchmean)', () => eg.losses.klDivergence(probs(), eg.tensor(target.v, target.shape).softmax(), { reduction: 'batchmean' }),
      () => {
        const t = tf.softmax(tf.tensor(target.v, target.shape));
        return t.mul(t.log().sub(tf.softmax(tf.tensor(p.v, p.shape)).log())).sum(-1).mean();
      }],
  ];
  for (const [name, ours, ref] of cases) {
    it(name, () => {
      eg.tidy(() => close(ours(), ref(), name));
    });
  }
});

describe('parity with tfjs: one optimizer step', () => {
  const p0 = data([3, 4], 80);
  const grad = data([3, 4], 81);
  function ourStep(make: (ps: eg.Tensor[]) => eg.optim.Optimizer<{ lr: number }>): Float32Array {
    return eg.tidy(() => {
      const p = eg.tensor(p0.v, p0.shape).requiresGrad_();
      p.mul(eg.tensor(grad.v, grad.shape)).sum().backward(); // dL/dp = grad
      const opt = make([p]);
      opt.step();
      const out = p.dataSync() as Float32Array;
      opt.dispose();
      return out;
    });
  }
  function tfStep(opt: tf.Optimizer): Float32Array {
    const v = tf.variable(tf.tensor(p0.v, p0.shape));
    opt.applyGradients([{ name: v.name, tensor: tf.tensor(grad.v, grad.shape) }]);
    return v.dataSync() as Float32Array;
  }
  const cases: [string, (ps: eg.Tensor[]) => eg.optim.Optimizer<{ lr: number }>, () => tf.Optimizer][] = [
    ['SGD', (ps) => new eg.optim.SGD(ps, { lr: 0.1 }), () => tf.train.sgd(0.1)],
    ['SGD momentum', (ps) => new eg.optim.SGD(ps, { lr: 0.1, momentum: 0.9 }), () => tf.train.momentum(0.1, 0.9)],
    ['SGD Nesterov', (ps) => new eg.optim.SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true }), () => tf.train.momentum(0.1, 0.9, true)],
    ['Adam', (ps) => new eg.optim.Adam(ps, { lr: 0.01, eps: 1e-7 }), () => tf.train.adam(0.01, 0.9, 0.999, 1e-7)],
    // tfjs adds eps inside the square root, PyTorch (and we) outside: a tiny eps makes both the same update
    ['RMSProp', (ps) => new eg.optim.RMSProp(ps, { lr: 0.01, alpha: 0.9, eps: 1e-10 }), () => tf.train.rmsprop(0.01, 0.9, 0, 1e-10)],
    ['Adagrad', (ps) => new eg.optim.Adagrad(ps, { lr: 0.1, initialAccumulatorValue: 0.1, eps: 0 }), () => tf.train.adagrad(0.1, 0.1)],
  ];
  for (const [name, ours, ref] of cases) {
    it(name, () => {
      close(ourStep(ours), tfStep(ref()), name);
    });
  }
});
