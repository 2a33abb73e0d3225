/**
 * Per-example gradients and clipping (issue 16 §1, §6 first check): the engine's per-example
 * gradients equal a loop of single-example backward passes for every supported layer; clipped sums
 * respect the bound (flat, perLayer, ghost); ghost clipping equals the materialised flat clipping;
 * loss reductions, frozen parameters, refused layers, typed errors, memory and bitwise determinism.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { BAD_ARGUMENTS, setup, expectEachTestFreesItsTensors } from './helpers.js';
import { bits, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';

const { nn, losses, privacy } = eg;
type LossFn = (p: eg.Tensor, t: eg.Tensor) => eg.Tensor;

beforeAll(async () => {
  await setup();
});

expectEachTestFreesItsTensors();

const ce: LossFn = (p, t) => losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true });
const ceSum: LossFn = (p, t) => losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true, reduction: 'sum' });
const mse: LossFn = (p, t) => losses.mse(p, t);

const data = (t: eg.Tensor): Float32Array => Float32Array.from(t.dataSync() as Float32Array);

/** Example i of a batch (any rank, any dtype). */
function row(t: eg.Tensor, i: number): eg.Tensor {
  return eg.tidy(() => t.indexSelect(0, eg.tensor([i], [1], 'int32')));
}

/** Each trainable parameter's gradient for each example alone: name → per-example arrays. */
function loopGradients(model: eg.nn.Module, lossFn: LossFn, x: eg.Tensor, y: eg.Tensor): Map<string, Float32Array[]> {
  const out = new Map<string, Float32Array[]>();
  const named = model.namedParameters().filter(([, p]) => p.requiresGrad);
  for (let i = 0; i < x.shape[0]; i++) {
    eg.tidy(() => {
      for (const [, p] of named) p.zeroGrad();
      lossFn(model.forward(row(x, i)), row(y, i)).backward();
      for (const [n, p] of named) {
        if (!out.has(n)) out.set(n, []);
        out.get(n)!.push(p.grad ? data(p.grad) : new Float32Array(p.size));
        p.zeroGrad();
      }
    });
  }
  return out;
}

/** max |a - b| / max |b| over one parameter's per-example gradients (scale-aware relative error). */
function relError(got: eg.Tensor, want: Float32Array[]): number {
  const g = data(got);
  const len = want[0].length;
  expect(g.length).toBe(len * want.length);
  let err = 0;
  let scale = 0;
  want.forEach((w, i) => w.forEach((v, j) => {
    err = Math.max(err, Math.abs(g[i * len + j] - v));
    scale = Math.max(scale, Math.abs(v));
  }));
  return scale === 0 ? err : err / scale;
}

/** Per-example gradients against the loop, for every trainable parameter. */
function expectMatchesLoop(model: eg.nn.Module, lossFn: LossFn, x: eg.Tensor, y: eg.Tensor, lossReduction: 'mean' | 'sum' = 'mean'): void {
  const want = loopGradients(model, lossFn, x, y);
  const got = privacy.perSampleGradients(model, lossFn, x, y, { lossReduction });
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [n, t] of got) {
    expect(t.shape, n).toEqual([x.shape[0], ...model.stateDict()[n].shape]);
    expect(relError(t, want.get(n)!), n).toBeLessThanOrEqual(1e-5);
  }
  eg.dispose(got);
}

// ------------------------------------------------------------------------------------- models

const classes = (n: number, k: number, seed: number): eg.Tensor => eg.randint([n], 0, k, { seed });

/** Linear layers, one with the fused ReLU epilogue. */
const linearModel = () => new nn.Sequential(new nn.Linear(5, 6, { seed: 1, biasInit: { uniform: [-0.5, 0.5] } }), new nn.Tanh(), new nn.Linear(6, 4, { seed: 2, activation: 'relu', biasInit: { uniform: [0, 0.5] } }), new nn.Linear(4, 3, { seed: 3 }));
/** Linear over sequences `[B, T, in]`. */
const seqModel = (t = 7) => ({ model: new nn.Sequential(new nn.Linear(4, 6, { seed: 4 }), new nn.GELU(), new nn.Linear(6, 3, { seed: 5 })), x: eg.randn([5, t, 4], 0, 1, { seed: 6 }), y: eg.randn([5, t, 3], 0, 1, { seed: 7 }) });
/** Convolutions with stride, padding, groups, dilation, a non-square kernel and a fused ReLU. */
const convModel = () => new nn.Sequential(
  new nn.Conv2d(4, 6, 3, { stride: 2, padding: 1, groups: 2, seed: 8 }), new nn.ReLU(),
  new nn.Conv2d(6, 4, [2, 3], { dilation: 2, padding: 'same', activation: 'relu', seed: 9, biasInit: { uniform: [0, 0.3] } }),
  new nn.Flatten(), new nn.Linear(5 * 4 * 4, 3, { seed: 10 }));
