/**
 * Attention and Transformers: a hand-computed attention case, masks, multi-head attention
 * against an independent float64 computation, finite-difference gradient checks of
 * MultiHeadAttention and both Transformer blocks (inputs and parameters), retrievable attention
 * weights, positional encodings, training on sequence reversal and copying, saving, errors and
 * determinism across thread counts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { gradcheck, setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { nn } = eg;

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  expect(a.length, what).toBe(b.length);
  let err = 0;
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  expect(err, `${what}: max abs error`).toBeLessThanOrEqual(tol);
}

/**
 * Finite-difference check of parameter gradients of `objective()` (a scalar) for a spread of
 * elements of every parameter of `m`.
 */
function paramGradcheck(name: string, m: eg.nn.Module, objective: () => eg.Tensor, perParam = 5): void {
  const eps = 1e-3;
  eg.tidy(() => {
    for (const p of m.parameters()) p.zeroGrad();
    objective().backward();
  });
  const value = () => eg.tidy(() => eg.noGrad(() => objective().item()));
  for (const [pn, p] of m.namedParameters()) {
    const g = p.grad;
    expect(g, `${name}: ${pn} got no gradient`).not.toBeNull();
    const analytic = g!.dataSync();
    const base = Float32Array.from(p.dataSync() as Float32Array);
    const n = base.length;
    for (let s = 0; s < Math.min(perParam, n); s++) {
      const k = Math.floor(((s + 0.5) * n) / Math.min(perParam, n));
      const set = (v: number) => eg.tidy(() => {
        const c = Float32Array.from(base);
        c[k] = v;
        eg.noGrad(() => p.assign(eg.tensor(c, p.shape)));
      });
      set(base[k] + eps);
      const plus = value();
      set(base[k] - eps);
      const minus = value();
      set(base[k]);
      const numeric = (plus - minus) / (2 * eps);
      const a = analytic[k];
      const bound = 2e-2 * Math.max(Math.abs(numeric), Math.abs(a)) + 3e-3;
      if (!(Math.abs(a - numeric) <= bound)) throw new Error(`${name}: ${pn}[${k}]: analytic ${a}, numeric ${numeric}`);
    }
  }
}

describe('scaled dot-product attention', () => {
  it('matches a hand-computed case, with and without a mask', () => {
    eg.tidy(() => {
      // Scores q·k / sqrt(2) = [0, ln 3]: weights [1/4, 3/4], output 1/4 v0 + 3/4 v1.
      const q = eg.tensor([[[1, 0]]]);
      const k = eg.tensor([[[0, 5], [Math.log(3) * Math.SQRT2, 5]]]);
      const v = eg.tensor([[[10, -2], [2, 6]]]);
      const r = nn.scaledDotProductAttention(q, k, v);
      expectClose(r.weights.dataSync(), [0.25, 0.75], 1e-6, 'weights');
      expectClose(r.output.dataSync(), [4, 4], 1e-5, 'output');
      const m = nn.scaledDotProductAttention(q, k, v, { mask: eg.tensor([[[1, 0]]]) });
      expect(Array.from(m.weights.dataSync())).toEqual([1, 0]);
      expect(Array.from(m.output.dataSync())).toEqual([10, -2]);
    });
  });

  it('causal and key masks: rows sum to 1, blocked keys get weight 0', () => {
    eg.tidy(() => {
      const x = eg.tensor(vals(2 * 2 * 4 * 3, 1), [2, 2, 4, 3]);
      const keyMask = nn.keyMaskFromLengths([4, 2], 4).reshape([2, 1, 1, 4]);
      const { weights } = nn.scaledDotProductAttention(x, x, x, { causal: true, mask: keyMask });
      const w = weights.dataSync();
      for (let b = 0; b < 2; b++) for (let h = 0; h < 2; h++) for (let i = 0; i < 4; i++) {
        const row = Array.from(w.subarray(((b * 2 + h) * 4 + i) * 4, ((b * 2 + h) * 4 + i + 1) * 4));
        expect(row.reduce((a, c) => a + c, 0)).toBeCloseTo(1, 5);
        row.forEach((p, j) => expect(p === 0, `b${b} h${h} q${i} k${j}`).toBe(j > i || (b === 1 && j >= 2)));
      }
      // The explicit lower-triangular mask is the same as causal.
      const viaMask = nn.scaledDotProductAttention(x, x, x, { mask: nn.causalMask(4) });
      const viaFlag = nn.scaledDotProductAttention(x, x, x, { causal: true });
      expect(Array.from(viaMask.output.dataSync())).toEqual(Array.from(viaFlag.output.dataSync()));
    });
  });

  it('passes finite-difference gradient checks (q, k, v; mask; causal)', () => {
    const mask = eg.tidy(() => eg.keep(eg.tensor([1, 1, 0, 1, 1, 1, 1, 0], [2, 1, 1, 4])));
    gradcheck('sdpa', [
      { shape: [2, 2, 3, 2], values: vals(24, 2) },
      { shape: [2, 2, 4, 2], values: vals(32, 3) },
      { shape: [2, 2, 4, 3], values: vals(48, 4) },
    ], ([q, k, v]) => nn.scaledDotProductAttention(q, k, v, { mask }).output);
    gradcheck('causal sdpa', [{ shape: [1, 3, 4, 2], values: vals(24, 5) }], ([x]) => nn.scaledDotProductAttention(x, x, x, { causal: true, scale: 0.7 }).output);
    mask.dispose();
  });
});

