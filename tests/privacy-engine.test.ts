/**
 * DP-SGD through fit (eg.privacy.PrivacyEngine): the noise has std σC, Poisson batch sizes have
 * mean qN and variance q(1−q)N, empty batches are noise-only steps, virtual steps equal one big
 * step, ε grows each epoch and a budget stops training before the step that would cross it, seeded
 * runs are bitwise reproducible (one stored digest for Node and Chromium) while secureMode's differ,
 * SGD and Adam train, BatchNorm is refused, memory stays flat, bad arguments are typed errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { poissonIndices } from '../sdk/privacy/sampling.js';
import { secureGaussian } from '../sdk/privacy/noise.js';
import { BAD_ARGUMENTS, isBrowser, setup, expectEachTestFreesItsTensors } from './helpers.js';
import { bits, expectFlatOver100Calls, fnv1a } from './explain-fixtures.js';

const { nn, optim, privacy } = eg;

/** The seeded DP run's final weights (fnv1a of their float32 bits); Node and Chromium must both give it. */
const SEEDED_RUN_DIGEST = '86040938';

const N = 200;
const F = 4;
let X: eg.Tensor;
let Y: eg.Tensor;

beforeAll(async () => {
  await setup();
  // Linearly separable toy data: y = [x·w > 0].
  X = eg.keep(eg.randn([N, F], 0, 1, { seed: 21 }));
  Y = eg.keep(eg.tidy(() => X.matmul(eg.tensor([[1], [-2], [0.5], [1.5]])).reshape([N]).greater(0).cast('int32')));
});

expectEachTestFreesItsTensors();

const lossFn: eg.losses.LossFn = (p, t) => eg.losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true });
const linear = (seed = 1) => new nn.Sequential(new nn.Linear(F, 2, { seed }));

/** Runs one DP step on (x, y) directly, as fit would. */
function step(pt: eg.privacy.PrivateTraining, x: eg.Tensor, y: eg.Tensor): void {
  eg.tidy(() => {
    pt.trainStep({ model: pt.model, optimizer: pt.optimizer, loss: lossFn, x, y, params: pt.model.trainableParameters(), epoch: 0, step: 0, epochs: 1, batchesPerEpoch: null });
  });
}

function stats(v: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  const mean = s / v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / (v.length - 1)) };
}

const weights = (m: eg.nn.Module): Float32Array[] => m.parameters().map((p) => (p.dataSync() as Float32Array).slice());