/** A convolution whose ghost norms take the Gram route (9 output pixels, 144 x 32 weights). */
const gramConvModel = () => new nn.Sequential(new nn.Conv2d(16, 32, 3, { seed: 11 }), new nn.Tanh(), new nn.Flatten(), new nn.Linear(9 * 32, 3, { seed: 12 }));
/** Embedding (indices repeat within an example) into a Linear. */
const embeddingModel = () => new nn.Sequential(new nn.Embedding(7, 4, { seed: 13 }), new nn.Linear(4, 3, { seed: 14 }));
const embeddingIdx = () => eg.tensor([0, 1, 0, 4, 4, 4, 2, 2, 2, 2, 2, 2, 0, 1, 2, 3, 4, 0, 6, 5, 6, 5, 1, 3], [4, 6], 'int32');
const layerNormModel = () => new nn.Sequential(new nn.Linear(4, 6, { seed: 15 }), new nn.LayerNorm(6), new nn.Linear(6, 3, { seed: 16 }));
const groupNormModel = () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { padding: 'same', seed: 17 }), new nn.GroupNorm(2, 4), new nn.ReLU(), new nn.Flatten(), new nn.Linear(4 * 4 * 4, 3, { seed: 18 }));

/** Moves the norm layers' affine parameters off their initial ones/zeros so their gradients are generic. */
function perturbNorms(m: eg.nn.Module): void {
  eg.noGrad(() => {
    for (const [n, p] of m.namedParameters()) {
      if (/^1\.(weight|bias)$/.test(n)) eg.tidy(() => p.assign(p.add(eg.rand(p.shape, -0.5, 0.5, { seed: 19 }))));
    }
  });
}

/** A sinusoidal encoding (no parameters) and a TransformerEncoderLayer (packed self-attention, LayerNorms, feed-forward) under a Linear head. */
const encoderModel = () => new nn.Sequential(new nn.SinusoidalPositionalEncoding(8, 16), new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 12, dropout: 0, seed: 45 }), new nn.Linear(8, 3, { seed: 46 }));
/**
 * A learned position table used from position 2, cross-attention with a packed `in_proj_weight`
 * (key and value differ from the query: three separate projections), and causal cross-attention with
 * separate `q/k/v_proj_weight` (kdim 6, vdim 5).
 */
class CrossAttention extends nn.Module {
  pos = this.registerModule('pos', new nn.LearnedPositionalEmbedding(9, 8, { seed: 47 }));
  ctx = this.registerModule('ctx', new nn.Linear(8, 8, { seed: 48 }));
  packed = this.registerModule('packed', new nn.MultiHeadAttention(8, 2, { seed: 49 }));
  kv = this.registerModule('kv', new nn.Linear(8, 11, { seed: 50 }));
  split = this.registerModule('split', new nn.MultiHeadAttention(8, 4, { kdim: 6, vdim: 5, seed: 51 }));
  head = this.registerModule('head', new nn.Linear(8, 3, { seed: 52 }));
  forward(x: eg.Tensor): eg.Tensor {
    return eg.tidy(() => {
      const h = this.pos.forward(x, 2);
      const c = this.ctx.forward(h).tanh();
      const a = this.packed.forward(h, c, c);
      const kv = this.kv.forward(a);
      const [b, t] = kv.shape;
      const k = kv.slice([0, 0, 0], [b, t, 6]);
      const v = kv.slice([0, 0, 6], [b, t, 11]);
      return this.head.forward(this.split.forward(a, k, v, { causal: true }));
    });
  }
}
/** Moves the attention biases off their zero initialisation (their gradients do not depend on it, the rest does). */
function perturbAttention(m: eg.nn.Module): void {
  eg.noGrad(() => {
    for (const [n, p] of m.namedParameters()) {
      if (/in_proj_bias$|norm\d\.(weight|bias)$/.test(n)) eg.tidy(() => p.assign(p.add(eg.rand(p.shape, -0.5, 0.5, { seed: 53 }))));
    }
  });
}

/** A GRU and a Bidirectional SimpleRNN (relu) over right-padded sequences: a step whose features are all 0 is padding (the mask is derived from x, so each example carries its own). */
class MaskedRecurrent extends nn.Module {
  gru = this.registerModule('gru', new nn.GRU(3, 4, { seed: 60 }));
  birnn = this.registerModule('birnn', new nn.Bidirectional(new nn.SimpleRNN(4, 3, { nonlinearity: 'relu', returnSequences: false, seed: 61 }), {
    mergeMode: 'sum', backwardLayer: new nn.SimpleRNN(4, 3, { nonlinearity: 'relu', returnSequences: false, reverse: true, seed: 73 }),
  }));
  head = this.registerModule('head', new nn.Linear(3, 2, { seed: 62 }));
  forward(x: eg.Tensor): eg.Tensor {
    return eg.tidy(() => {
      const mask = x.abs().sum(2).greater(0).cast('float32');
      return this.head.forward(this.birnn.forward(this.gru.forward(x, { mask }), { mask }));
    });
  }
}
/** Sequences of lengths 5, 3, 1, 4 (zeros after). */
const paddedSequences = (): eg.Tensor => eg.tidy(() => eg.randn([4, 5, 3], 0, 1, { seed: 63 }).mul(nn.lengthsToMask([5, 3, 1, 4], 5).reshape([4, 5, 1])));