describe('MultiHeadAttention', () => {
  it('uses PyTorch parameter names and matches a float64 computation of multi-head attention', () => {
    const E = 6;
    const H = 2;
    const [B, Tq, Tk] = [2, 3, 4];
    const mha = new nn.MultiHeadAttention(E, H, { seed: 1 });
    expect(mha.namedParameters().map(([n, p]) => `${n}:${p.shape}`)).toEqual(['in_proj_weight:18,6', 'in_proj_bias:18', 'out_proj.weight:6,6', 'out_proj.bias:6']);
    const q = vals(B * Tq * E, 2);
    const kv = vals(B * Tk * E, 3);
    const sd = mha.stateDict();
    const W = sd.in_proj_weight.dataSync();
    const bias = vals(3 * E, 4);
    eg.noGrad(() => sd.in_proj_bias.assign(eg.tensor(bias)));
    const Wo = sd['out_proj.weight'].dataSync();
    const bo = sd['out_proj.bias'].dataSync();
    // float64 reference
    const lin = (x: ArrayLike<number>, rows: number, w: ArrayLike<number>, wOff: number, b: ArrayLike<number>, bOff: number) => {
      const out = new Float64Array(rows * E);
      for (let r = 0; r < rows; r++) for (let o = 0; o < E; o++) {
        let s = b[bOff + o];
        for (let i = 0; i < E; i++) s += w[(wOff + o) * E + i] * x[r * E + i];
        out[r * E + o] = s;
      }
      return out;
    };
    const Q = lin(q, B * Tq, W, 0, bias, 0);
    const K = lin(kv, B * Tk, W, E, bias, E);
    const V = lin(kv, B * Tk, W, 2 * E, bias, 2 * E);
    const d = E / H;
    const att = new Float64Array(B * Tq * E);
    const weights = new Float64Array(B * H * Tq * Tk);
    const keyLen = [4, 3];
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Tq; i++) {
      const s = new Float64Array(Tk).fill(-Infinity);
      for (let j = 0; j < keyLen[b]; j++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += Q[(b * Tq + i) * E + h * d + c] * K[(b * Tk + j) * E + h * d + c];
        s[j] = dot / Math.sqrt(d);
      }
      const mx = Math.max(...s);
      const e = Array.from(s, (v) => (v === -Infinity ? 0 : Math.exp(v - mx)));
      const z = e.reduce((a, c) => a + c, 0);
      for (let j = 0; j < Tk; j++) {
        weights[((b * H + h) * Tq + i) * Tk + j] = e[j] / z;
        for (let c = 0; c < d; c++) att[(b * Tq + i) * E + h * d + c] += (e[j] / z) * V[(b * Tk + j) * E + h * d + c];
      }
    }
    const want = lin(att, B * Tq, Wo, 0, bo, 0);
    eg.tidy(() => {
      const r = mha.attend(eg.tensor(q, [B, Tq, E]), eg.tensor(kv, [B, Tk, E]), undefined, { keyMask: nn.keyMaskFromLengths(keyLen, Tk) });
      expect(r.weights.shape).toEqual([B, H, Tq, Tk]);
      expectClose(r.output.dataSync(), want, 1e-5, 'output');
      expectClose(r.weights.dataSync(), weights, 1e-6, 'weights of every head');
    });
    mha.dispose();
  });

  it('cross-attention with other key/value sizes uses separate projections', () => {
    const mha = new nn.MultiHeadAttention(8, 4, { kdim: 5, vdim: 3, seed: 2 });
    expect(mha.namedParameters().map(([n]) => n)).toEqual(['q_proj_weight', 'k_proj_weight', 'v_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']);
    eg.tidy(() => {
      for (let i = 0; i < 2; i++) {
        const y = mha.forward(eg.randn([2, 3, 8], 0, 1, { seed: 1 }), eg.randn([2, 7, 5], 0, 1, { seed: 2 }), eg.randn([2, 7, 3], 0, 1, { seed: 3 }));
        expect(y.shape).toEqual([2, 3, 8]);
        y.sum().backward();
      }
    });
    expect(mha.parameters().every((p) => !p.isDisposed && p.grad !== null)).toBe(true);
    const small = new nn.MultiHeadAttention(4, 2, { kdim: 3, vdim: 2, seed: 3 });
    gradcheck('cross-attention with separate projections', [{ shape: [2, 2, 4], values: vals(16, 31) }, { shape: [2, 3, 3], values: vals(18, 32) }, { shape: [2, 3, 2], values: vals(12, 33) }],
      ([q, k, v]) => small.forward(q, k, v));
    small.dispose();
    mha.dispose();
  });

  it('passes gradient checks for self- and cross-attention (inputs and parameters)', () => {
    const mha = new nn.MultiHeadAttention(4, 2, { seed: 3 });
    eg.noGrad(() => mha.stateDict().in_proj_bias.assign(eg.tensor(vals(12, 9, -0.5, 0.5))));
    const keyMask = eg.tidy(() => eg.keep(eg.tensor([1, 1, 1, 1, 1, 0], [2, 3])));
    gradcheck('mha self-attention input', [{ shape: [2, 3, 4], values: vals(24, 6) }], ([x]) => mha.forward(x, null, null, { keyMask, causal: true }));
    gradcheck('mha cross-attention inputs', [{ shape: [2, 2, 4], values: vals(16, 7) }, { shape: [2, 3, 4], values: vals(24, 8) }],
      ([q, kv]) => mha.forward(q, kv, kv, { keyMask }));
    const x = eg.keep(eg.tensor(vals(24, 10), [2, 3, 4]));
    const w = eg.keep(eg.rand([2, 3, 4], -1, 1, { seed: 11 }));
    paramGradcheck('mha parameters', mha, () => mha.forward(x, null, null, { keyMask }).mul(w).sum());
    for (const t of [x, w, keyMask]) t.dispose();
    mha.dispose();
  });

  it('keeps the weights of every head for visualisation', () => {
    const mha = new nn.MultiHeadAttention(8, 2, { seed: 4, keepAttentionWeights: true });
    eg.tidy(() => mha.forward(eg.randn([3, 5, 8], 0, 1, { seed: 5 }), null, null, { causal: true }));
    const w = mha.attentionWeights!;
    expect(w.shape).toEqual([3, 2, 5, 5]);
    expect(w.isDisposed).toBe(false);
    expect(w.slice([0, 0, 0, 1], [1, 1, 1, 5]).sum().item()).toBe(0); // first query sees only itself
    mha.dispose();
    expect(w.isDisposed).toBe(true);
  });
});

