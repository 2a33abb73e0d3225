/** Layer attributions and linear probes (issue 14 §2, §4, §6): formulas, completeness, interpolation, determinism, memory, errors. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup } from './helpers.js';
import { bits, cnn, data, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';

const { nn, explain } = eg;

beforeAll(async () => {
  await setup();
});
expectEachTestFreesItsTensors();

const T = 6;
const D = 4;
/** A tiny text classifier: token ids [N, 6] → Embedding(10, 4) → flatten → tanh MLP → 3 classes. */
function textModel(): eg.nn.Sequential {
  return new nn.Sequential(
    new nn.Embedding(10, D, { seed: 41 }), new nn.Flatten(), new nn.Linear(T * D, 8, { seed: 42 }), new nn.Tanh(), new nn.Linear(8, 3, { seed: 43 }),
  ).eval();
}
/** Token ids; 0 is the pad id (trailing pads). */
const TOKENS = [[3, 7, 1, 9, 0, 0], [5, 2, 2, 8, 4, 0], [1, 1, 6, 0, 0, 0]];


/** PyTorch's F.interpolate(mode='bilinear', align_corners=False) on one [h, w] map, in float64. */
function bilinearRef(a: number[][], H: number, W: number): number[][] {
  const src = (k: number, inS: number, outS: number) => Math.max(0, (k + 0.5) * (inS / outS) - 0.5);
  const h = a.length;
  const w = a[0].length;
  return Array.from({ length: H }, (_, i) => Array.from({ length: W }, (_, j) => {
    const y = src(i, h, H);
    const x = src(j, w, W);
    const y0 = Math.min(Math.floor(y), h - 1);
    const x0 = Math.min(Math.floor(x), w - 1);
    const y1 = Math.min(y0 + 1, h - 1);
    const x1 = Math.min(x0 + 1, w - 1);
    const ly = y - y0;
    const lx = x - x0;
    return (1 - ly) * ((1 - lx) * a[y0][x0] + lx * a[y0][x1]) + ly * ((1 - lx) * a[y1][x0] + lx * a[y1][x1]);
  }));
}

describe('LayerActivation', () => {
  it('equals captureActivations\' output, by name or by module, and reads token-id models', () => eg.tidy(() => {
    const m = cnn();
    const x = eg.rand([3, 8, 8, 1], 0, 1, { seed: 1 });
    const { result, activations } = explain.captureActivations(m, ['3'], () => m.forward(x));
    const byName = new explain.LayerActivation(m, '3').attribute(x);
    const byModule = new explain.LayerActivation(m, m.getModule('3')).attribute(x);
    expect(byName.shape).toEqual([3, 4, 4, 6]);
    expect(bits(byName)).toEqual(bits(activations.get('3')!));
    expect(bits(byModule)).toEqual(bits(byName));
    const tm = textModel();
    const ids = eg.tensor(TOKENS, [3, T], 'int32');
    const emb = new explain.LayerActivation(tm, '0').attribute(ids);
    expect(emb.shape).toEqual([3, T, D]);
    expect(bits(emb)).toEqual(bits(tm.getModule('0').forward(ids)));
    eg.dispose([x, result, activations, byName, byModule, ids, emb]);
    m.dispose();
    tm.dispose();
  }));
});