interface Case { name: string; make: () => { model: eg.nn.Module; x: eg.Tensor; y: eg.Tensor; lossFn: LossFn } }
const CASES: Case[] = [
  { name: 'Linear (fused ReLU)', make: () => ({ model: linearModel(), x: eg.randn([6, 5], 0, 1, { seed: 20 }), y: classes(6, 3, 21), lossFn: ce }) },
  { name: 'Linear over sequences', make: () => ({ ...seqModel(), lossFn: mse }) },
  { name: 'Conv2d (stride, padding, groups, dilation)', make: () => ({ model: convModel(), x: eg.randn([5, 9, 8, 4], 0, 1, { seed: 22 }), y: classes(5, 3, 23), lossFn: ce }) },
  { name: 'Conv2d (Gram route)', make: () => ({ model: gramConvModel(), x: eg.randn([4, 5, 5, 16], 0, 1, { seed: 24 }), y: classes(4, 3, 25), lossFn: ce }) },
  { name: 'Embedding', make: () => ({ model: embeddingModel(), x: embeddingIdx(), y: eg.randn([4, 6, 3], 0, 1, { seed: 26 }), lossFn: mse }) },
  { name: 'LayerNorm', make: () => { const model = layerNormModel(); perturbNorms(model); return { model, x: eg.randn([5, 3, 4], 0, 1, { seed: 27 }), y: eg.randn([5, 3, 3], 0, 1, { seed: 28 }), lossFn: mse }; } },
  { name: 'GroupNorm', make: () => { const model = groupNormModel(); perturbNorms(model); return { model, x: eg.randn([5, 4, 4, 2], 0, 1, { seed: 29 }), y: classes(5, 3, 30), lossFn: ce }; } },
  { name: 'TransformerEncoderLayer (packed self-attention)', make: () => { const model = encoderModel(); perturbAttention(model); return { model, x: eg.randn([4, 5, 8], 0, 1, { seed: 54 }), y: eg.randn([4, 5, 3], 0, 1, { seed: 55 }), lossFn: mse }; } },
  { name: 'MultiHeadAttention (cross, split projections) and LearnedPositionalEmbedding', make: () => { const model = new CrossAttention(); perturbAttention(model); return { model, x: eg.randn([4, 6, 8], 0, 1, { seed: 56 }), y: eg.randn([4, 6, 3], 0, 1, { seed: 57 }), lossFn: mse }; } },
  { name: 'SimpleRNN (tanh, final state)', make: () => ({ model: new nn.Sequential(new nn.SimpleRNN(3, 5, { returnSequences: false, seed: 64 }), new nn.Linear(5, 3, { seed: 65 })), x: eg.randn([5, 6, 3], 0, 1, { seed: 66 }), y: classes(5, 3, 67), lossFn: ce }) },
  { name: 'LSTM (2 layers, bidirectional)', make: () => ({ model: new nn.Sequential(new nn.LSTM(3, 4, { numLayers: 2, bidirectional: true, seed: 68 }), new nn.Linear(8, 2, { seed: 69 })), x: eg.randn([4, 5, 3], 0, 1, { seed: 70 }), y: eg.randn([4, 5, 2], 0, 1, { seed: 71 }), lossFn: mse }) },
  { name: 'GRU and Bidirectional SimpleRNN (relu), masked', make: () => ({ model: new MaskedRecurrent(), x: paddedSequences(), y: classes(4, 2, 72), lossFn: ce }) },
  { name: "Keras' reset-before GRU (bidirectional, no biases)", make: () => ({ model: new nn.Sequential(new nn.GRU(3, 4, { resetAfter: false, bidirectional: true, bias: false, seed: 74 }), new nn.Linear(8, 2, { seed: 75 })), x: eg.randn([3, 4, 3], 0, 1, { seed: 76 }), y: eg.randn([3, 4, 2], 0, 1, { seed: 77 }), lossFn: mse }) },
  { name: "Keras' reset-before GRU (biases)", make: () => ({ model: new nn.Sequential(new nn.GRU(3, 4, { resetAfter: false, returnSequences: false, seed: 78 }), new nn.Linear(4, 2, { seed: 79 })), x: eg.randn([4, 5, 3], 0, 1, { seed: 80 }), y: classes(4, 2, 81), lossFn: ce }) },
];
const ATTENTION_CASES = CASES.slice(-7, -5);
const RECURRENT_CASES = CASES.slice(-5);

function withCase<T>(c: Case, f: (k: ReturnType<Case['make']>) => T): T {
  const k = c.make();
  try {
    return f(k);
  } finally {
    k.model.dispose();
    eg.dispose([k.x, k.y]);
  }
}

// ------------------------------------------------------------------------------------- tests

