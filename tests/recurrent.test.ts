/**
 * Recurrent layers: parity with TensorFlow.js layers (forward and every gradient, identical
 * weights, gate orders mapped), masking and variable-length batches, stacking, bidirectional,
 * initial state in/out, training on small tasks, saving, errors and memory.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
  await tf.setBackend('cpu');
});

const { nn } = eg;

/** max|ours − ref| / max|ref| (the measure of parity-tfjs.test.ts). */
function close(ours: eg.Tensor | ArrayLike<number>, ref: tf.Tensor | ArrayLike<number>, what: string, tol = 1e-4): void {
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

/**
 * Keras `[in, G·H]` (blocks in Keras' gate order) -> PyTorch `[G·H, in]` with blocks reordered:
 * block q of the result is Keras block `order[q]`.
 */
function kerasToTorch(k: ArrayLike<number>, inDim: number, h: number, order: number[]): Float32Array {
  const g = order.length;
  const out = new Float32Array(g * h * inDim);
  for (let q = 0; q < g; q++) for (let j = 0; j < h; j++) for (let i = 0; i < inDim; i++) {
    out[(q * h + j) * inDim + i] = k[i * g * h + order[q] * h + j];
  }
  return out;
}
/** Inverse of `kerasToTorch` (to compare our gradients with Keras' layout). */
function torchToKeras(t: ArrayLike<number>, inDim: number, h: number, order: number[]): Float32Array {
  const g = order.length;
  const out = new Float32Array(g * h * inDim);
  for (let q = 0; q < g; q++) for (let j = 0; j < h; j++) for (let i = 0; i < inDim; i++) {
    out[i * g * h + order[q] * h + j] = t[(q * h + j) * inDim + i];
  }
  return out;
}
function reorderBias(b: ArrayLike<number>, h: number, order: number[], inverse = false): Float32Array {
  const out = new Float32Array(order.length * h);
  order.forEach((src, q) => {
    for (let j = 0; j < h; j++) {
      if (inverse) out[src * h + j] = b[q * h + j];
      else out[q * h + j] = b[src * h + j];
    }
  });
  return out;
}

type Kind = 'simpleRNN' | 'lstm' | 'gru';
const GATES: Record<Kind, number> = { simpleRNN: 1, lstm: 4, gru: 3 };
// Keras gate orders relative to ours: LSTM i,f,c,o = i,f,g,o; GRU z,r,h -> r,z,n.
const ORDER: Record<Kind, number[]> = { simpleRNN: [0], lstm: [0, 1, 2, 3], gru: [1, 0, 2] };

function tfLayer(kind: Kind, units: number, returnSequences: boolean): tf.layers.Layer {
  const common = { units, returnSequences, recurrentActivation: 'sigmoid' as const };
  if (kind === 'lstm') return tf.layers.lstm(common);
  if (kind === 'gru') return tf.layers.gru(common);
  return tf.layers.simpleRNN({ units, returnSequences });
}

function ourLayer(kind: Kind, inDim: number, h: number, o: eg.nn.RecurrentOptions = {}): eg.nn.Recurrent {
  if (kind === 'lstm') return new nn.LSTM(inDim, h, o);
  if (kind === 'gru') return new nn.GRU(inDim, h, { ...o, resetAfter: false });
  return new nn.SimpleRNN(inDim, h, o);
}

describe('parity with tfjs layers', { timeout: 30_000 }, () => {
  const [B, T, I, H] = [3, 5, 4, 6];
  for (const kind of ['simpleRNN', 'lstm', 'gru'] as Kind[]) {
    for (const returnSequences of [true, false]) {
      it(`${kind} (returnSequences ${returnSequences}): forward and gradients of input, kernel, recurrent kernel and bias`, () => {
        const g = GATES[kind];
        const x = vals(B * T * I, 1);
        const kernel = vals(I * g * H, 2, -0.5, 0.5);
        const rec = vals(H * g * H, 3, -0.5, 0.5);
        const bias = vals(g * H, 4, -0.3, 0.3);
        const order = ORDER[kind];
        eg.tidy(() => {
          const layer = ourLayer(kind, I, H, { returnSequences });
          layer.loadStateDict({
            weight_ih_l0: eg.tensor(kerasToTorch(kernel, I, H, order), [g * H, I]),
            weight_hh_l0: eg.tensor(kerasToTorch(rec, H, H, order), [g * H, H]),
            bias_ih_l0: eg.tensor(reorderBias(bias, H, order)),
            bias_hh_l0: eg.zeros([g * H]),
          });
          const xe = eg.tensor(x, [B, T, I]).requiresGrad_();
          const ye = layer.forward(xe);
          const w = eg.rand(ye.shape, -1, 1, { seed: 5 });
          ye.mul(w).sum().backward();

          const tl = tfLayer(kind, H, returnSequences);
          const xt = tf.tensor3d(x, [B, T, I]);
          tf.dispose(tl.apply(xt) as tf.Tensor); // builds the layer
          tl.setWeights([tf.tensor2d(kernel, [I, g * H]), tf.tensor2d(rec, [H, g * H]), tf.tensor1d(bias)]);
          const yt = tl.apply(xt) as tf.Tensor;
          close(ye, yt, `${kind} forward`);
          const wt = tf.tensor(w.dataSync(), w.shape);
          const dx = tf.grad((a: tf.Tensor) => (tl.apply(a) as tf.Tensor).mul(wt).sum())(xt);
          close(xe.grad!, dx, `${kind} dx`);
          const { grads } = tf.variableGrads(() => (tl.apply(xt) as tf.Tensor).mul(wt).sum() as tf.Scalar);
          const byName = (suffix: string) => Object.entries(grads).find(([n]) => n.endsWith(suffix))![1];
          const p = layer.stateDict();
          close(torchToKeras(p.weight_ih_l0.grad!.dataSync(), I, H, order), byName('/kernel'), `${kind} d kernel`);
          close(torchToKeras(p.weight_hh_l0.grad!.dataSync(), H, H, order), byName('/recurrent_kernel'), `${kind} d recurrent kernel`);
          close(reorderBias(p.bias_ih_l0.grad!.dataSync(), H, order, true), byName('/bias'), `${kind} d bias`);
          close(p.bias_hh_l0.grad!, p.bias_ih_l0.grad!.dataSync(), `${kind}: both biases get the same gradient`, 0);
          layer.dispose();
          tf.dispose([xt, yt, wt, dx, ...Object.values(grads)]);
          tl.dispose();
        });
      });
    }
  }

  it("GRU with reset after (PyTorch's, Keras 2's default) against a GRU written in tfjs ops", () => {
    const g = 3;
    const x = vals(B * T * I, 11);
    const wih = vals(g * H * I, 12, -0.5, 0.5);
    const whh = vals(g * H * H, 13, -0.5, 0.5);
    const bih = vals(g * H, 14, -0.3, 0.3);
    const bhh = vals(g * H, 15, -0.3, 0.3);
    const h0 = vals(B * H, 16);
    eg.tidy(() => {
      const layer = new nn.GRU(I, H);
      layer.loadStateDict({
        weight_ih_l0: eg.tensor(wih, [g * H, I]), weight_hh_l0: eg.tensor(whh, [g * H, H]),
        bias_ih_l0: eg.tensor(bih), bias_hh_l0: eg.tensor(bhh),
      });
      const xe = eg.tensor(x, [B, T, I]).requiresGrad_();
      const h0e = eg.tensor(h0, [1, B, H]).requiresGrad_();
      const r = layer.run(xe, { initialState: h0e });
      const w1 = eg.rand(r.output.shape, -1, 1, { seed: 17 });
      const w2 = eg.rand(r.h.shape, -1, 1, { seed: 18 });
      r.output.mul(w1).sum().add(r.h.mul(w2).sum()).backward();

      // PyTorch's GRU equations in tfjs ops.
      const f = (xx: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, hh0: tf.Tensor) => {
        let hs = hh0.reshape([B, H]);
        const outs: tf.Tensor[] = [];
        const gi = tf.add(tf.matMul(xx.reshape([B * T, I]), a, false, true), c).reshape([B, T, g * H]);
        for (let t = 0; t < T; t++) {
          const xi = gi.slice([0, t, 0], [B, 1, g * H]).reshape([B, g * H]);
          const hr = tf.add(tf.matMul(hs, b, false, true), d);
          const rg = tf.sigmoid(tf.add(xi.slice([0, 0], [B, H]), hr.slice([0, 0], [B, H])));
          const z = tf.sigmoid(tf.add(xi.slice([0, H], [B, H]), hr.slice([0, H], [B, H])));
          const n = tf.tanh(tf.add(xi.slice([0, 2 * H], [B, H]), tf.mul(rg, hr.slice([0, 2 * H], [B, H]))));
          hs = tf.add(tf.mul(tf.sub(1, z), n), tf.mul(z, hs));
          outs.push(hs);
        }
        const seq = tf.stack(outs, 1);
        return tf.add(seq.mul(tf.tensor(w1.dataSync(), w1.shape)).sum(), hs.reshape([1, B, H]).mul(tf.tensor(w2.dataSync(), w2.shape)).sum());
      };
      const args = [tf.tensor(x, [B, T, I]), tf.tensor(wih, [g * H, I]), tf.tensor(whh, [g * H, H]), tf.tensor(bih), tf.tensor(bhh), tf.tensor(h0, [1, B, H])];
      const { value, grads } = tf.valueAndGrads(f)(args);
      const p = layer.stateDict();
      const ours = r.output.mul(w1).sum().add(r.h.mul(w2).sum());
      close(ours, value, 'gru (reset after) objective');
      close(xe.grad!, grads[0], 'gru dx');
      close(p.weight_ih_l0.grad!, grads[1], 'gru d weight_ih');
      close(p.weight_hh_l0.grad!, grads[2], 'gru d weight_hh');
      close(p.bias_ih_l0.grad!, grads[3], 'gru d bias_ih');
      close(p.bias_hh_l0.grad!, grads[4], 'gru d bias_hh');
      close(h0e.grad!, grads[5], 'gru d h0');
      layer.dispose();
      tf.dispose([...args, value, ...grads]);
    });
  });

  it('masked LSTM: the final state and the outputs at real steps match tfjs with a mask', () => {
    const g = 4;
    const lengths = [5, 3, 1];
    const x = vals(B * T * I, 21);
    const kernel = vals(I * g * H, 22, -0.5, 0.5);
    const rec = vals(H * g * H, 23, -0.5, 0.5);
    const bias = vals(g * H, 24, -0.3, 0.3);
    eg.tidy(() => {
      const ours = new nn.LSTM(I, H);
      ours.loadStateDict({
        weight_ih_l0: eg.tensor(kerasToTorch(kernel, I, H, ORDER.lstm), [g * H, I]),
        weight_hh_l0: eg.tensor(kerasToTorch(rec, H, H, ORDER.lstm), [g * H, H]),
        bias_ih_l0: eg.tensor(bias), bias_hh_l0: eg.zeros([g * H]),
      });
      const r = ours.run(eg.tensor(x, [B, T, I]), { lengths });
      const maskArr = lengths.flatMap((l) => Array.from({ length: T }, (_, t) => t < l));
      const tl = tf.layers.lstm({ units: H, returnSequences: true, returnState: true, recurrentActivation: 'sigmoid' });
      const xt = tf.tensor3d(x, [B, T, I]);
      tf.dispose(tl.apply(xt) as tf.Tensor[]);
      tl.setWeights([tf.tensor2d(kernel, [I, g * H]), tf.tensor2d(rec, [H, g * H]), tf.tensor1d(bias)]);
      const [seq, hT, cT] = tl.apply(xt, { mask: tf.tensor2d(maskArr, [B, T], 'bool') }) as tf.Tensor[];
      close(r.h, hT, 'final h');
      close(r.c!, cT, 'final c');
      // Outputs agree at real steps; at padded steps ours are 0 (tfjs repeats the previous output).
      const a = r.output.dataSync();
      const s = seq.dataSync();
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let j = 0; j < H; j++) {
        const k = (b * T + t) * H + j;
        if (t < lengths[b]) expect(Math.abs(a[k] - s[k])).toBeLessThan(1e-5);
        else expect(a[k]).toBe(0);
      }
      ours.dispose();
      tf.dispose([xt, seq, hT, cT]);
      tl.dispose();
    });
  });

  it('Bidirectional LSTM matches tf.layers.bidirectional (concat)', () => {
    const g = 4;
    const ws = [1, 2, 3, 4, 5, 6].map((s, i) => vals((i % 3 === 0 ? I : i % 3 === 1 ? H : 1) * g * H, 30 + s, -0.5, 0.5));
    const x = vals(B * T * I, 29);
    eg.tidy(() => {
      const bi = new nn.Bidirectional(new nn.LSTM(I, H));
      const sd = (k: number) => ({
        weight_ih_l0: eg.tensor(kerasToTorch(ws[k], I, H, ORDER.lstm), [g * H, I]),
        weight_hh_l0: eg.tensor(kerasToTorch(ws[k + 1], H, H, ORDER.lstm), [g * H, H]),
        bias_ih_l0: eg.tensor(ws[k + 2]), bias_hh_l0: eg.zeros([g * H]),
      });
      bi.forwardLayer.loadStateDict(sd(0));
      bi.backwardLayer.loadStateDict(sd(3));
      const ye = bi.forward(eg.tensor(x, [B, T, I]));
      const tl = tf.layers.bidirectional({ layer: tf.layers.lstm({ units: H, returnSequences: true, recurrentActivation: 'sigmoid' }) as tf.RNN, mergeMode: 'concat' });
      const xt = tf.tensor3d(x, [B, T, I]);
      tf.dispose(tl.apply(xt) as tf.Tensor);
      tl.setWeights([tf.tensor2d(ws[0], [I, g * H]), tf.tensor2d(ws[1], [H, g * H]), tf.tensor1d(ws[2]),
        tf.tensor2d(ws[3], [I, g * H]), tf.tensor2d(ws[4], [H, g * H]), tf.tensor1d(ws[5])]);
      const yt = tl.apply(xt) as tf.Tensor;
      close(ye, yt, 'bidirectional forward');
      expect(ye.shape).toEqual([B, T, 2 * H]);
      bi.dispose();
      tf.dispose([xt, yt]);
      tl.dispose();
    });
  });
});