describe('LayerGradCam', () => {
  it('matches Captum\'s formula computed by hand from captured activations and gradients', () => eg.tidy(() => {
    const m = cnn();
    const x = eg.rand([3, 8, 8, 1], 0, 1, { seed: 2 });
    const target = [0, 3, 4];
    // Hand computation: A = conv '3' output; G = ∂F_target/∂A via Saliency on the rest of the model.
    const { result, activations } = explain.captureActivations(m, ['3'], () => m.forward(x));
    const A = activations.get('3')!;
    const layers = m.layers;
    const head = (a: eg.Tensor) => layers[6].forward(layers[5].forward(layers[4].forward(a)));
    const G = new explain.Saliency(head).attribute(A, { target, abs: false });
    const a = A.arraySync() as number[][][][];
    const g = G.arraySync() as number[][][][];
    const want = (relu: boolean) => a.map((an, n) => {
      const w = Array.from({ length: 6 }, (_, c) => {
        let s = 0;
        for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) s += g[n][i][j][c];
        return s / 16;
      });
      return an.map((row) => row.map((cell) => {
        const v = cell.reduce((s, ac, c) => s + w[c] * ac, 0);
        return [relu ? Math.max(0, v) : v];
      }));
    });
    const gc = new explain.LayerGradCam(m, '3');
    for (const relu of [false, true]) {
      const got = gc.attribute(x, { target, reluAttributions: relu });
      expect(got.shape).toEqual([3, 4, 4, 1]);
      const exp = want(relu).flat(3);
      data(got).forEach((v, k) => expect(v, `relu ${relu} [${k}]`).toBeCloseTo(exp[k], 5));
      got.dispose();
    }
    // Some weighted sums are negative (so reluAttributions matters here).
    expect(want(false).flat(3).some((v) => v < 0)).toBe(true);
    // attrDimSummation false: one map per channel, summing to the default.
    const per = gc.attribute(x, { target, attrDimSummation: false });
    const summed = gc.attribute(x, { target });
    expect(per.shape).toEqual([3, 4, 4, 6]);
    data(per.sum(3, true)).forEach((v, k) => expect(v).toBeCloseTo(data(summed)[k], 5));
    // A [batch, classes] layer (the classifier): the gradient is one-hot, so Grad-CAM is the target logit.
    const logits = eg.noGrad(() => m.forward(x)).arraySync() as number[][];
    const last = new explain.LayerGradCam(m, '6').attribute(x, { target });
    expect(last.shape).toEqual([3, 1]);
    data(last).forEach((v, n) => expect(v).toBeCloseTo(logits[n][target[n]], 5));
    eg.dispose([x, result, activations, G, per, summed, last]);
    m.dispose();
  }));

  it('upsampled to the input size: the input\'s spatial shape; nearest repeats cells, bilinear is PyTorch\'s', () => {
    const m = cnn();
    const x = eg.rand([2, 8, 8, 1], 0, 1, { seed: 3 });
    const gc = new explain.LayerGradCam(m, '3');
    const small = gc.attribute(x, { target: 1 });
    const near = gc.attribute(x, { target: 1, upsample: 'nearest' });
    const bil = gc.attribute(x, { target: 1, upsample: 'bilinear' });
    expect(near.shape).toEqual([2, 8, 8, 1]);
    expect(bil.shape).toEqual([2, 8, 8, 1]);
    const s = small.arraySync() as number[][][][];
    const nr = near.arraySync() as number[][][][];
    const br = bil.arraySync() as number[][][][];
    for (let n = 0; n < 2; n++) {
      const map = s[n].map((row) => row.map((c) => c[0]));
      const ref = bilinearRef(map, 8, 8);
      for (let i = 0; i < 8; i++) {
        for (let j = 0; j < 8; j++) {
          expect(nr[n][i][j][0]).toBe(map[i >> 1][j >> 1]);
          expect(br[n][i][j][0]).toBeCloseTo(ref[i][j], 5);
        }
      }
    }
    eg.dispose([x, small, near, bil]);
    m.dispose();
  });
});

describe('interpolate', () => {
  it('PyTorch\'s values (align_corners=False) for bilinear, nearest and linear; channels kept apart', () => eg.tidy(() => {
    const t = eg.tensor([[[[1, 10], [2, 20]], [[3, 30], [4, 40]]]]); // [1, 2, 2, 2]: channels (v, 10v)
    const b = explain.interpolate(t, [4, 4], 'bilinear');
    const want = [[1, 1.25, 1.75, 2], [1.5, 1.75, 2.25, 2.5], [2.5, 2.75, 3.25, 3.5], [3, 3.25, 3.75, 4]];
    expect((b.arraySync() as number[][][][])[0].map((r) => r.map((c) => c[0]))).toEqual(want);
    expect((b.arraySync() as number[][][][])[0].map((r) => r.map((c) => c[1]))).toEqual(want.map((r) => r.map((v) => v * 10)));
    const n = explain.interpolate(t, [3, 5], 'nearest');
    // PyTorch: source index floor(i · in/out): rows [0, 0, 1], columns [0, 0, 0, 1, 1].
    expect((n.arraySync() as number[][][][])[0].map((r) => r.map((c) => c[0]))).toEqual([[1, 1, 1, 2, 2], [1, 1, 1, 2, 2], [3, 3, 3, 4, 4]]);
    // Downsampling 5 → 2 with linear: sources 0.75 and 3.25.
    const l = explain.interpolate(eg.tensor([[[0], [1], [2], [3], [4]]]), [2], 'linear');
    expect(data(l)).toEqual([0.75, 3.25]);
    // The same size: a copy with the same values.
    const same = explain.interpolate(t, [2, 2], 'bilinear');
    expect(same).not.toBe(t);
    expect(data(same)).toEqual(data(t));
    eg.dispose([t, b, n, l, same]);
  }));
});