describe('Transformer blocks', { timeout: 30_000 }, () => {
  for (const normFirst of [false, true]) {
    it(`TransformerEncoderLayer (${normFirst ? 'pre' : 'post'}-LN): PyTorch names, gradient checks of input and parameters`, () => {
      const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 6, dropout: 0, activation: 'gelu', normFirst, seed: 5 });
      expect(layer.namedParameters().map(([n]) => n)).toEqual([
        'self_attn.in_proj_weight', 'self_attn.in_proj_bias', 'self_attn.out_proj.weight', 'self_attn.out_proj.bias',
        'linear1.weight', 'linear1.bias', 'linear2.weight', 'linear2.bias', 'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias',
      ]);
      layer.eval();
      const keyMask = eg.keep(eg.tensor([1, 1, 1, 1, 1, 0], [2, 3]));
      gradcheck('encoder layer input', [{ shape: [2, 3, 4], values: vals(24, 12) }], ([x]) => layer.forward(x, { keyMask }));
      const x = eg.keep(eg.tensor(vals(24, 13), [2, 3, 4]));
      const w = eg.keep(eg.rand([2, 3, 4], -1, 1, { seed: 14 }));
      paramGradcheck('encoder layer parameters', layer, () => layer.forward(x, { keyMask }).mul(w).sum(), 3);
      for (const t of [x, w, keyMask]) t.dispose();
      layer.dispose();
    });
  }

  it('GPTBlock: nanoGPT names, causal (a later token never changes an earlier output), gradient checks', () => {
    const block = new nn.GPTBlock(4, 2, { mlpRatio: 2, seed: 6 });
    expect(block.namedParameters().map(([n]) => n)).toEqual([
      'ln_1.weight', 'ln_1.bias', 'attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight', 'attn.c_proj.bias',
      'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias',
    ]);
    eg.tidy(() => {
      const a = eg.tensor(vals(2 * 4 * 4, 15), [2, 4, 4]);
      const b = eg.concat([a.slice([0, 0, 0], [2, 3, 4]), eg.randn([2, 1, 4], 0, 1, { seed: 3 })], 1);
      expect(Array.from(block.forward(a).slice([0, 0, 0], [2, 3, 4]).dataSync())).toEqual(Array.from(block.forward(b).slice([0, 0, 0], [2, 3, 4]).dataSync()));
    });
    gradcheck('gpt block input', [{ shape: [2, 3, 4], values: vals(24, 16) }], ([x]) => block.forward(x));
    const x = eg.keep(eg.tensor(vals(24, 17), [2, 3, 4]));
    const w = eg.keep(eg.rand([2, 3, 4], -1, 1, { seed: 18 }));
    paramGradcheck('gpt block parameters', block, () => block.forward(x).mul(w).sum(), 3);
    x.dispose();
    w.dispose();
    block.dispose();
  });

  it('positional encodings: the sinusoidal table, learned positions', () => {
    const t = nn.sinusoidalTable(50, 6);
    for (const [p, i] of [[0, 0], [1, 0], [7, 2], [49, 4], [33, 5]]) {
      const f = 1 / 10000 ** ((i - (i % 2)) / 6);
      expect(t[p * 6 + i]).toBeCloseTo(i % 2 ? Math.cos(p * f) : Math.sin(p * f), 6);
    }
    const pe = new nn.SinusoidalPositionalEncoding(6, 50);
    const lp = new nn.LearnedPositionalEmbedding(10, 6, { seed: 1 });
    eg.tidy(() => {
      const x = eg.zeros([2, 4, 6]);
      expectClose(pe.forward(x, 7).slice([1, 0, 0], [2, 4, 6]).dataSync(), t.subarray(42, 66), 0, 'offset positions');
      expectClose(lp.forward(x).slice([0, 0, 0], [1, 4, 6]).dataSync(), lp.positions(4).dataSync(), 0, 'learned positions');
      expect(() => pe.forward(eg.zeros([1, 60, 6]))).toThrow(eg.ShapeError);
    });
    expect(pe.namedParameters()).toHaveLength(0);
    pe.dispose();
    lp.dispose();
  });
});