describe('noise', () => {
  for (const secureMode of [false, true]) {
    it(`has std σC on a noise-only (empty-batch) step (${secureMode ? 'secureMode' : 'seeded'})`, () => {
      eg.manualSeed(3);
      // 100 x 100 + 100 parameters: 10,100 noise draws; SGD with lr 1 and 'sum' reduction moves each by -noise.
      const model = new nn.Sequential(new nn.Linear(100, 100, { seed: 2 }));
      const engine = new privacy.PrivacyEngine({ accountant: 'rdp', secureMode });
      const x = eg.randn([50, 100], 0, 1, { seed: 4 });
      const y = eg.zeros([50], 'int32');
      const pt = engine.makePrivate({ model, optimizer: new optim.SGD(model.parameters(), { lr: 1 }), data: [x, y], batchSize: 5, noiseMultiplier: 2, maxGradNorm: 0.5, lossReduction: 'sum' });
      const before = weights(model);
      const ex = eg.zeros([0, 100]);
      const ey = eg.zeros([0], 'int32');
      expect(engine.getEpsilon(1e-5)).toBe(0);
      step(pt, ex, ey);
      const after = weights(model);
      const delta = before.flatMap((b, k) => Array.from(b, (v, i) => v - after[k][i]));
      const { mean, std } = stats(delta);
      expect(delta.length).toBe(10_100);
      // Relative error of a sample std over 10,100 draws ≈ 0.7%: 3% is > 4 standard errors.
      expect(Math.abs(std - 1) / 1).toBeLessThan(0.03);
      expect(Math.abs(mean)).toBeLessThan(4 / Math.sqrt(10_100));
      // A noise-only step is still a step of the mechanism: the accountant counts it.
      expect(engine.getEpsilon(1e-5)).toBeGreaterThan(0);
      eg.dispose([x, y, ex, ey]);
      model.dispose();
    });
  }

  it('divides the noisy sum by the expected batch size with loss reduction mean', () => {
    eg.manualSeed(5);
    const model = new nn.Sequential(new nn.Linear(100, 100, { seed: 2 }));
    const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
    const x = eg.randn([50, 100], 0, 1, { seed: 4 });
    const y = eg.zeros([50], 'int32');
    const pt = engine.makePrivate({ model, optimizer: new optim.SGD(model.parameters(), { lr: 1 }), data: [x, y], batchSize: 10, noiseMultiplier: 1.5, maxGradNorm: 2 });
    const before = weights(model);
    const ex = eg.zeros([0, 100]);
    const ey = eg.zeros([0], 'int32');
    step(pt, ex, ey);
    const after = weights(model);
    const { std } = stats(before.flatMap((b, k) => Array.from(b, (v, i) => v - after[k][i])));
    expect(Math.abs(std - (1.5 * 2) / 10) / 0.3).toBeLessThan(0.03);
    eg.dispose([x, y, ex, ey]);
    model.dispose();
  });

  it('secure Gaussians (CSPRNG, 4-sample sum) are standard normal and differ between calls', () => {
    const a = secureGaussian(40_000, 1);
    const b = secureGaussian(40_000, 1);
    const s = stats(a);
    expect(Math.abs(s.std - 1)).toBeLessThan(0.025);
    expect(Math.abs(s.mean)).toBeLessThan(0.025);
    // Tails: P(|z| > 2) = 4.55%.
    const tail = Array.from(a).filter((v) => Math.abs(v) > 2).length / a.length;
    expect(Math.abs(tail - 0.0455)).toBeLessThan(0.006);
    expect(Array.from(a.subarray(0, 16))).not.toEqual(Array.from(b.subarray(0, 16)));
  });
});

describe('Poisson sampling', () => {
  it('batch sizes have mean qN and variance q(1-q)N', () => {
    const n = 2000;
    const q = 0.02;
    const sizes: number[] = [];
    for (let k = 0; k < 1000; k++) {
      const idx = poissonIndices(n, q, { seed: 3, step: k, secure: false });
      for (let i = 1; i < idx.length; i++) expect(idx[i]).toBeGreaterThan(idx[i - 1]);
      if (idx.length) expect(idx[idx.length - 1]).toBeLessThan(n);
      sizes.push(idx.length);
    }
    const { mean, std } = stats(sizes);
    // Standard errors: mean sqrt(39.2 / 1000) = 0.2; variance ≈ 4.5% relative.
    expect(Math.abs(mean - q * n)).toBeLessThan(0.8);
    expect(Math.abs(std ** 2 / (q * (1 - q) * n) - 1)).toBeLessThan(0.2);
    const secure: number[] = [];
    for (let k = 0; k < 300; k++) secure.push(poissonIndices(n, q, { seed: 0, step: k, secure: true }).length);
    const s = stats(secure);
    expect(Math.abs(s.mean - q * n)).toBeLessThan(1.5);
    expect(Math.abs(s.std ** 2 / (q * (1 - q) * n) - 1)).toBeLessThan(0.35);
  });

  it('the data set repeats its batches for a seed and an epoch, and yields empty batches', async () => {
    const ds = privacy.poissonDataset(X, Y, { sampleRate: 0.01, seed: 9 });
    expect(ds.size).toBe(100);
    const sizes = async (epoch: number) => {
      const out: number[] = [];
      for await (const b of ds.batches(epoch)) {
        out.push(b.x.shape[0]);
        expect(b.y!.shape).toEqual([b.x.shape[0]]);
        eg.dispose([b.x, b.y!]);
      }
      return out;
    };
    const e0 = await sizes(0);
    expect(e0.length).toBe(100);
    expect(await sizes(0)).toEqual(e0);
    expect(await sizes(1)).not.toEqual(e0);
    // q·N = 2: P(empty) = 0.99^200 = 13%.
    expect(e0.filter((s) => s === 0).length).toBeGreaterThan(0);
  });
});