describe('GuidedGradCam', () => {
  it('is GuidedBackprop ⊙ the nearest-upsampled, ReLU\'d Grad-CAM (Captum\'s), broadcast over input channels', () => eg.tidy(() => {
    const m = new nn.Sequential(
      new nn.Conv2d(2, 4, 3, { padding: 'same', seed: 51 }), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(4, 5, 3, { padding: 'same', seed: 52 }), new nn.ReLU(), new nn.Flatten(), new nn.Linear(4 * 4 * 5, 3, { seed: 53 }),
    ).eval();
    const x = eg.rand([2, 8, 8, 2], 0, 1, { seed: 4 });
    const target = [2, 0];
    const got = new explain.GuidedGradCam(m, '3').attribute(x, { target });
    expect(got.shape).toEqual([2, 8, 8, 2]);
    const gb = new explain.GuidedBackprop(m).attribute(x, { target });
    const cam = new explain.LayerGradCam(m, '3').attribute(x, { target, reluAttributions: true, upsample: 'nearest' });
    expect(bits(got)).toEqual(bits(gb.mul(cam)));
    expect(data(got).some((v) => v !== 0)).toBe(true);
    const bil = new explain.GuidedGradCam(m, '3').attribute(x, { target, interpolateMode: 'bilinear' });
    const camB = new explain.LayerGradCam(m, '3').attribute(x, { target, reluAttributions: true, upsample: 'bilinear' });
    expect(bits(bil)).toEqual(bits(gb.mul(camB)));
    eg.dispose([x, got, gb, cam, bil, camB]);
    m.dispose();
  }));
});

describe('LayerIntegratedGradients through an Embedding', () => {
  it('completeness within 1% (gausslegendre, 64 steps); pad tokens get exactly 0; delta is the recomputed one', () => eg.tidy(() => {
    const m = textModel();
    const ids = eg.tensor(TOKENS, [3, T], 'int32');
    const target = [0, 1, 2];
    const lig = new explain.LayerIntegratedGradients(m, '0');
    const { attributions, delta } = lig.attribute(ids, { target, baselines: 0, nSteps: 64, method: 'gausslegendre', returnConvergenceDelta: true });
    expect(attributions.shape).toEqual([3, T, D]);
    const perToken = attributions.sum(-1).arraySync() as number[][];
    const out = eg.noGrad(() => m.forward(ids)).arraySync() as number[][];
    const pads = eg.zeros([3, T], 'int32');
    const out0 = eg.noGrad(() => m.forward(pads)).arraySync() as number[][];
    const d = data(delta);
    for (let n = 0; n < 3; n++) {
      const gap = out[n][target[n]] - out0[n][target[n]];
      expect(Math.abs(gap)).toBeGreaterThan(1e-2);
      const sum = perToken[n].reduce((s, v) => s + v, 0);
      expect(Math.abs(sum - gap), `example ${n}: Σ ${sum} vs ${gap}`).toBeLessThanOrEqual(0.01 * Math.abs(gap));
      expect(d[n]).toBeCloseTo(sum - gap, 5);
      TOKENS[n].forEach((tok, t) => {
        if (tok === 0) expect(perToken[n][t]).toBe(0);
        else expect(perToken[n][t]).not.toBe(0);
      });
    }
    eg.dispose([ids, attributions, delta, pads]);
    m.dispose();
  }));

  it('is IntegratedGradients on the layer: the same bits as IG on the rest of the model from the baseline\'s embeddings; layerBaselines and internalBatchSize agree', () => eg.tidy(() => {
    const m = textModel();
    const ids = eg.tensor(TOKENS, [3, T], 'int32');
    const lig = new explain.LayerIntegratedGradients(m, '0');
    const ref = lig.attribute(ids, { target: 1, baselines: 0, nSteps: 10 });
    const emb = m.getModule('0').forward(ids).detach();
    const padEmb = m.getModule('0').forward(eg.zeros([1, T], 'int32')).detach();
    const rest = (e: eg.Tensor) => m.layers.slice(1).reduce((h, l) => l.forward(h), e);
    const ig = new explain.IntegratedGradients(rest).attribute(emb, { target: 1, baselines: padEmb, nSteps: 10 });
    expect(bits(ref)).toEqual(bits(ig));
    const viaLayer = lig.attribute(ids, { target: 1, layerBaselines: padEmb, nSteps: 10 });
    expect(bits(viaLayer)).toEqual(bits(ref));
    for (const internalBatchSize of [7, 30]) {
      expect(bits(lig.attribute(ids, { target: 1, baselines: 0, nSteps: 10, internalBatchSize })), `internalBatchSize ${internalBatchSize}`).toEqual(bits(ref));
    }
    // One row per pass: the engine's one-row matrix product rounds differently (plain IG does the same), so only close.
    const oneRow = data(lig.attribute(ids, { target: 1, baselines: 0, nSteps: 10, internalBatchSize: 1 }));
    data(ref).forEach((v, k) => expect(oneRow[k]).toBeCloseTo(v, 6));
    // Per-example token-id baselines.
    const base = eg.tensor([[0, 0, 0, 0, 0, 0], [5, 2, 0, 0, 0, 0], [1, 1, 6, 0, 0, 0]], [3, T], 'int32');
    const partial = lig.attribute(ids, { target: 1, baselines: base, nSteps: 10 }).sum(-1).arraySync() as number[][];
    expect(partial[2]).toEqual([0, 0, 0, 0, 0, 0]); // input equals its baseline
    expect(partial[1].slice(0, 2)).toEqual([0, 0]);
    eg.dispose([ids, ref, emb, padEmb, ig, viaLayer, base]);
    m.dispose();
  }));
});