describe('perSampleGradients', () => {
  for (const c of CASES) {
    it(`equals a loop of single-example backward passes: ${c.name}`, () => {
      withCase(c, ({ model, x, y, lossFn }) => expectMatchesLoop(model, lossFn, x, y));
    });
  }

  it("lossReduction 'sum' with a summed loss gives the same per-example gradients as 'mean' with a mean loss", () => {
    withCase(CASES[2], ({ model, x, y }) => {
      const mean = privacy.perSampleGradients(model, ce, x, y);
      const sum = privacy.perSampleGradients(model, ceSum, x, y, { lossReduction: 'sum' });
      const wrong = privacy.perSampleGradients(model, ceSum, x, y); // 'mean' on a summed loss: B times too large
      for (const [n, t] of mean) {
        const [a, b, w] = [data(t), data(sum.get(n)!), data(wrong.get(n)!)];
        const scale = Math.max(...a.map(Math.abs));
        a.forEach((v, i) => {
          expect(Math.abs(v - b[i])).toBeLessThanOrEqual(1e-5 * scale);
          expect(Math.abs(w[i] - x.shape[0] * v)).toBeLessThanOrEqual(1e-4 * scale);
        });
      }
      expectMatchesLoop(model, ceSum, x, y, 'sum');
      eg.dispose([mean, sum, wrong]);
    });
  });

  it("leaves the parameters' .grad untouched and skips frozen parameters", () => {
    withCase(CASES[0], ({ model, x, y, lossFn }) => {
      const w = model.stateDict()['2.weight'];
      const preset = eg.full(w.shape, 0.25);
      w.grad = preset;
      model.freeze('0');
      const g = privacy.perSampleGradients(model, lossFn, x, y);
      expect([...g.keys()]).toEqual(['2.weight', '2.bias', '3.weight', '3.bias']);
      expect(data(w.grad!).every((v) => v === 0.25)).toBe(true);
      expect(model.stateDict()['0.weight'].grad).toBeNull();
      expect(model.stateDict()['0.weight'].requiresGrad).toBe(false);
      expect(w.requiresGrad).toBe(true);
      expectMatchesLoop(model, lossFn, x, y);
      eg.dispose(g);
      preset.dispose();
    });
  });

  it('gives zeros to a layer whose output does not reach the loss', () => {
    class TwoHeads extends nn.Module {
      a = this.registerModule('a', new nn.Linear(3, 2, { seed: 31 }));
      b = this.registerModule('b', new nn.Linear(3, 2, { seed: 32 }));
      forward(x: eg.Tensor): eg.Tensor {
        this.b.forward(x);
        return this.a.forward(x);
      }
    }
    const m = new TwoHeads();
    const x = eg.randn([4, 3], 0, 1, { seed: 33 });
    const y = eg.randn([4, 2], 0, 1, { seed: 34 });
    const g = privacy.perSampleGradients(m, mse, x, y);
    expect(data(g.get('b.weight')!).every((v) => v === 0)).toBe(true);
    expect(g.get('b.weight')!.shape).toEqual([4, 2, 3]);
    expect(relError(g.get('a.weight')!, loopGradients(m, mse, x, y).get('a.weight')!)).toBeLessThanOrEqual(1e-5);
    eg.dispose([g, x, y]);
    m.dispose();
  });
});

/** The total norm of the trainable parameters' .grad, and each one's norm. */
function gradNorms(model: eg.nn.Module): number[] {
  return model.namedParameters().filter(([, p]) => p.requiresGrad).map(([, p]) => Math.hypot(...data(p.grad!)));
}

