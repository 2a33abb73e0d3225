/**
 * The fused inference attention path (`op_packed_self_attention`: one engine call from the packed
 * projection, heads read in place, merged output written directly), taken by
 * `MultiHeadAttention`, `TransformerEncoderLayer` and `CausalSelfAttention`/`GPT` when nothing is
 * recorded, and the whole encoder layer in one call (`op_encoder_layer_infer`): bitwise the unfused op sequence (the path taken while autograd records, or when the
 * weights are kept) over shapes, heads, masks and causality, in every runtime; same seeded
 * dropout stream afterwards; no leaks; typed errors.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import * as eg from '../sdk/index.js';
import { bits, expectFlatOver100Calls, fnv1a } from './explain-fixtures.js';
import { expectEachTestFreesItsTensors, setup } from './helpers.js';

const { nn } = eg;

beforeAll(async () => {
  await setup();
});
expectEachTestFreesItsTensors();

/** A keep-mask with about a quarter of the entries blocked (seeded, so some rows are fully blocked). */
function keepMask(shape: number[], seed: number): eg.Tensor {
  const u = eg.rand(shape, 0, 1, { seed });
  const g = u.greater(0.25);
  const m = g.cast('float32');
  u.dispose();
  g.dispose();
  return m;
}

function int32(m: eg.Tensor): eg.Tensor {
  const r = m.cast('int32');
  m.dispose();
  return r;
}

/** Output bits under noGrad (fused) and with autograd recording (unfused); both must be equal. */
function fusedAndRecorded(f: () => eg.Tensor): [number[], number[]] {
  const fused = eg.noGrad(f);
  const recorded = f();
  const r: [number[], number[]] = [bits(fused), bits(recorded)];
  fused.dispose();
  recorded.dispose();
  return r;
}