describe('structure: masks, stacking, states, bidirectional', () => {
  it('a padded batch gives each sequence the result it gets alone', () => {
    eg.tidy(() => {
      for (const layer of [new nn.LSTM(3, 5, { seed: 1 }), new nn.GRU(3, 5, { seed: 2 }), new nn.SimpleRNN(3, 5, { seed: 3 })]) {
        const x = eg.tensor(vals(2 * 6 * 3, 40), [2, 6, 3]);
        const both = layer.run(x, { lengths: [6, 4] });
        const short = layer.run(x.slice([1, 0, 0], [2, 4, 3]));
        close(both.h.slice([0, 1, 0], [1, 2, 5]), short.h.dataSync(), `${layer.className}: final state of the short sequence`, 1e-6);
        close(both.output.slice([1, 0, 0], [2, 4, 5]), short.output.dataSync(), `${layer.className}: outputs of the short sequence`, 1e-6);
        expect(Array.from(both.output.slice([1, 4, 0], [2, 6, 5]).dataSync()).every((v) => v === 0)).toBe(true);
        // Reverse direction: starts at each sequence's own last step.
        const bi = new nn.LSTM(3, 4, { bidirectional: true, seed: 9 });
        const rb = bi.run(x, { lengths: [6, 4] });
        const rs = bi.run(x.slice([1, 0, 0], [2, 4, 3]));
        close(rb.output.slice([1, 0, 0], [2, 4, 8]), rs.output.dataSync(), 'bidirectional outputs of the short sequence', 1e-6);
        bi.dispose();
        layer.dispose();
      }
    });
  });

  it('numLayers stacks layers: equal to chaining single layers with the same weights', () => {
    eg.tidy(() => {
      const deep = new nn.GRU(3, 4, { numLayers: 2, bidirectional: true, seed: 5 });
      expect(deep.namedParameters().map(([n]) => n)).toEqual([
        'weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0',
        'weight_ih_l0_reverse', 'weight_hh_l0_reverse', 'bias_ih_l0_reverse', 'bias_hh_l0_reverse',
        'weight_ih_l1', 'weight_hh_l1', 'bias_ih_l1', 'bias_hh_l1',
        'weight_ih_l1_reverse', 'weight_hh_l1_reverse', 'bias_ih_l1_reverse', 'bias_hh_l1_reverse',
      ]);
      const sd = deep.stateDict();
      const l0 = new nn.GRU(3, 4, { bidirectional: true });
      const l1 = new nn.GRU(8, 4, { bidirectional: true });
      l0.loadStateDict(Object.fromEntries(Object.entries(sd).filter(([k]) => k.includes('_l0')).map(([k, v]) => [k, v])));
      l1.loadStateDict(Object.fromEntries(Object.entries(sd).filter(([k]) => k.includes('_l1')).map(([k, v]) => [k.replace('_l1', '_l0'), v])));
      const x = eg.tensor(vals(2 * 5 * 3, 41), [2, 5, 3]);
      const r = deep.run(x);
      const a = l0.run(x);
      const b = l1.run(a.output);
      close(r.output, b.output.dataSync(), 'stacked output', 0);
      expect(r.h.shape).toEqual([4, 2, 4]);
      close(r.h, eg.concat([a.h, b.h], 0).dataSync(), 'final states of every layer and direction', 0);
      for (const m of [deep, l0, l1]) m.dispose();
    });
  });

  it('initial state in, final state out: running in two chunks equals one run', () => {
    eg.tidy(() => {
      const lstm = new nn.LSTM(2, 3, { numLayers: 2, seed: 7 });
      const x = eg.tensor(vals(2 * 7 * 2, 42), [2, 7, 2]);
      const whole = lstm.run(x);
      const first = lstm.run(x.slice([0, 0, 0], [2, 4, 2]));
      const second = lstm.run(x.slice([0, 4, 0], [2, 7, 2]), { initialState: { h: first.h, c: first.c } });
      close(second.output, whole.output.slice([0, 4, 0], [2, 7, 3]).dataSync(), 'continued outputs', 0);
      close(second.h, whole.h.dataSync(), 'final h', 0);
      close(second.c!, whole.c!.dataSync(), 'final c', 0);
      // returnSequences: false gives the last layer's final state.
      const last = new nn.LSTM(2, 3, { numLayers: 2, returnSequences: false, seed: 7 });
      close(last.forward(x), whole.h.slice([1, 0, 0], [2, 2, 3]).dataSync(), 'last state', 0);
      // Gradients reach the initial state.
      const h0 = eg.zeros([2, 2, 3]).requiresGrad_();
      lstm.run(x, { initialState: [h0, eg.zeros([2, 2, 3])] }).output.sum().backward();
      expect(h0.grad!.abs().sum().item()).toBeGreaterThan(0);
      lstm.dispose();
      last.dispose();
    });
  });

  it('Bidirectional of a seeded layer is reproducible, and its backward copy has weights of its own', () => {
    const make = () => new nn.Bidirectional(new nn.LSTM(3, 4, { seed: 5 }));
    const a = make();
    const b = make();
    const w = (m: eg.nn.Module) => m.parameters().map((p) => Array.from(p.dataSync()));
    expect(w(a.backwardLayer)).toEqual(w(b.backwardLayer));
    expect(w(a.backwardLayer)[0]).not.toEqual(w(a.forwardLayer)[0]);
    a.dispose();
    b.dispose();
  });

  it('Bidirectional merge modes and config round trip', async () => {
    const bi = new nn.Bidirectional(new nn.GRU(3, 4, { returnSequences: false, seed: 1 }), { mergeMode: 'ave' });
    expect(bi.namedParameters().map(([n]) => n).slice(0, 2)).toEqual(['forward_layer.weight_ih_l0', 'forward_layer.weight_hh_l0']);
    const art = await eg.saveModel(bi);
    const { model } = await eg.loadModel({ json: art.json, weights: art.weights });
    eg.tidy(() => {
      const x = eg.tensor(vals(2 * 4 * 3, 43), [2, 4, 3]);
      const y = bi.forward(x);
      expect(y.shape).toEqual([2, 4]);
      close(model.forward(x), y.dataSync(), 'reloaded', 0);
      const f = bi.forwardLayer.forward(x);
      const b = bi.backwardLayer.forward(x);
      close(y, f.add(b).mul(0.5).dataSync(), 'ave', 1e-7);
    });
    bi.dispose();
    model.dispose();
  });
});