describe('clippedGradientSum', () => {
  it('clips one example to the bound: flat, ghost and perLayer', () => {
    withCase(CASES[2], ({ model, x, y, lossFn }) => {
      const x1 = row(x, 0);
      const y1 = row(y, 0);
      for (const clipping of ['flat', 'ghost'] as const) {
        const r = privacy.clippedGradientSum(model, lossFn, x1, y1, { maxGradNorm: 0.05, clipping });
        expect(r.norms[0]).toBeGreaterThan(0.05);
        expect(Math.hypot(...gradNorms(model))).toBeLessThanOrEqual(0.05 * (1 + 1e-5));
        expect(Math.hypot(...gradNorms(model))).toBeGreaterThan(0.05 * (1 - 1e-4));
        eg.dispose(r);
      }
      const bounds = [0.02, 0.001, 0.03, 0.002, 0.04, 0.003];
      const r = privacy.clippedGradientSum(model, lossFn, x1, y1, { maxGradNorm: bounds, clipping: 'perLayer' });
      gradNorms(model).forEach((n, k) => expect(n).toBeLessThanOrEqual(bounds[k] * (1 + 1e-5)));
      eg.dispose([r, x1, y1]);
    });
  });

  it('sums the per-example gradients scaled by min(1, C / (norm + 1e-6)), and reports the norms', () => {
    withCase(CASES[0], ({ model, x, y, lossFn }) => {
      const per = privacy.perSampleGradients(model, lossFn, x, y);
      const names = [...per.keys()];
      const B = x.shape[0];
      const sq = new Array(B).fill(0);
      for (const t of per.values()) {
        const v = data(t);
        const len = v.length / B;
        for (let i = 0; i < B; i++) for (let j = 0; j < len; j++) sq[i] += v[i * len + j] ** 2;
      }
      const norms = sq.map(Math.sqrt);
      const C = (norms[0] + norms[1]) / 2; // some examples clipped, some not
      const r = privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: C, clipping: 'flat' });
      norms.forEach((n, i) => expect(Math.abs(r.norms[i] - n)).toBeLessThanOrEqual(1e-5 * n));
      const factors = norms.map((n) => Math.min(1, C / (n + 1e-6)));
      expect(factors.some((f) => f < 1) && factors.some((f) => f === 1)).toBe(true);
      factors.forEach((f, i) => expect(f * norms[i]).toBeLessThanOrEqual(C * (1 + 1e-6)));
      for (const n of names) {
        const v = data(per.get(n)!);
        const len = v.length / B;
        const want = Array.from({ length: len }, (_, j) => factors.reduce((s, f, i) => s + f * v[i * len + j], 0));
        const got = data(model.stateDict()[n].grad!);
        const scale = Math.max(...want.map(Math.abs));
        want.forEach((w, j) => expect(Math.abs(got[j] - w)).toBeLessThanOrEqual(1e-5 * scale));
      }
      // The loss is lossFn's batch loss and pred the model's output.
      const want = eg.tidy(() => lossFn(model.forward(x), y).item());
      expect(Math.abs(r.loss.item() - want)).toBeLessThanOrEqual(1e-6 * Math.abs(want));
      expect(r.pred.shape).toEqual([B, 3]);
      eg.dispose([per, r]);
    });
  });

  for (const c of CASES) {
    it(`ghost equals materialised flat clipping: ${c.name}`, () => {
      withCase(c, ({ model, x, y, lossFn }) => {
        const flat = privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: 0.3, clipping: 'flat' });
        const want = model.trainableParameters().map((p) => data(p.grad!));
        const ghost = privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: 0.3, clipping: 'ghost' });
        flat.norms.forEach((n, i) => expect(Math.abs(ghost.norms[i] - n)).toBeLessThanOrEqual(1e-5 * n));
        model.trainableParameters().forEach((p, k) => {
          const got = data(p.grad!);
          const scale = Math.max(...want[k].map(Math.abs));
          want[k].forEach((w, j) => expect(Math.abs(got[j] - w)).toBeLessThanOrEqual(1e-5 * scale));
        });
        eg.dispose([flat, ghost]);
      });
    });
  }

  it('ghost over sequences: Gram route (short, wide) and materialised route (long, narrow) agree with flat', () => {
    for (const [t, din, dout] of [[3, 16, 16], [40, 4, 3]]) {
      const model = new nn.Sequential(new nn.Linear(din, dout, { seed: 35 }), new nn.Tanh(), new nn.Linear(dout, 2, { seed: 36 }));
      const x = eg.randn([6, t, din], 0, 1, { seed: 37 });
      const y = eg.randn([6, t, 2], 0, 1, { seed: 38 });
      const flat = privacy.clippedGradientSum(model, mse, x, y, { maxGradNorm: 0.2, clipping: 'flat' });
      const want = model.trainableParameters().map((p) => data(p.grad!));
      const ghost = privacy.clippedGradientSum(model, mse, x, y, { maxGradNorm: 0.2, clipping: 'ghost' });
      flat.norms.forEach((n, i) => expect(Math.abs(ghost.norms[i] - n)).toBeLessThanOrEqual(1e-5 * n));
      model.trainableParameters().forEach((p, k) => {
        const got = data(p.grad!);
        const scale = Math.max(...want[k].map(Math.abs));
        want[k].forEach((w, j) => expect(Math.abs(got[j] - w)).toBeLessThanOrEqual(1e-5 * scale));
      });
      eg.dispose([flat, ghost, x, y]);
      model.dispose();
    }
  });

  it('leaves a frozen parameter without a gradient', () => {
    withCase(CASES[2], ({ model, x, y, lossFn }) => {
      model.freeze('0.weight');
      const r = privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: 1, clipping: 'ghost' });
      expect(model.stateDict()['0.weight'].grad).toBeNull();
      expect(model.stateDict()['0.bias'].grad).not.toBeNull();
      const r2 = privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: [1, 1, 1, 1, 1], clipping: 'perLayer' });
      expect(model.stateDict()['0.weight'].grad).toBeNull();
      eg.dispose([r, r2]);
    });
  });
});