describe('DP-SGD with fit', () => {
  it('trains through empty batches (noise-only steps) and logs ε growing each epoch', async () => {
    eg.manualSeed(1);
    const model = linear();
    const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
    const pt = engine.makePrivate({ model, optimizer: new optim.SGD(model.parameters(), { lr: 0.5 }), data: [X, Y], batchSize: 2, noiseMultiplier: 1, maxGradNorm: 1, seed: 2 });
    let empties = 0;
    for await (const b of pt.data.batches(0)) {
      if (b.x.shape[0] === 0) empties++;
      eg.dispose([b.x, b.y!]);
    }
    expect(empties).toBeGreaterThan(0);
    model.compile({ optimizer: pt.optimizer, loss: lossFn, metrics: ['accuracy'] });
    const h = await model.fit(pt.data, { epochs: 3, trainStep: pt.trainStep, callbacks: [pt.callback], verbose: 0 });
    const eps = h.history.epsilon;
    expect(eps.length).toBe(3);
    expect(eps[0]).toBeGreaterThan(0);
    expect(eps[1]).toBeGreaterThan(eps[0]);
    expect(eps[2]).toBeGreaterThan(eps[1]);
    expect(eps[2]).toBeCloseTo(engine.getEpsilon(1e-5), 12);
    for (const k of ['loss', 'accuracy']) expect(h.history[k].every(Number.isFinite)).toBe(true);
    model.dispose();
  });

  it('stops before the step that would take ε past the budget', async () => {
    const sigma = 1;
    const q = 20 / N;
    // A budget between ε after 25 and after 26 steps of (σ, q): 25 steps fit (of the 10 epochs x 10 asked).
    const epsAfter = (k: number) => {
      const ref = new privacy.RDPAccountant();
      ref.step({ noiseMultiplier: sigma, sampleRate: q }, k);
      return ref.getEpsilon(1e-5);
    };
    const budget = (epsAfter(25) + epsAfter(26)) / 2;
    eg.manualSeed(1);
    const model = linear();
    const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
    const pt = engine.makePrivate({ model, optimizer: new optim.SGD(model.parameters(), { lr: 0.5 }), data: [X, Y], batchSize: 20, noiseMultiplier: sigma, maxGradNorm: 1, epsilonBudget: budget });
    model.compile({ optimizer: pt.optimizer, loss: lossFn });
    let steps = 0;
    const count = new eg.train.LambdaCallback({ onBatchEnd: () => { steps++; } });
    const h = await model.fit(pt.data, { epochs: 10, trainStep: pt.trainStep, callbacks: [pt.callback, count], verbose: 0 });
    expect(steps).toBe(25);
    expect(h.epoch).toEqual([0, 1, 2]);
    expect(engine.budgetExhausted).toBe(true);
    const spent = engine.getEpsilon(1e-5);
    expect(spent).toBeLessThanOrEqual(budget);
    expect(epsAfter(26)).toBeGreaterThan(budget);
    model.dispose();
  });

  it('makePrivateWithEpsilon solves σ so that the planned epochs spend the target ε', async () => {
    eg.manualSeed(1);
    const model = linear();
    const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
    const pt = engine.makePrivateWithEpsilon({ model, optimizer: new optim.SGD(model.parameters(), { lr: 0.5 }), data: [X, Y], batchSize: 20, maxGradNorm: 1, targetEpsilon: 2, targetDelta: 1e-5, epochs: 3 });
    expect(pt.noiseMultiplier).toBeGreaterThan(0.3);
    model.compile({ optimizer: pt.optimizer, loss: lossFn });
    const h = await model.fit(pt.data, { epochs: 3, trainStep: pt.trainStep, callbacks: [pt.callback], verbose: 0 });
    expect(h.epoch).toEqual([0, 1, 2]);
    const eps = engine.getEpsilon(1e-5);
    expect(eps).toBeLessThanOrEqual(2 * 1.01);
    expect(eps).toBeGreaterThan(2 * 0.95);
    model.dispose();
  });

  for (const [name, make] of [
    ['SGD', (m: eg.nn.Module) => new optim.SGD(m.parameters(), { lr: 0.5, momentum: 0.5 })],
    ['Adam', (m: eg.nn.Module) => new optim.Adam(m.parameters(), { lr: 0.05 })],
  ] as const) {
    for (const clipping of ['flat', 'perLayer', 'ghost'] as const) {
      it(`trains with ${name} and ${clipping} clipping`, async () => {
        eg.manualSeed(2);
        const model = new nn.Sequential(new nn.Linear(F, 8, { seed: 3 }), new nn.Tanh(), new nn.Linear(8, 2, { seed: 4 }));
        // The PRV accountant (the default) once; RDP elsewhere (its ε is cheaper to compute).
        const engine = new privacy.PrivacyEngine({ accountant: name === 'SGD' && clipping === 'flat' ? 'prv' : 'rdp' });
        const pt = engine.makePrivate({
          model, optimizer: make(model), data: [X, Y], batchSize: 20, noiseMultiplier: 0.5,
          maxGradNorm: clipping === 'perLayer' ? [0.5, 0.5, 0.5, 0.5] : 1, clipping,
        });
        model.compile({ optimizer: pt.optimizer, loss: lossFn, metrics: ['accuracy'] });
        await model.fit(pt.data, { epochs: 8, trainStep: pt.trainStep, verbose: 0 });
        const acc = (await model.evaluate(X, Y, { batchSize: 200 })).accuracy;
        expect(acc).toBeGreaterThan(0.9);
        expect(engine.getEpsilon(1e-5)).toBeGreaterThan(0);
        model.dispose();
        pt.optimizer.dispose();
      });
    }
  }

  it('virtual steps (maxPhysicalBatchSize) equal one big step', () => {
    const run = (physical?: number) => {
      eg.manualSeed(11);
      const model = new nn.Sequential(new nn.Linear(F, 8, { seed: 3 }), new nn.Tanh(), new nn.Linear(8, 2, { seed: 4 }));
      const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
      const pt = engine.makePrivate({ model, optimizer: new optim.SGD(model.parameters(), { lr: 1 }), data: [X, Y], batchSize: 32, noiseMultiplier: 0.7, maxGradNorm: 0.3, maxPhysicalBatchSize: physical });
      const x = X.slice([0, 0], [37, F]);
      const y = Y.slice([0], [37]);
      step(pt, x, y);
      const w = weights(model);
      eg.dispose([x, y]);
      model.dispose();
      return w;
    };
    const one = run();
    const chunked = run(5);
    one.forEach((w, k) => {
      const scale = Math.max(...Array.from(w, Math.abs));
      w.forEach((v, i) => expect(Math.abs(v - chunked[k][i])).toBeLessThanOrEqual(1e-5 * scale));
    });
  });

  it('seeded runs give the stored bits in every runtime; secureMode runs differ', async () => {
    const run = async (secureMode: boolean) => {
      eg.manualSeed(7);
      const model = new nn.Sequential(new nn.Linear(F, 8, { seed: 3 }), new nn.Tanh(), new nn.Linear(8, 2, { seed: 4 }));
      const engine = new privacy.PrivacyEngine({ accountant: 'rdp', secureMode });
      const pt = engine.makePrivate({ model, optimizer: new optim.Adam(model.parameters(), { lr: 0.01 }), data: [X, Y], batchSize: 25, noiseMultiplier: 1.1, maxGradNorm: 0.8, seed: 5, clipping: 'ghost' });
      model.compile({ optimizer: pt.optimizer, loss: lossFn });
      await model.fit(pt.data, { epochs: 2, trainStep: pt.trainStep, verbose: 0 });
      const w = model.parameters().flatMap((p) => bits(p));
      model.dispose();
      pt.optimizer.dispose();
      return w;
    };
    const a = await run(false);
    expect(await run(false)).toEqual(a);
    const digest = fnv1a(a);
    if (!isBrowser && (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.UPDATE_FIXTURES) console.log(`privacy-engine digest: ${digest}`);
    expect(digest).toBe(SEEDED_RUN_DIGEST);
    const s1 = await run(true);
    const s2 = await run(true);
    expect(s1).not.toEqual(s2);
    expect(s1).not.toEqual(a);
  });

  it('composes with adversarial training (eg.robust.adversarialStep with the DP step inside)', async () => {
    eg.manualSeed(4);
    const model = new nn.Sequential(new nn.Linear(F, 8, { seed: 3 }), new nn.Tanh(), new nn.Linear(8, 2, { seed: 4 }));
    const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
    const dp = engine.makePrivate({ model, optimizer: new optim.SGD(model.parameters(), { lr: 0.5 }), data: [X, Y], batchSize: 20, noiseMultiplier: 0.5, maxGradNorm: 1 });
    model.compile({ optimizer: dp.optimizer, loss: lossFn, metrics: ['accuracy'] });
    const trainStep = eg.robust.adversarialStep({ method: 'fgsm', eps: 0.05, clipValues: null, inner: dp.trainStep });
    const h = await model.fit(dp.data, { epochs: 4, trainStep, callbacks: [dp.callback], verbose: 0 });
    expect(engine.accountant.totalSteps).toBe(4 * dp.batchesPerEpoch);
    expect(h.history.epsilon[3]).toBeGreaterThan(h.history.epsilon[0]);
    expect((await model.evaluate(X, Y, { batchSize: 200 })).accuracy).toBeGreaterThan(0.85);
    model.dispose();
  });

  it('resumes from a mid-epoch fit checkpoint bitwise: weights, optimizer, noise, Poisson batches and ε', async () => {
    type Artifacts = eg.ModelArtifacts;
    const build = (model: eg.nn.Module, onSave: (a: Artifacts) => void) => {
      const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
      const optimizer = new optim.SGD(model.parameters(), { lr: 0.3, momentum: 0.5 });
      const dp = engine.makePrivate({ model, optimizer, data: [X, Y], batchSize: 25, noiseMultiplier: 1, maxGradNorm: 1, seed: 3 });
      model.compile({ optimizer, loss: lossFn });
      return { engine, dp, optimizer, callbacks: [dp.callback, new eg.train.ModelCheckpoint({ onSave, saveTrainingState: true, saveFreq: 5 })] };
    };
    const saved: Artifacts[] = [];
    eg.manualSeed(9);
    const m = new nn.Sequential(new nn.Linear(F, 8, { seed: 3 }), new nn.Tanh(), new nn.Linear(8, 2, { seed: 4 }));
    const a = build(m, (art) => { saved.push(art); });
    const hA = await m.fit(a.dp.data, { epochs: 2, verbose: 0, trainStep: a.dp.trainStep, callbacks: a.callbacks });
    // 8 batches per epoch: the save after step 10 is epoch 1, batch 2.
    const pick = saved.find((s) => (s.json.training as { epoch: number; batch: number }).batch === 2)!;
    expect(pick).toBeDefined();
    const { model } = await eg.loadModel(pick);
    const b = build(model, () => {});
    const hB = await model.fit(b.dp.data, { epochs: 2, verbose: 0, trainStep: b.dp.trainStep, callbacks: b.callbacks, resumeFrom: pick });
    expect(hB).toEqual(hA);
    expect(model.parameters().flatMap((p) => bits(p))).toEqual(m.parameters().flatMap((p) => bits(p)));
    expect(b.engine.accountant.totalSteps).toBe(16);
    expect(b.engine.getEpsilon(1e-5)).toBe(a.engine.getEpsilon(1e-5));
    model.dispose();
    m.dispose();
    a.optimizer.dispose();
    b.optimizer.dispose();
  });

  it('keeps the accountant in fit checkpoints (PrivacyCallback state)', async () => {
    const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
    engine.accountant.step({ noiseMultiplier: 1.2, sampleRate: 0.01 }, 300);
    const cb = new privacy.PrivacyCallback(engine, { delta: 1e-5 });
    const state = JSON.parse(JSON.stringify(cb.stateDict()));
    const other = new privacy.PrivacyEngine({ accountant: 'rdp' });
    new privacy.PrivacyCallback(other, { delta: 1e-5 }).loadStateDict(state);
    expect(other.getEpsilon(1e-5)).toBe(engine.getEpsilon(1e-5));
  });

  it('refuses BatchNorm, naming the layer', () => {
    const model = new nn.Sequential(new nn.Linear(F, 8), new nn.BatchNorm1d(8), new nn.ReLU(), new nn.Linear(8, 2));
    const engine = new privacy.PrivacyEngine();
    const make = () => engine.makePrivate({ model, optimizer: new optim.SGD(model.parameters(), { lr: 0.1 }), data: [X, Y], batchSize: 20, noiseMultiplier: 1, maxGradNorm: 1 });
    expect(make).toThrow(eg.EdgegradError);
    expect(make).toThrow(/BatchNorm/);
    expect(make).toThrow(/\b1\b/);
    model.dispose();
  });

  it('leaves no tensor behind over 100 steps (data, noise-only and chunked)', () => {
    const model = new nn.Sequential(new nn.Linear(F, 8, { seed: 3 }), new nn.Tanh(), new nn.Linear(8, 2, { seed: 4 }));
    const mk = (o: Partial<eg.privacy.MakePrivateOptions>) => new privacy.PrivacyEngine({ accountant: 'rdp' }).makePrivate({
      model, optimizer: new optim.Adam(model.parameters(), { lr: 0.01 }), data: [X, Y], batchSize: 20, noiseMultiplier: 1, maxGradNorm: 1, ...o,
    });
    const flat = mk({ clipping: 'flat' });
    const chunked = mk({ maxPhysicalBatchSize: 7, clipping: 'ghost' });
    const secure = new privacy.PrivacyEngine({ accountant: 'rdp', secureMode: true }).makePrivate({ model, optimizer: new optim.SGD(model.parameters(), { lr: 0.01 }), data: [X, Y], batchSize: 20, noiseMultiplier: 1, maxGradNorm: 1 });
    const x = X.slice([0, 0], [20, F]);
    const y = Y.slice([0], [20]);
    const ex = eg.zeros([0, F]);
    const ey = eg.zeros([0], 'int32');
    const calls: [string, () => unknown][] = [
      ['flat step', () => step(flat, x, y)],
      ['chunked ghost step', () => step(chunked, x, y)],
      ['noise-only step', () => step(flat, ex, ey)],
      ['secure step', () => step(secure, x, y)],
      ['Poisson batch', () => eg.tidy(() => poissonIndices(N, 0.1, { seed: 1, step: 3, secure: false }).length)],
    ];
    // A few rounds of every call first: the engine's buffer pool settles on the steps' mix of sizes.
    for (let i = 0; i < 5; i++) for (const [, call] of calls) call();
    expectFlatOver100Calls(calls);
    eg.dispose([x, y, ex, ey]);
    model.dispose();
    for (const pt of [flat, chunked, secure]) pt.optimizer.dispose();
  });
});

describe('arguments', () => {
  it('every bad makePrivate option is a typed error', () => {
    const model = linear();
    const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
    const good: eg.privacy.MakePrivateOptions = { model, optimizer: new optim.SGD(model.parameters(), { lr: 0.1 }), data: [X, Y], batchSize: 20, noiseMultiplier: 1, maxGradNorm: 1 };
    const fields = ['model', 'optimizer', 'data', 'batchSize', 'noiseMultiplier', 'maxGradNorm', 'poissonSampling', 'clipping', 'maxPhysicalBatchSize', 'lossReduction', 'seed', 'delta', 'epsilonBudget'] as const;
    const y10 = Y.slice([0], [10]);
    const extra: Record<string, unknown[]> = {
      batchSize: [0, 1.5, N + 1, -3], noiseMultiplier: [-1, NaN, Infinity], maxGradNorm: [0, -1, [1, 2], Infinity],
      clipping: ['auto'], maxPhysicalBatchSize: [0], lossReduction: ['none'], seed: [-1, 2 ** 21], delta: [0, 1], epsilonBudget: [0, -2],
      data: [[X], [X, y10], [X, 'y']],
    };
    const optional = new Set(['poissonSampling', 'clipping', 'maxPhysicalBatchSize', 'lossReduction', 'seed', 'delta', 'epsilonBudget']);
    const numeric = new Set(['batchSize', 'noiseMultiplier', 'maxGradNorm', 'maxPhysicalBatchSize', 'seed', 'epsilonBudget']);
    // The walk's values that happen to be valid for a field: undefined for an optional one, 5 for a count or a norm.
    const valid = (f: string, v: unknown) => (v === undefined && optional.has(f)) || (v === 5 && numeric.has(f));
    for (const f of fields) {
      for (const bad of [...BAD_ARGUMENTS.map(([, v]) => v()), ...(extra[f] ?? [])].filter((v) => !valid(f, v))) {
        expect(() => engine.makePrivate({ ...good, [f]: bad } as eg.privacy.MakePrivateOptions), `${f} = ${String(bad)}`).toThrow(eg.EdgegradError);
      }
    }
    for (const [, v] of BAD_ARGUMENTS) {
      const bad = v();
      expect(() => engine.getEpsilon(bad as number)).toThrow(eg.EdgegradError);
      expect(() => engine.makePrivate(bad as eg.privacy.MakePrivateOptions)).toThrow(eg.EdgegradError);
      expect(() => engine.makePrivateWithEpsilon(bad as eg.privacy.MakePrivateWithEpsilonOptions)).toThrow(eg.EdgegradError);
    }
    for (const bad of [null, 5, '2', [], { accountant: 'moments' }, { secureMode: 'yes' }]) {
      expect(() => new privacy.PrivacyEngine(bad as eg.privacy.PrivacyEngineOptions)).toThrow(eg.EdgegradError);
    }
    expect(() => engine.makePrivateWithEpsilon({ ...good, targetEpsilon: -1, targetDelta: 1e-5, epochs: 1 })).toThrow(eg.ArgumentError);
    expect(() => engine.makePrivateWithEpsilon({ ...good, targetEpsilon: 1, targetDelta: 1e-5, epochs: 0 })).toThrow(eg.ArgumentError);
    expect(() => privacy.poissonDataset(X, Y, { sampleRate: 0 })).toThrow(eg.ArgumentError);
    for (const [, v] of BAD_ARGUMENTS) {
      const bad = v();
      expect(() => privacy.poissonDataset(bad as eg.Tensor, Y, { sampleRate: 0.1 })).toThrow(eg.EdgegradError);
      expect(() => privacy.poissonDataset(X, bad as eg.Tensor, { sampleRate: 0.1 })).toThrow(eg.EdgegradError);
      expect(() => privacy.poissonDataset(X, Y, bad as eg.privacy.PoissonOptions)).toThrow(eg.EdgegradError);
      expect(() => engine.loadStateDict(bad as eg.privacy.AccountantState)).toThrow(eg.EdgegradError);
      expect(() => new privacy.PrivacyCallback(engine, bad as { delta: number })).toThrow(eg.EdgegradError);
    }
    expect(() => new privacy.PrivacyCallback({} as eg.privacy.PrivacyEngine, { delta: 1e-5 })).toThrow(eg.ArgumentError);
    model.dispose();
    y10.dispose();
  });
});