describe('training', { timeout: 30_000 }, () => {
  it('a Transformer encoder learns to reverse sequences (loss falls)', () => {
    const [V, T, E, N] = [8, 6, 32, 128];
    const r = vals(N * T, 20, 0, 1);
    const src = Int32Array.from(r, (v) => Math.floor(v * V));
    const tgt = new Int32Array(N * T);
    for (let i = 0; i < N; i++) for (let t = 0; t < T; t++) tgt[i * T + t] = src[i * T + T - 1 - t];
    const emb = new nn.Embedding(V, E, { seed: 21, init: { normal: [0, 0.5] } });
    const pos = new nn.LearnedPositionalEmbedding(T, E, { seed: 22, init: { normal: [0, 0.5] } });
    const enc = nn.TransformerEncoder.create(2, E, 4, { dimFeedforward: 2 * E, dropout: 0, normFirst: true, seed: 23 });
    const head = new nn.Linear(E, V, { seed: 24 });
    const mods = [emb, pos, enc, head];
    const opt = new eg.optim.Adam(mods.flatMap((m) => m.parameters()), { lr: 1e-2 });
    const x = eg.tensor(src, [N, T], 'int32');
    const y = eg.tensor(tgt, [N, T], 'int32');
    const logits = () => head.forward(enc.forward(pos.forward(emb.forward(x))));
    const loss = () => eg.losses.sparseCategoricalCrossEntropy(logits(), y, { fromLogits: true });
    const first = eg.tidy(() => eg.noGrad(() => loss().item()));
    let last = first;
    for (let step = 0; step < 150 && last > 0.05; step++) {
      last = eg.tidy(() => {
        opt.zeroGrad();
        const l = loss();
        l.backward();
        opt.step();
        return l.item();
      });
    }
    const acc = eg.tidy(() => eg.noGrad(() => logits().argMax(-1).cast('float32').equal(y.cast('float32')).mean().item()));
    expect(last).toBeLessThan(first * 0.2);
    expect(acc).toBeGreaterThan(0.95);
    for (const m of mods) m.dispose();
    opt.dispose();
    x.dispose();
    y.dispose();
  });

  it('a GPT learns to continue repeated patterns, saves and reloads with identical logits', async () => {
    const [V, P, T, N] = [10, 4, 16, 64];
    const r = vals(N * P, 30, 0, 1);
    const seqs = new Int32Array(N * (T + 1));
    for (let i = 0; i < N; i++) for (let t = 0; t <= T; t++) seqs[i * (T + 1) + t] = Math.floor(r[i * P + (t % P)] * V);
    const gpt = new nn.GPT({ vocabSize: V, blockSize: T, nLayer: 2, nHead: 2, nEmbd: 32, seed: 31 });
    const opt = new eg.optim.AdamW(gpt.parameters(), { lr: 1e-2, weightDecay: 0.01 });
    const all = eg.tensor(seqs, [N, T + 1], 'int32');
    const x = all.slice([0, 0], [N, T]).contiguous();
    const y = all.slice([0, 1], [N, T + 1]).contiguous();
    // Loss on the predictable part (after the first period).
    const lossOf = () => {
      const l = gpt.forward(x).slice([0, P, 0], [N, T, V]);
      return eg.losses.sparseCategoricalCrossEntropy(l, y.slice([0, P], [N, T]), { fromLogits: true });
    };
    const first = eg.tidy(() => eg.noGrad(() => lossOf().item()));
    let last = first;
    for (let step = 0; step < 100 && last > first * 0.15; step++) {
      last = eg.tidy(() => {
        opt.zeroGrad();
        const l = lossOf();
        l.backward();
        opt.step();
        return l.item();
      });
    }
    expect(last).toBeLessThan(first * 0.2);
    // attention maps of every layer and head
    gpt.keepAttentionWeights();
    eg.tidy(() => gpt.forward(x.slice([0, 0], [2, T])));
    const maps = gpt.attentionMaps();
    expect(maps.map((m) => m!.shape)).toEqual([[2, 2, T, T], [2, 2, T, T]]);
    gpt.keepAttentionWeights(false);
    const art = await eg.saveModel(gpt);
    expect(Object.keys(gpt.stateDict())).toContain('transformer.h.1.attn.c_attn.weight');
    const { model } = await eg.loadModel({ json: art.json, weights: art.weights });
    eg.tidy(() => {
      const a = gpt.forward(x.slice([0, 0], [4, T])).dataSync();
      const b = model.forward(x.slice([0, 0], [4, T])).dataSync();
      expect(Array.from(b)).toEqual(Array.from(a));
    });
    for (const t of [all, x, y]) t.dispose();
    gpt.dispose();
    model.dispose();
    opt.dispose();
  });
});