describe('refused models and typed errors', () => {
  it('refuses BatchNorm, naming the layer', () => {
    const m = new nn.Sequential(new nn.Sequential(new nn.Linear(3, 4), new nn.BatchNorm1d(4)), new nn.Linear(4, 2));
    const x = eg.randn([4, 3], 0, 1, { seed: 39 });
    const y = eg.randn([4, 2], 0, 1, { seed: 40 });
    for (const f of [() => privacy.perSampleGradients(m, mse, x, y), () => privacy.clippedGradientSum(m, mse, x, y, { maxGradNorm: 1, clipping: 'ghost' })]) {
      expect(f).toThrow(privacy.UnsupportedLayerError);
      expect(f).toThrow(/0\.1 \(BatchNorm1d\).*GroupNorm/);
    }
    m.freeze();
    expect(() => privacy.perSampleGradients(m, mse, x, y)).toThrow(/BatchNorm/);
    eg.dispose([x, y]);
    m.dispose();
  });

  it('refuses a trainable layer without a per-example rule, and accepts it frozen', () => {
    class Scale extends nn.Module {
      constructor() {
        super();
        this.registerParameter('scale', eg.full([3], 1.5));
      }
      forward(x: eg.Tensor): eg.Tensor {
        return x.mul(this.param('scale'));
      }
    }
    const m = new nn.Sequential(new nn.Linear(3, 3, { seed: 41 }), new Scale(), new nn.Linear(3, 2, { seed: 42 }));
    const x = eg.randn([4, 3], 0, 1, { seed: 43 });
    const y = eg.randn([4, 2], 0, 1, { seed: 44 });
    expect(() => privacy.perSampleGradients(m, mse, x, y)).toThrow(privacy.UnsupportedLayerError);
    expect(() => privacy.perSampleGradients(m, mse, x, y)).toThrow(/^1 \(Scale\): .*scale/);
    expect(privacy.hasPerSampleRule(m.getModule('1'))).toBe(false);
    expect(privacy.hasPerSampleRule(m.getModule('0'))).toBe(true);
    m.freeze('1');
    expectMatchesLoop(m, mse, x, y);
    eg.dispose([x, y]);
    m.dispose();
  });

  it('MultiHeadAttention without biases, with a per-example key mask: equals the loop, ghost equals flat; validate accepts attention models', () => {
    class Masked extends nn.Module {
      attn = this.registerModule('attn', new nn.MultiHeadAttention(6, 3, { bias: false, seed: 69 }));
      head = this.registerModule('head', new nn.Linear(6, 2, { seed: 70 }));
      forward(x: eg.Tensor): eg.Tensor {
        return eg.tidy(() => {
          // Each example's own padding: steps whose first feature is negative are masked out.
          const [b, t] = x.shape;
          const keyMask = x.slice([0, 0, 0], [b, t, 1]).reshape([b, t]).greater(-0.5);
          return this.head.forward(this.attn.forward(x, null, null, { keyMask }));
        });
      }
    }
    const m = new Masked();
    const x = eg.randn([5, 4, 6], 0, 1, { seed: 71 });
    const y = eg.randn([5, 4, 2], 0, 1, { seed: 72 });
    expect(m.namedParameters().map(([n]) => n)).toEqual(['attn.in_proj_weight', 'attn.out_proj.weight', 'head.weight', 'head.bias']);
    expectMatchesLoop(m, mse, x, y);
    const flat = privacy.clippedGradientSum(m, mse, x, y, { maxGradNorm: 0.2, clipping: 'flat' });
    const ghost = privacy.clippedGradientSum(m, mse, x, y, { maxGradNorm: 0.2, clipping: 'ghost' });
    flat.norms.forEach((n, i) => expect(Math.abs(ghost.norms[i] - n)).toBeLessThanOrEqual(1e-5 * n));
    expect(privacy.validate(m)).toEqual([]);
    const enc = encoderModel();
    expect(privacy.validate(enc)).toEqual([]);
    expect(privacy.hasPerSampleRule(enc.getModule('1').getModule('self_attn'))).toBe(true);
    eg.dispose([flat, ghost, x, y]);
    m.dispose();
    enc.dispose();
  });

  it("GPT (its wpe table read directly, captured by the position tap): equals the loop, ghost equals flat", () => {
    const m = new nn.GPT({ vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, seed: 58 });
    const x = eg.randint([3, 5], 0, 11, { seed: 59 });
    const y = eg.randn([3, 5, 11], 0, 1, { seed: 60 });
    expectMatchesLoop(m, mse, x, y);
    const flat = privacy.clippedGradientSum(m, mse, x, y, { maxGradNorm: 0.5, clipping: 'flat' });
    const want = m.trainableParameters().map((p) => data(p.grad!));
    const ghost = privacy.clippedGradientSum(m, mse, x, y, { maxGradNorm: 0.5, clipping: 'ghost' });
    flat.norms.forEach((n, i) => expect(Math.abs(ghost.norms[i] - n)).toBeLessThanOrEqual(1e-5 * n));
    m.trainableParameters().forEach((p, k) => {
      const got = data(p.grad!);
      const scale = Math.max(...want[k].map(Math.abs));
      want[k].forEach((w, j) => expect(Math.abs(got[j] - w)).toBeLessThanOrEqual(1e-5 * scale));
    });
    expect(m.positionTap).toBeNull();
    eg.dispose([flat, ghost, x, y]);
    m.dispose();
  });

  it('refuses a trainable layer whose forward did not run (its parameters would get silent zeros)', () => {
    class Unused extends nn.Module {
      a = this.registerModule('a', new nn.Linear(3, 2, { seed: 65 }));
      spare = this.registerModule('spare', new nn.Linear(3, 2, { seed: 66 }));
      forward(x: eg.Tensor): eg.Tensor {
        return this.a.forward(x);
      }
    }
    const m = new Unused();
    const x = eg.randn([4, 3], 0, 1, { seed: 67 });
    const y = eg.randn([4, 2], 0, 1, { seed: 68 });
    expect(() => privacy.perSampleGradients(m, mse, x, y)).toThrow(privacy.UnsupportedLayerError);
    expect(() => privacy.clippedGradientSum(m, mse, x, y, { maxGradNorm: 1, clipping: 'ghost' })).toThrow(/^spare \(Linear\): its forward did not run/);
    m.freeze('spare');
    expectMatchesLoop(m, mse, x, y);
    eg.dispose([x, y]);
    m.dispose();
  });

  it('refuses a LearnedPositionalEmbedding called without a batch axis', () => {
    const m = new nn.Sequential(new nn.LearnedPositionalEmbedding(6, 3, { seed: 61 }), new nn.Linear(3, 2, { seed: 62 }));
    const x = eg.randn([4, 3], 0, 1, { seed: 63 });
    const y = eg.randn([4, 2], 0, 1, { seed: 64 });
    expect(() => privacy.perSampleGradients(m, mse, x, y)).toThrow(/^0 \(LearnedPositionalEmbedding\): .*no batch axis/);
    eg.dispose([x, y]);
    m.dispose();
  });

  it('refuses tied weights (one parameter in two layers)', () => {
    class Tied extends nn.Module {
      emb = this.registerModule('emb', new nn.Embedding(5, 3, { seed: 51 }));
      head = this.registerModule('head', new nn.Linear(3, 5, { bias: false, seed: 52 }));
      constructor() {
        super();
        (this.head as unknown as { registerParameter(n: string, t: eg.Tensor): void }).registerParameter('weight', this.emb.weight);
      }
      forward(x: eg.Tensor): eg.Tensor {
        return this.head.forward(this.emb.forward(x));
      }
    }
    const m = new Tied();
    const x = eg.tensor([[0, 1], [2, 2]], [2, 2], 'int32');
    const y = eg.randn([2, 2, 5], 0, 1, { seed: 53 });
    expect(() => privacy.perSampleGradients(m, mse, x, y)).toThrow(/head \(Linear\).*same tensor as emb\.weight/);
    eg.dispose([x, y]);
    m.emb.dispose();
  });

  it('refuses a layer that does not see the batch as its first axis', () => {
    class Folded extends nn.Module {
      lin = this.registerModule('lin', new nn.Linear(4, 2, { seed: 45 }));
      forward(x: eg.Tensor): eg.Tensor {
        return this.lin.forward(x.reshape([-1, 4])).reshape([x.shape[0], -1]);
      }
    }
    const m = new Folded();
    const x = eg.randn([3, 5, 4], 0, 1, { seed: 46 });
    const y = eg.randn([3, 10], 0, 1, { seed: 47 });
    expect(() => privacy.perSampleGradients(m, mse, x, y)).toThrow(/lin \(Linear\).*batch/);
    eg.dispose([x, y]);
    m.dispose();
  });

  it('reports wrong arguments with typed errors', () => {
    const model = linearModel();
    const x = eg.randn([4, 5], 0, 1, { seed: 48 });
    const y = classes(4, 3, 49);
    const ok = { maxGradNorm: 1, clipping: 'flat' as const };
    const fillers: unknown[] = [model, ce, x, y, ok];
    for (let pos = 0; pos < 5; pos++) {
      for (const [name, bad] of BAD_ARGUMENTS) {
        const args = fillers.slice();
        args[pos] = bad();
        for (const f of [privacy.perSampleGradients, privacy.clippedGradientSum] as ((...a: unknown[]) => unknown)[]) {
          // Its options are optional: only a wrongly typed field must be refused there.
          if (f === privacy.perSampleGradients && pos === 4 && !name.startsWith('{ every')) continue;
          let err: unknown = null;
          try {
            eg.dispose(eg.tidy(() => f(...args)));
          } catch (e) {
            err = e;
          }
          expect(err, `${f.name} with ${name} at ${pos}`).toBeInstanceOf(eg.EdgegradError);
        }
      }
    }
    const clip = (o: unknown, lossFn: LossFn = ce, xx = x, yy = y) => () => privacy.clippedGradientSum(model, lossFn, xx, yy, o as eg.privacy.ClipOptions);
    expect(clip({ maxGradNorm: 0, clipping: 'flat' })).toThrow(/maxGradNorm must be > 0/);
    expect(clip({ maxGradNorm: NaN, clipping: 'ghost' })).toThrow(eg.ArgumentError);
    expect(clip({ maxGradNorm: 1, clipping: 'layer' })).toThrow(/'flat', 'perLayer' or 'ghost'/);
    expect(clip({ maxGradNorm: [1, 2], clipping: 'perLayer' })).toThrow(/6 bounds/);
    expect(clip({ maxGradNorm: 1, clipping: 'perLayer' })).toThrow(/array/);
    expect(clip({ maxGradNorm: [1], clipping: 'flat' })).toThrow(/one maxGradNorm/);
    expect(clip({ maxGradNorm: 1, clipping: 'flat', lossReduction: 'none' })).toThrow(/'mean' or 'sum'/);
    expect(clip(ok, (p, t) => losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true, reduction: 'none' }))).toThrow(/one-element/);
    const [y3, x0, y0] = [classes(3, 3, 50), eg.zeros([0, 5]), eg.zeros([0], 'int32')];
    expect(clip(ok, ce, x, y3)).toThrow(eg.ShapeError);
    expect(clip(ok, ce, x0, y0)).toThrow(/non-empty batch/);
    expect(clip(ok, (p) => p.sum().mul(NaN))).toThrow(/not finite/);
    expect(() => eg.noGrad(() => privacy.perSampleGradients(model, ce, x, y))).toThrow(/noGrad/);
    // A failed call leaves the model trainable and its gradients as they were.
    expect(model.parameters().every((p) => p.requiresGrad)).toBe(true);
    eg.dispose([x, y, y3, x0, y0]);
    model.dispose();
  });
});