describe('fused inference self-attention', () => {
  it('MultiHeadAttention: fused == recorded forward, bitwise, over shapes, heads, masks and causality', () => {
    let cases = 0;
    for (const [b, t, e, h] of [[1, 1, 8, 2], [1, 3, 12, 3], [2, 5, 16, 4], [1, 16, 32, 4], [3, 9, 24, 1], [1, 40, 64, 8]]) {
      const mha = new nn.MultiHeadAttention(e, h, { seed: b * 100 + t }).eval();
      const x = eg.randn([b, t, e], 0, 2, { seed: t + e });
      const masks: [string, eg.nn.MultiHeadForwardOptions][] = [
        ['none', {}],
        ['keyMask', { keyMask: keepMask([b, t], 1) }],
        ['attnMask 2-D', { attnMask: keepMask([t, t], 2) }],
        ['attnMask 3-D int32', { attnMask: int32(keepMask([b, t, t], 3)) }],
        ['attnMask 4-D + keyMask', { attnMask: keepMask([b, h, t, t], 4), keyMask: keepMask([b, t], 5) }],
      ];
      for (const [name, o] of masks) {
        for (const causal of [false, true]) {
          const [fused, recorded] = fusedAndRecorded(() => mha.forward(x, x, x, { ...o, causal }));
          expect(fused, `b${b} t${t} e${e} h${h} ${name} causal ${causal}`).toEqual(recorded);
          cases++;
        }
        o.keyMask?.dispose();
        o.attnMask?.dispose();
      }
      x.dispose();
      mha.dispose();
    }
    expect(cases).toBe(60);
  });

  it('TransformerEncoderLayer (post-LN and pre-LN) and a 2-layer encoder: fused == recorded == kept-weights path', () => {
    for (const normFirst of [false, true]) {
      const layer = new nn.TransformerEncoderLayer(32, 4, { dimFeedforward: 64, activation: 'gelu', normFirst, seed: 3 }).eval();
      const x = eg.randn([2, 7, 32], 0, 1, { seed: 9 });
      const km = eg.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]]);
      const [fused, recorded] = fusedAndRecorded(() => layer.forward(x, { keyMask: km }));
      expect(fused).toEqual(recorded);
      // keepAttentionWeights takes the unfused path even without recording.
      layer.selfAttn.keepAttentionWeights = true;
      const kept = eg.noGrad(() => layer.forward(x, { keyMask: km }));
      expect(bits(kept)).toEqual(fused);
      expect(layer.selfAttn.attentionWeights?.shape).toEqual([2, 4, 7, 7]);
      for (const t of [x, km, kept]) t.dispose();
      layer.dispose();
    }
    const enc = nn.TransformerEncoder.create(2, 16, 2, { dimFeedforward: 32, seed: 4, finalNorm: true }).eval();
    const x = eg.randn([1, 11, 16], 0, 1, { seed: 10 });
    const [fused, recorded] = fusedAndRecorded(() => enc.forward(x, { causal: true }));
    expect(fused).toEqual(recorded);
    x.dispose();
    enc.dispose();
  });

  it('GPT (causal, packed c_attn): fused logits == recorded logits, bitwise, and a stored digest', () => {
    const gpt = new nn.GPT({ vocabSize: 23, blockSize: 32, nLayer: 2, nHead: 4, nEmbd: 32, dropout: 0.1, seed: 5 }).eval();
    let last = '';
    for (const t of [1, 2, 4, 19]) {
      const idx = eg.randint([2, t], 0, 23, { seed: t });
      const [fused, recorded] = fusedAndRecorded(() => gpt.forward(idx));
      expect(fused, `T${t}`).toEqual(recorded);
      last = fnv1a(fused);
      idx.dispose();
    }
    // The same bits in Node and Chromium (and before this path existed: the unfused ops give them).
    expect(last).toBe(GPT_T19_DIGEST);
    // Each GPTBlock ran as one engine call: the only LayerNorm module forward is the final ln_f.
    const idx = eg.randint([1, 7], 0, 23, { seed: 3 });
    const spy = vi.spyOn(nn.LayerNorm.prototype, 'forward');
    try {
      eg.noGrad(() => gpt.forward(idx)).dispose();
      expect(spy.mock.calls.length).toBe(1);
      // A hook on one block's c_attn sends that block through its modules (2 LayerNorms more), same bits.
      const hook = gpt.blocks[1].attn.getModule('c_attn').registerForwardHook(() => {});
      const [hooked, recorded] = fusedAndRecorded(() => gpt.forward(idx));
      expect(hooked).toEqual(recorded);
      spy.mockClear();
      eg.noGrad(() => gpt.forward(idx)).dispose();
      expect(spy.mock.calls.length).toBe(3);
      hook.remove();
    } finally {
      spy.mockRestore();
      idx.dispose();
    }
    gpt.dispose();
  });

  it('GPTBlock in one call counts seeded attention calls like its modules (training afterwards draws the same masks)', () => {
    const run = (oneCall: boolean): number[] => {
      const block = new nn.GPTBlock(16, 2, { dropout: 0.2, seed: 51 });
      const x = eg.randn([1, 5, 16], 0, 1, { seed: 52 });
      block.eval();
      const y0 = oneCall ? eg.noGrad(() => block.forward(x)) : block.forward(x);
      block.train();
      const y1 = block.forward(x);
      const out = bits(y1);
      for (const t of [x, y0, y1]) t.dispose();
      block.dispose();
      return out;
    };
    expect(run(true)).toEqual(run(false));
  });

  it('the fused path counts seeded calls like the unfused one (training afterwards draws the same dropout masks)', () => {
    const run = (fusedEval: boolean): number[] => {
      const mha = new nn.MultiHeadAttention(16, 2, { dropout: 0.5, seed: 8 });
      const x = eg.randn([1, 6, 16], 0, 1, { seed: 2 });
      mha.eval();
      const y0 = fusedEval ? eg.noGrad(() => mha.forward(x)) : mha.forward(x);
      mha.train();
      const y1 = mha.forward(x);
      const out = bits(y1);
      for (const t of [x, y0, y1]) t.dispose();
      mha.dispose();
      return out;
    };
    expect(run(true)).toEqual(run(false));
  });

  it('is 1- and 2-thread bitwise identical and leaks nothing over 100 calls', () => {
    const layer = new nn.TransformerEncoderLayer(32, 4, { dimFeedforward: 64, activation: 'gelu', seed: 6 }).eval();
    const x = eg.randn([1, 16, 32], 0, 1, { seed: 12 });
    eg.setNumThreads(1);
    const one = eg.noGrad(() => layer.forward(x));
    eg.setNumThreads(2);
    const two = eg.noGrad(() => layer.forward(x));
    expect(bits(two)).toEqual(bits(one));
    const km = eg.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]]);
    expectFlatOver100Calls([
      ['layer forward (fused)', () => eg.noGrad(() => layer.forward(x, { keyMask: km, causal: true }))],
    ]);
    for (const t of [x, one, two, km]) t.dispose();
    layer.dispose();
  });

  it('bad masks fail with typed errors on the fused path too, freeing what they made', () => {
    const mha = new nn.MultiHeadAttention(8, 2, { seed: 1 }).eval();
    const x = eg.randn([2, 3, 8], 0, 1, { seed: 1 });
    const bad = eg.ones([2, 5, 5]);
    expect(() => eg.noGrad(() => mha.forward(x, x, x, { attnMask: bad }))).toThrow(eg.ShapeError);
    expect(() => eg.noGrad(() => mha.forward(x, x, x, { attnMask: bad }))).toThrow(/does not broadcast/);
    const badKey = eg.ones([2, 4]);
    expect(() => eg.noGrad(() => mha.forward(x, x, x, { keyMask: badKey }))).toThrow(eg.ShapeError);
    for (const t of [x, bad, badKey]) t.dispose();
    mha.dispose();
  });
});