describe('errors and determinism', () => {
  it('typed errors name the problem', () => {
    expect(() => new nn.MultiHeadAttention(6, 4)).toThrow(/divisible/);
    const mha = new nn.MultiHeadAttention(4, 2, { seed: 1 });
    eg.tidy(() => {
      expect(() => mha.forward(eg.zeros([2, 3, 5]))).toThrow(/query must be \[batch, length, 4\]/);
      expect(() => mha.forward(eg.zeros([2, 3, 4]), null, null, { keyMask: eg.ones([2, 5]) })).toThrow(eg.ShapeError);
      expect(() => nn.scaledDotProductAttention(eg.zeros([2, 3, 4]), eg.zeros([2, 3, 5]), eg.zeros([2, 3, 5]))).toThrow(/dimension 4/);
      expect(() => nn.scaledDotProductAttention(eg.zeros([2, 3, 4]), eg.zeros([2, 3, 4]), eg.zeros([2, 3, 4]), { mask: eg.ones([3, 2]) })).toThrow(/does not broadcast/);
      const gpt = new nn.GPT({ vocabSize: 5, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 4 });
      expect(() => gpt.forward(eg.zeros([1, 5], 'int32'))).toThrow(/exceeds blockSize 4/);
      expect(() => gpt.forward(eg.zeros([1, 3]))).toThrow(eg.DTypeError);
      gpt.dispose();
    });
    mha.dispose();
  });

  it('dispose() frees what layers hold beyond parameters (kept attention maps): nothing is left', () => {
    const start = eg.memory().numTensors;
    const gpt = new nn.GPT({ vocabSize: 9, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, seed: 52 }).keepAttentionWeights();
    eg.tidy(() => {
      gpt.forward(eg.zeros([2, 8], 'int32'));
    });
    expect(gpt.attentionMaps().every((m) => m !== null)).toBe(true);
    gpt.dispose();
    expect(eg.memory().numTensors).toBe(start);
  });

  it('a GPT training loop keeps the tensor count and engine memory flat (attention maps kept)', () => {
    const gpt = new nn.GPT({ vocabSize: 9, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0.1, seed: 50 }).keepAttentionWeights();
    const opt = new eg.optim.AdamW(gpt.parameters(), { lr: 1e-3 });
    const x = eg.tensor(Int32Array.from(vals(4 * 8, 51, 0, 9), Math.floor), [4, 8], 'int32');
    const step = () => eg.tidy(() => {
      opt.zeroGrad();
      eg.losses.sparseCategoricalCrossEntropy(gpt.forward(x), x, { fromLogits: true }).backward();
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
    gpt.dispose();
    opt.dispose();
    x.dispose();
  });

  it('GPT logits and gradients are bitwise identical with 1 and 2 threads', () => {
    const gpt = new nn.GPT({ vocabSize: 12, blockSize: 32, nLayer: 2, nHead: 4, nEmbd: 64, seed: 40 });
    const x = eg.tensor(Int32Array.from(vals(4 * 32, 41, 0, 12), Math.floor), [4, 32], 'int32');
    const run = (threads: number) => {
      eg.setNumThreads(threads);
      try {
        return eg.tidy(() => {
          for (const p of gpt.parameters()) p.zeroGrad();
          const l = gpt.forward(x);
          l.square().mean().backward();
          return [l.dataSync(), ...gpt.parameters().map((p) => p.grad!.dataSync())].map((a) => Array.from(a));
        });
      } finally {
        eg.setNumThreads(eg.backendInfo().maxThreads);
      }
    };
    expect(run(1)).toEqual(run(2));
    gpt.dispose();
    x.dispose();
  });
});