describe('determinism', () => {
  it('the same bits for 1 and 2 threads, and the stored digest (same in Node and Chromium)', () => {
    const m = cnn();
    const tm = textModel();
    const x = eg.rand([2, 8, 8, 1], 0, 1, { seed: 5 });
    const ids = eg.tensor(TOKENS, [3, T], 'int32');
    const run = () => eg.tidy(() => [
      ...bits(new explain.LayerGradCam(m, '3').attribute(x, { target: [1, 2], upsample: 'bilinear' })),
      ...bits(new explain.GuidedGradCam(m, '0').attribute(x, { target: 4 })),
      ...bits(new explain.LayerIntegratedGradients(tm, '0').attribute(ids, { target: [2, 1, 0], nSteps: 16, internalBatchSize: 20 })),
      ...bits(new explain.LayerActivation(m, '4').attribute(x)),
    ]);
    expect(fnv1a(sameBitsOnOneAndTwoThreads(run))).toBe(DIGEST);
    eg.dispose([x, ids]);
    m.dispose();
    tm.dispose();
  });
});
/** FNV-1a over the float32 bits above; a change means layer attributions changed (update only knowingly). */
const DIGEST = '55e6e29a';

describe('memory and side effects', () => {
  it('100 attribute() calls of each method leave live tensors, bytes and wasm memory flat; parameters untouched', () => {
    const m = cnn();
    const tm = textModel();
    const x = eg.rand([2, 8, 8, 1], 0, 1, { seed: 6 });
    const ids = eg.tensor(TOKENS, [3, T], 'int32');
    const methods: [string, () => unknown][] = [
      ['LayerActivation', () => new explain.LayerActivation(m, '3').attribute(x)],
      ['LayerGradCam', () => new explain.LayerGradCam(m, '3').attribute(x, { target: 1, upsample: 'bilinear', reluAttributions: true })],
      ['GuidedGradCam', () => new explain.GuidedGradCam(m, '3').attribute(x, { target: [0, 2] })],
      ['LayerIntegratedGradients', () => new explain.LayerIntegratedGradients(tm, '0').attribute(ids, { target: 1, nSteps: 4, internalBatchSize: 5, returnConvergenceDelta: true })],
      ['interpolate', () => explain.interpolate(x, [5, 11], 'bilinear')],
    ];
    expectFlatOver100Calls(methods);
    for (const model of [m, tm]) {
      for (const [name, p] of model.namedParameters()) {
        expect(p.grad, name).toBeNull();
        expect(p.requiresGrad, name).toBe(true);
      }
      for (const [, mod] of model.namedModules()) expect(mod.numForwardHooks).toBe(0);
    }
    eg.dispose([x, ids]);
    m.dispose();
    tm.dispose();
  });
});