describe('training', { timeout: 30_000 }, () => {
  /** Next value of a sine wave from the previous 12 (phases and frequencies vary). */
  function sineData(n: number, seed: number): [eg.Tensor, eg.Tensor] {
    const r = vals(2 * n, seed, 0, 1);
    const x = new Float32Array(n * 12);
    const y = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const f = 0.2 + 0.4 * r[2 * i];
      const ph = 6.283 * r[2 * i + 1];
      for (let t = 0; t < 12; t++) x[i * 12 + t] = Math.sin(f * t + ph);
      y[i] = Math.sin(f * 12 + ph);
    }
    return [eg.tensor(x, [n, 12, 1]), eg.tensor(y, [n, 1])];
  }
  const makers: [string, () => eg.nn.Recurrent][] = [
    ['SimpleRNN', () => new nn.SimpleRNN(1, 16, { returnSequences: false, seed: 1 })],
    ['LSTM', () => new nn.LSTM(1, 16, { returnSequences: false, seed: 2 })],
    ['GRU', () => new nn.GRU(1, 16, { returnSequences: false, seed: 3 })],
  ];
  for (const [name, make] of makers) {
    it(`${name} learns to continue a sine wave (loss falls)`, async () => {
      const [x, y] = sineData(128, 50);
      const model = new nn.Sequential(make(), new nn.Linear(16, 1, { seed: 4 }));
      model.compile({ optimizer: new eg.optim.Adam(model.parameters(), { lr: 0.02 }), loss: 'mse' });
      const before = (await model.evaluate(x, y)).loss;
      await model.fit(x, y, { epochs: 12, batchSize: 32, verbose: 0, seed: 1 });
      const after = (await model.evaluate(x, y)).loss;
      expect(after).toBeLessThan(before * 0.1);
      expect(after).toBeLessThan(0.02);
      model.dispose();
      x.dispose();
      y.dispose();
    });
  }

  it('an LSTM classifies the parity of variable-length bit strings (masking)', async () => {
    const n = 256;
    const T = 6;
    const r = vals(n * (T + 1), 60, 0, 1);
    const xs = new Float32Array(n * T * 2);
    const lengths = new Int32Array(n);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const len = 2 + Math.floor(r[i * (T + 1)] * (T - 1));
      lengths[i] = len;
      let p = 0;
      for (let t = 0; t < len; t++) {
        const bit = r[i * (T + 1) + 1 + t] < 0.5 ? 1 : 0;
        p ^= bit;
        xs[(i * T + t) * 2 + bit] = 1; // one-hot bit
      }
      labels[i] = p;
    }
    const lstm = new nn.LSTM(2, 24, { returnSequences: false, seed: 61 });
    const head = new nn.Linear(24, 2, { seed: 62 });
    const params = [...lstm.parameters(), ...head.parameters()];
    const opt = new eg.optim.Adam(params, { lr: 0.02 });
    const x = eg.tensor(xs, [n, T, 2]);
    const y = eg.tensor(labels, [n], 'int32');
    const mask = nn.lengthsToMask(lengths, T);
    const lossOf = () => eg.losses.sparseCategoricalCrossEntropy(head.forward(lstm.forward(x, { mask })), y, { fromLogits: true });
    const first = eg.tidy(() => eg.noGrad(() => lossOf().item()));
    let last = first;
    for (let step = 0; step < 150 && last > 0.05; step++) {
      last = eg.tidy(() => {
        opt.zeroGrad();
        const l = lossOf();
        l.backward();
        opt.step();
        return l.item();
      });
    }
    const acc = eg.tidy(() => eg.noGrad(() => head.forward(lstm.forward(x, { mask })).argMax(-1).cast('float32').equal(y.cast('float32')).mean().item()));
    expect(first).toBeGreaterThan(0.6);
    expect(last).toBeLessThan(first * 0.5);
    expect(acc).toBeGreaterThan(0.9);
    for (const t of [x, y, mask]) t.dispose();
    lstm.dispose();
    head.dispose();
    opt.dispose();
  });
});