describe('memory and determinism', () => {
  it('100 calls leave memory flat', () => {
    withCase(CASES[2], ({ model, x, y, lossFn }) => {
      expectFlatOver100Calls([
        ['perSampleGradients', () => privacy.perSampleGradients(model, lossFn, x, y)],
        ['flat', () => privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: 0.5, clipping: 'flat' })],
        ['ghost', () => privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: 0.5, clipping: 'ghost' })],
        ['perLayer', () => privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: [1, 1, 1, 1, 1, 1], clipping: 'perLayer' })],
      ]);
    });
  });

  it('gives the same bits with 1 and 2 threads and in every runtime (stored digest)', () => {
    const words = sameBitsOnOneAndTwoThreads(() => {
      const out: number[] = [];
      for (const c of [CASES[2], CASES[3], CASES[4], CASES[1]]) {
        withCase(c, ({ model, x, y, lossFn }) => {
          const per = privacy.perSampleGradients(model, lossFn, x, y);
          for (const t of per.values()) out.push(...bits(t));
          eg.dispose(per);
          for (const clipping of ['flat', 'ghost'] as const) {
            const r = privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: 0.3, clipping });
            out.push(...new Uint32Array(r.norms.buffer));
            for (const p of model.trainableParameters()) out.push(...bits(p.grad!));
            eg.dispose(r);
          }
        });
      }
      return out;
    });
    expect(fnv1a(words)).toBe('5d6c12ef');
  });

  // One check per layer family added after the first set: memory flat over 100 calls on one case, the
  // bits of every case's per-example gradients, norms and clipped sums the same on 1 and 2 threads and
  // in both runtimes (a stored digest).
  const FAMILIES = [['attention and positional embeddings', ATTENTION_CASES, '402c1a0e'], ['recurrent layers', RECURRENT_CASES, '436b4d1c']] as const;
  for (const [family, cases, digest] of FAMILIES) {
    it(`${family}: memory flat over 100 calls, same bits with 1 and 2 threads and in every runtime`, () => {
      withCase(cases[1], ({ model, x, y, lossFn }) => {
        expectFlatOver100Calls([
          ['perSampleGradients', () => privacy.perSampleGradients(model, lossFn, x, y)],
          ['ghost', () => privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: 0.5, clipping: 'ghost' })],
        ]);
      });
      const words = sameBitsOnOneAndTwoThreads(() => {
        const out: number[] = [];
        for (const c of cases) {
          withCase(c, ({ model, x, y, lossFn }) => {
            const per = privacy.perSampleGradients(model, lossFn, x, y);
            for (const t of per.values()) out.push(...bits(t));
            eg.dispose(per);
            const r = privacy.clippedGradientSum(model, lossFn, x, y, { maxGradNorm: 0.3, clipping: 'ghost' });
            out.push(...new Uint32Array(r.norms.buffer));
            for (const p of model.trainableParameters()) out.push(...bits(p.grad!));
            eg.dispose(r);
          });
        }
        return out;
      });
      expect(fnv1a(words)).toBe(digest);
    });
  }

  it('leaves a recurrent layer on its fused kernel outside the capture (same outputs before and after)', () => {
    withCase(RECURRENT_CASES[1], ({ model, x, y, lossFn }) => {
      const before = eg.tidy(() => data(model.forward(x)));
      eg.dispose(privacy.perSampleGradients(model, lossFn, x, y));
      expect((model.getModule('0') as eg.nn.LSTM).gateTap).toBeNull();
      const after = eg.tidy(() => data(model.forward(x)));
      expect(after).toEqual(before);
    });
  });
});