describe('linear probes', () => {
  /** Four separable Gaussian blobs in 6 dims; labels are the blob. */
  function blobs(n: number, seed: number): { x: eg.Tensor; y: eg.Tensor } {
    const labels = eg.randint([n], 0, 4, { seed });
    const centers = eg.tensor([[3, 0, 0, -3, 0, 1], [0, 3, 0, 0, -3, 1], [0, 0, 3, 3, 0, -1], [-3, -3, -3, 0, 3, -1]]);
    const x = eg.tidy(() => centers.indexSelect(0, labels).add(eg.randn([n, 6], 0, 1, { seed: seed + 1 })));
    centers.dispose();
    return { x, y: labels };
  }

  it('probe accuracy per layer of a trained model beats chance clearly; shuffled labels stay near chance; seeded reports repeat; the model is untouched', async () => {
    const { x, y } = blobs(400, 7);
    const model = new nn.Sequential(new nn.Linear(6, 16, { seed: 61 }), new nn.ReLU(), new nn.Linear(16, 4, { seed: 62 }));
    const optimizer = new eg.optim.Adam(model.parameters(), { lr: 0.02 });
    model.compile({ optimizer, loss: (p, t) => eg.losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true }) });
    await model.fit(x, y, { epochs: 5, batchSize: 50, seed: 1, verbose: 0 });
    const weights = model.parameters().map(bits);
    model.train();
    const shuffled = eg.randint([400], 0, 4, { seed: 99 });
    const before = eg.memory().numTensors;
    const opts = { epochs: 15, lr: 0.05, seed: 3, testSplit: 0.25, batchSize: 100 };
    const report = await explain.linearProbe(model, ['1', '2'], x, y, opts);
    expect(report.nTrain).toBe(300);
    expect(report.nTest).toBe(100);
    expect(report.layers.map((l) => [l.layer, l.features])).toEqual([['1', 16], ['2', 4]]);
    expect(report.chance).toBeGreaterThan(0.15);
    expect(report.chance).toBeLessThan(0.4);
    for (const l of report.layers) {
      expect(l.testAccuracy, l.layer).toBeGreaterThan(report.chance + 0.4);
      expect(l.trainAccuracy, l.layer).toBeGreaterThan(report.chance + 0.4);
    }
    expect(await explain.linearProbe(model, ['1', '2'], x, y, opts)).toEqual(report);
    // A probe cannot decode labels the activations do not carry.
    const control = await explain.linearProbe(model, ['1'], x, shuffled, opts);
    expect(control.layers[0].testAccuracy).toBeLessThan(control.chance + 0.2);
    expect(eg.memory().numTensors).toBe(before);
    expect(model.training).toBe(true);
    expect(model.parameters().map(bits)).toEqual(weights);
    for (const p of model.parameters()) expect(p.grad === null || data(p.grad).every((v) => Number.isFinite(v))).toBe(true);
    eg.dispose([x, y, shuffled]);
    optimizer.dispose();
    model.dispose();
  });
});