describe('errors and memory', () => {
  it('typed errors name the problem', () => {
    const lstm = new nn.LSTM(3, 4);
    eg.tidy(() => {
      expect(() => lstm.forward(eg.zeros([2, 5, 2]))).toThrow(/expects input \[batch, time, 3\], got \[2, 5, 2\]/);
      expect(() => lstm.forward(eg.zeros([2, 5, 3]), { mask: eg.ones([2, 4]) })).toThrow(eg.ShapeError);
      expect(() => lstm.forward(eg.zeros([2, 5, 3]), { initialState: eg.zeros([2, 2, 4]) })).toThrow(/\[1, 2, 4\]/);
      expect(() => new nn.GRU(3, 4).forward(eg.zeros([1, 2, 3]), { initialState: { h: eg.zeros([1, 1, 4]), c: eg.zeros([1, 1, 4]) } })).toThrow(eg.ArgumentError);
      expect(() => nn.recurrent('lstm', eg.zeros([1, 2, 3]), { wIh: eg.zeros([16, 2]), wHh: eg.zeros([16, 4]) })).toThrow(/weight_ih has shape \[16, 2\].*\[16, 3\]/);
      expect(() => nn.lengthsToMask([3, 7], 5)).toThrow(eg.ArgumentError);
      expect(() => new nn.LSTM(0, 4)).toThrow(eg.ArgumentError);
    });
    lstm.dispose();
  });

  it('outputs and gradients are bitwise identical with 1 and 2 threads', () => {
    const lstm = new nn.LSTM(16, 48, { bidirectional: true, seed: 3 });
    const x = eg.tensor(vals(24 * 10 * 16, 71), [24, 10, 16]);
    const run = (threads: number) => {
      eg.setNumThreads(threads);
      try {
        return eg.tidy(() => {
          for (const p of lstm.parameters()) p.zeroGrad();
          const y = lstm.forward(x, { lengths: Array.from({ length: 24 }, (_, i) => 1 + (i % 10)) });
          y.square().sum().backward();
          return [y.dataSync(), ...lstm.parameters().map((p) => p.grad!.dataSync())].map((a) => Array.from(a));
        });
      } finally {
        eg.setNumThreads(eg.backendInfo().maxThreads);
      }
    };
    expect(run(1)).toEqual(run(2));
    lstm.dispose();
    x.dispose();
  });

  it('a training loop keeps the tensor count and engine memory flat', () => {
    const gru = new nn.GRU(4, 8, { numLayers: 2, bidirectional: true, seed: 1 });
    const opt = new eg.optim.SGD(gru.parameters(), { lr: 0.01 });
    const x = eg.tensor(vals(3 * 6 * 4, 70), [3, 6, 4]);
    const step = () => eg.tidy(() => {
      opt.zeroGrad();
      gru.forward(x, { lengths: [6, 2, 4] }).square().mean().backward();
      opt.step();
    });
    step();
    step();
    const before = eg.memory();
    for (let i = 0; i < 5; i++) step();
    const after = eg.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
    expect(after.wasmBytes).toBe(before.wasmBytes);
    gru.dispose();
    opt.dispose();
    x.dispose();
  });
});