describe('TransformerEncoderLayer in one engine call (inference)', () => {
  /** Forward under noGrad, counting the LayerNorm module forwards it ran (0 = the one-call path). */
  function inferCounting(layer: eg.nn.TransformerEncoderLayer, x: eg.Tensor, o: eg.nn.MultiHeadForwardOptions = {}): { y: eg.Tensor; normCalls: number } {
    const spy = vi.spyOn(nn.LayerNorm.prototype, 'forward');
    try {
      const y = eg.noGrad(() => layer.forward(x, o));
      return { y, normCalls: spy.mock.calls.length };
    } finally {
      spy.mockRestore();
    }
  }

  it('equals the recorded module-by-module forward bitwise: post/pre-LN, relu/gelu, bias, eps, masks, causal, batch', () => {
    let cases = 0;
    for (const [b, t, e, h, ff] of [[1, 1, 8, 2, 16], [1, 3, 12, 3, 8], [2, 9, 16, 4, 40], [1, 16, 32, 4, 64]]) {
      for (const [normFirst, activation, bias, layerNormEps] of [[false, 'gelu', true, 1e-5], [true, 'relu', false, 1e-3], [false, 'relu', true, 1e-6], [true, 'gelu', true, 1e-5]] as const) {
        const layer = new nn.TransformerEncoderLayer(e, h, { dimFeedforward: ff, activation, normFirst, bias, layerNormEps, seed: b + t + e }).eval();
        const x = eg.randn([b, t, e], 0, 1.5, { seed: t * e });
        const km = keepMask([b, t], 21);
        const am = keepMask([t, t], 22);
        for (const o of [{}, { keyMask: km }, { attnMask: am, causal: true }, { keyMask: km, attnMask: am }] as eg.nn.MultiHeadForwardOptions[]) {
          const { y, normCalls } = inferCounting(layer, x, o);
          expect(normCalls, 'took the one-call path').toBe(0);
          const recorded = layer.forward(x, o);
          expect(bits(y), `b${b} t${t} e${e} h${h} normFirst ${normFirst} ${activation} bias ${bias}`).toEqual(bits(recorded));
          y.dispose();
          recorded.dispose();
          cases++;
        }
        for (const z of [x, km, am]) z.dispose();
        layer.dispose();
      }
    }
    expect(cases).toBe(64);
  });

  it('falls back to the module-by-module path (same bits) for hooks, kept weights, training mode and recording', () => {
    const layer = new nn.TransformerEncoderLayer(16, 2, { dimFeedforward: 32, activation: 'gelu', seed: 31 }).eval();
    const x = eg.randn([1, 5, 16], 0, 1, { seed: 32 });
    const { y: fused, normCalls } = inferCounting(layer, x);
    expect(normCalls).toBe(0);
    let seen = 0;
    const hook = layer.getModule('linear1').registerForwardHook(() => {
      seen++;
    });
    const hooked = inferCounting(layer, x);
    expect([hooked.normCalls, seen]).toEqual([2, 1]);
    expect(bits(hooked.y)).toEqual(bits(fused));
    hook.remove();
    layer.selfAttn.keepAttentionWeights = true;
    const kept = inferCounting(layer, x);
    expect(kept.normCalls).toBe(2);
    expect(bits(kept.y)).toEqual(bits(fused));
    layer.selfAttn.keepAttentionWeights = false;
    layer.getModule('dropout').train(); // one active dropout module: the module path runs it
    const mixed = inferCounting(layer, x);
    expect(mixed.normCalls).toBe(2);
    layer.getModule('dropout').eval();
    for (const t of [x, fused, hooked.y, kept.y, mixed.y]) t.dispose();
    layer.dispose();
  });

  it('keeps the attention call count of the module path (seeded dropout afterwards), leaks nothing, fails typed', () => {
    const run = (oneCall: boolean): number[] => {
      const layer = new nn.TransformerEncoderLayer(16, 2, { dimFeedforward: 32, dropout: 0.3, seed: 41 });
      const x = eg.randn([1, 6, 16], 0, 1, { seed: 42 });
      layer.eval();
      const y0 = oneCall ? eg.noGrad(() => layer.forward(x)) : layer.forward(x);
      layer.train();
      const y1 = layer.forward(x);
      const out = bits(y1);
      for (const t of [x, y0, y1]) t.dispose();
      layer.dispose();
      return out;
    };
    expect(run(true)).toEqual(run(false));
    const layer = new nn.TransformerEncoderLayer(16, 2, { dimFeedforward: 32, seed: 43 }).eval();
    const x = eg.randn([2, 4, 16], 0, 1, { seed: 44 });
    const km = eg.ones([2, 4]);
    expectFlatOver100Calls([['one-call layer forward', () => eg.noGrad(() => layer.forward(x, { keyMask: km }))]]);
    const bad = eg.ones([2, 5]);
    expect(() => eg.noGrad(() => layer.forward(x, { keyMask: bad }))).toThrow(eg.ShapeError);
    const wrong = eg.ones([1, 4, 8]);
    expect(() => eg.noGrad(() => layer.forward(wrong))).toThrow(eg.ShapeError);
    for (const t of [x, km, bad, wrong]) t.dispose();
    layer.dispose();
  });
});

const GPT_T19_DIGEST = 'e3fb2385';