describe('errors', () => {
  it('every misuse is a typed error naming the problem, nothing leaks, and the engine keeps working', async () => {
    const m = cnn();
    const tm = textModel();
    const x = eg.rand([2, 8, 8, 1], 0, 1, { seed: 8 });
    const ids = eg.tensor(TOKENS, [3, T], 'int32');
    const flat = eg.rand([2, 4], 0, 1, { seed: 9 });
    const yF = eg.zeros([2]);
    const y2 = eg.tensor([0, 1], [2], 'int32');
    const y3 = eg.tensor([0, 1, 1], [3], 'int32');
    const z5 = eg.zeros([5]);
    const ids3 = ids.reshape([3, 6, 1]);
    const twice = new nn.Linear(4, 4, { seed: 1 });
    const shared = (t: eg.Tensor) => twice.forward(twice.forward(t));
    const unused = new nn.Linear(4, 4, { seed: 2 });
    const before = eg.memory().numTensors;
    const cases: [() => unknown, new (msg: string) => Error, RegExp][] = [
      [() => new explain.LayerGradCam(m, 'conv3'), eg.ArgumentError, /no module 'conv3'/],
      [() => new explain.LayerGradCam(m, '33'), eg.ArgumentError, /did you mean '3'/],
      [() => new explain.LayerGradCam((t: eg.Tensor) => t, '0'), eg.ArgumentError, /a layer name needs a Module/],
      [() => new explain.LayerActivation(m, 3 as never), eg.ArgumentError, /module path or a Module/],
      [() => new explain.LayerGradCam(m, '3').attribute(x), eg.ArgumentError, /pass target/],
      [() => new explain.LayerGradCam(m, '3').attribute(x, { target: 5 }), eg.ArgumentError, /target 5 is out of range/],
      [() => new explain.LayerGradCam(m, '3').attribute(x, { target: 0, upsample: 'linear' }), eg.ShapeError, /'linear' interpolates 1 spatial/],
      [() => new explain.LayerGradCam(m, '3').attribute(x, { target: 0, upsample: 'cubic' as never }), eg.ArgumentError, /unknown interpolation mode/],
      [() => new explain.LayerGradCam(m, '3').attribute(x, { target: 0, relu: true } as never), eg.ArgumentError, /unknown option 'relu'/],
      [() => new explain.LayerGradCam(m, '6').attribute(x, { target: 0, upsample: 'nearest' }), eg.ShapeError, /same number of spatial dims/],
      [() => new explain.LayerGradCam(shared, twice).attribute(flat, { target: 0 }), eg.ArgumentError, /ran more than once/],
      [() => new explain.LayerActivation(shared, unused).attribute(flat), eg.ArgumentError, /did not run during the forward/],
      [() => eg.noGrad(() => new explain.LayerGradCam(m, '3').attribute(x, { target: 0 })), eg.ArgumentError, /inside noGrad/],
      [() => new explain.GuidedGradCam(tm, '0').attribute(ids, { target: 0 }), eg.DTypeError, /int32/],
      [() => new explain.LayerIntegratedGradients(tm, '0').attribute(ids, { target: 0, baselines: 0, layerBaselines: 0 }), eg.ArgumentError, /not both/],
      [() => new explain.LayerIntegratedGradients(tm, '0').attribute(ids, { target: 0, baselines: 0.5 }), eg.ArgumentError, /baseline 0/],
      [() => new explain.LayerIntegratedGradients(tm, '0').attribute(ids, { target: 0, baselines: x }), eg.DTypeError, /baseline 0 is float32, the input int32/],
      [() => new explain.LayerIntegratedGradients(tm, '0').attribute(ids, { target: 0, layerBaselines: z5 }), eg.ShapeError, /layerBaselines/],
      [() => new explain.LayerIntegratedGradients(tm, '0').attribute(ids, { target: 0, nSteps: 0 }), eg.ArgumentError, /nSteps/],
      [() => new explain.LayerIntegratedGradients(tm, '0').attribute(ids, { target: 7 }), eg.ArgumentError, /LayerIntegratedGradients: target 7 is out of range/],
      [() => explain.interpolate(x, [4], 'nearest'), eg.ArgumentError, /size must list 2/],
      [() => explain.interpolate(x, [4, 0]), eg.ArgumentError, /size\[1\]/],
      [() => explain.interpolate(flat, [4]), eg.ShapeError, /\[batch, \.\.\.spatial, channels\]/],
      [() => explain.interpolate(ids3, [4]), eg.DTypeError, /int32/],
    ];
    for (const [f, cls, re] of cases) {
      expect(f, String(re)).toThrow(cls);
      expect(f, String(re)).toThrow(re);
    }
    const probeCases: [() => Promise<unknown>, new (msg: string) => Error, RegExp][] = [
      [() => explain.linearProbe(m, ['conv1'], x, yF), eg.ArgumentError, /no module 'conv1'/],
      [() => explain.linearProbe(m, ['3'], x, yF), eg.DTypeError, /int32 class labels/],
      [() => explain.linearProbe(m, ['3'], x, y2, { testSplit: 0.1 }), eg.ArgumentError, /leaves no training or no test rows/],
      [() => explain.linearProbe(m, ['3'], x, y2, { epoch: 3 } as never), eg.ArgumentError, /unknown option 'epoch'/],
      [() => explain.linearProbe(m, ['3'], x, y3), eg.ShapeError, /must be \[n, \.\.\.\] and \[n\]/],
    ];
    for (const [f, cls, re] of probeCases) {
      await expect(f(), String(re)).rejects.toThrow(cls);
      await expect(f(), String(re)).rejects.toThrow(re);
    }
    for (const [, mod] of [...m.namedModules(), ...tm.namedModules()]) expect(mod.numForwardHooks).toBe(0);
    expect(twice.numForwardHooks).toBe(0);
    expect(eg.memory().numTensors).toBe(before);
    const ok = new explain.LayerGradCam(m, '3').attribute(x, { target: 0 });
    expect(ok.shape).toEqual([2, 4, 4, 1]);
    eg.dispose([x, ids, flat, yF, y2, y3, z5, ids3, ok]);
    m.dispose();
    tm.dispose();
    twice.dispose();
    unused.dispose();
  });
});
