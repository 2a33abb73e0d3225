/**
 * Adversarial training through fit (issue 15 §1, §4): PGD-AT, fast FGSM-AT and TRADES raise PGD
 * robust accuracy far above a standard model's; ε warm-up; mixRatio; eval-mode attacks that leave
 * the parameters' gradients alone; `inner` gets the adversarial batch; seeded runs bitwise
 * identical (stored digest, Node and Chromium); memory flat; typed errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, expectEachTestFreesItsTensors } from './helpers.js';
import { bits, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';

const { nn, robust } = eg;

const N_TRAIN = 1200;
const N_TEST = 300;
const EPS = 0.15;
let xTrain: eg.Tensor;
let yTrain: eg.Tensor;
let xTest: eg.Tensor;
let yTest: Int32Array;

/** The bundled 8x8 digits scaled to [0, 1], NHWC. */
beforeAll(async () => {
  await setup();
  const d = await eg.loadDigits();
  const scaled = d.images.map((v) => v / 16);
  xTrain = eg.tensor(scaled.slice(0, N_TRAIN * 64), [N_TRAIN, 8, 8, 1]);
  yTrain = eg.tensor(d.labels.slice(0, N_TRAIN), [N_TRAIN], 'int32');
  xTest = eg.tensor(scaled.slice((d.n - N_TEST) * 64), [N_TEST, 8, 8, 1]);
  yTest = d.labels.slice(d.n - N_TEST);
});

expectEachTestFreesItsTensors();

/** A tiny CNN: conv 3x3·8 stride 2 → dense 32 → dense 10 (logits). */
const cnn = () => new nn.Sequential(
  new nn.Conv2d(1, 8, 3, { stride: 2, padding: 'same', seed: 1 }), new nn.ReLU(), new nn.Flatten(),
  new nn.Linear(128, 32, { seed: 2 }), new nn.ReLU(), new nn.Linear(32, 10, { seed: 3 }),
);
const ce = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });

function accuracy(m: eg.nn.Module, x: eg.Tensor): number {
  const pred = eg.noGrad(() => eg.tidy(() => m.forward(x).argMax(-1).dataSync()));
  return Array.from(pred).filter((p, i) => p === yTest[i]).length / N_TEST;
}

/** Trains a fresh CNN with Adam (10 epochs, batch 64, seeded) and returns it in eval mode. */
async function train(trainStep?: eg.train.TrainStep, epochs = 10): Promise<eg.nn.Sequential> {
  const m = cnn();
  const optimizer = new eg.optim.Adam(m.parameters(), { lr: 0.01 });
  m.compile({ optimizer, loss: ce });
  await m.fit(xTrain, yTrain, { epochs, batchSize: 64, seed: 1, verbose: 0, trainStep });
  optimizer.dispose();
  return m.eval();
}

/** Accuracy under PGD-20 (L∞ EPS, step EPS/4, random start). */
function robustAccuracy(m: eg.nn.Module): number {
  const adv = new eg.attacks.PGD(m, { eps: EPS, stepSize: EPS / 4, steps: 20, seed: 3 }).perturb(xTest, yTest).adversarial;
  const a = accuracy(m, adv);
  adv.dispose();
  return a;
}

/** What `fit` hands a step, for calling a step directly. */
function stepInput(model: eg.nn.Module, optimizer: eg.optim.Optimizer<{ lr: number }>, x: eg.Tensor, y: eg.Tensor, at: { epoch?: number; step?: number } = {}): eg.train.StepInput {
  return {
    model, optimizer, loss: ce, x, y, params: model.trainableParameters(), epoch: at.epoch ?? 0, step: at.step ?? 0, epochs: 1, batchesPerEpoch: 1,
  };
}

const batch = (n: number, from = 0) => eg.tidy(() => [xTrain.slice([from, 0, 0, 0], [from + n, 8, 8, 1]), yTrain.slice([from], [from + n])]);

describe('adversarial training raises robust accuracy', () => {
  it('PGD-AT, fast FGSM-AT and TRADES at L∞ ε = 0.15: PGD-20 robust accuracy far above the standard model\'s, clean accuracy kept', async () => {
    const standard = await train();
    const base = { clean: accuracy(standard, xTest), robust: robustAccuracy(standard) };
    standard.dispose();
    expect(base.clean).toBeGreaterThan(0.85);
    expect(base.robust).toBeLessThan(0.2);
    const steps: [string, eg.train.TrainStep][] = [
      ['pgd', robust.adversarialStep({ method: 'pgd', eps: EPS, steps: 5, seed: 1 })],
      ['fgsm', robust.adversarialStep({ method: 'fgsm', eps: EPS, seed: 1 })],
      ['trades', robust.adversarialStep({ method: 'trades', eps: EPS, steps: 5, beta: 6, seed: 1 })],
    ];
    for (const [name, step] of steps) {
      const m = await train(step);
      const clean = accuracy(m, xTest);
      const rob = robustAccuracy(m);
      m.dispose();
      expect(clean, name).toBeGreaterThan(0.75);
      expect(rob, name).toBeGreaterThan(base.robust + 0.25);
    }
  });
});

describe('adversarialStep', () => {
  it('ε schedules: linear warm-up per batch over warmupEpochs, constant, a function; fit uses them (FGSM moves pixels by exactly the scheduled ε)', async () => {
    const lin = robust.adversarialStep({ eps: 0.3, warmupEpochs: 2 });
    expect(lin.epsAt(0, 0, 10)).toBeCloseTo(0.015, 12);
    expect(lin.epsAt(0, 9, 10)).toBeCloseTo(0.15, 12);
    expect(lin.epsAt(1, 14, 10)).toBeCloseTo(0.225, 12);
    expect(lin.epsAt(1, 19, 10)).toBeCloseTo(0.3, 12);
    expect(lin.epsAt(5, 57, 10)).toBe(0.3);
    expect(lin.epsAt(0, 0, null)).toBeCloseTo(0.15, 12); // a stream: per epoch
    expect(robust.adversarialStep({ eps: 0.3 }).epsAt(0, 0, 10)).toBe(0.3);
    expect(robust.adversarialStep({ eps: 0.3, epsSchedule: (e, s) => 0.01 * (e + s) }).epsAt(2, 3, 10)).toBeCloseTo(0.05, 12);

    // One epoch of 4 batches of 8, ε ramped over that epoch: FGSM with random start, projected,
    // moves most pixels by ±ε_t exactly, so max |x' − x| per batch is the scheduled ε.
    const seen: number[] = [];
    const adv = robust.adversarialStep({
      method: 'fgsm', eps: 0.2, warmupEpochs: 1, seed: 3, clipValues: null,
      inner: (s) => {
        seen.push(eg.tidy(() => s.x.sub(original!).abs().max().item()));
        return eg.train.standardStep(s);
      },
    });
    let original: eg.Tensor | null = null;
    const m = cnn();
    const optimizer = new eg.optim.SGD(m.parameters(), { lr: 0.01 });
    m.compile({ optimizer, loss: ce });
    const [x, y] = batch(32);
    await m.fit(x, y, { epochs: 1, batchSize: 8, seed: 2, verbose: 0, trainStep: (s) => { original = s.x; return adv(s); } });
    expect(seen.length).toBe(4);
    seen.forEach((v, i) => expect(v, `batch ${i}`).toBeCloseTo(Math.fround(0.2 * (i + 1) / 4), 6));
    eg.dispose([x, y]);
    m.dispose();
  });

  it('mixRatio replaces the first round(mixRatio·n) rows of the batch by adversarial ones; 0 trains on the clean batch; y is passed as is', () => {
    const m = cnn();
    const optimizer = new eg.optim.SGD(m.parameters(), { lr: 0.01 });
    const [x, y] = batch(8);
    const xBits = bits(x);
    for (const [ratio, changed] of [[0.25, 2], [0.5, 4], [0.6, 5], [1, 8], [0, 0]] as const) {
      let got: { x: number[]; sameY: boolean; sameX: boolean } | null = null;
      const step = robust.adversarialStep({
        eps: 0.1, steps: 2, mixRatio: ratio, seed: 1,
        inner: (s) => {
          got = { x: bits(s.x), sameY: s.y === y, sameX: s.x === x };
          return eg.train.standardStep(s);
        },
      });
      eg.tidy(() => { step(stepInput(m, optimizer, x, y)); });
      const g = got!;
      expect(g.sameY).toBe(true);
      expect(g.sameX).toBe(ratio === 0);
      const rowDiffers = Array.from({ length: 8 }, (_, r) => g.x.slice(r * 64, r * 64 + 64).some((b, j) => b !== xBits[r * 64 + j]));
      expect(rowDiffers, `mixRatio ${ratio}`).toEqual(Array.from({ length: 8 }, (_, r) => r < changed));
    }
    eg.dispose([x, y]);
    m.dispose();
  });

  it('the attack runs in eval mode and leaves the parameters\' .grad alone; inner gets the adversarial batch; every module\'s mode is restored', () => {
    const modes: boolean[] = [];
    /** Records its mode at each forward. */
    class Probe extends nn.Module {
      forward(x: eg.Tensor): eg.Tensor {
        modes.push(this.training);
        return x;
      }
    }
    const m = new nn.Sequential(new Probe(), new nn.Flatten(), new nn.Linear(64, 16, { seed: 4 }), new nn.BatchNorm1d(16), new nn.ReLU(), new nn.Dropout(0.2, 5), new nn.Linear(16, 10, { seed: 6 }));
    const bn = m.getModule('3');
    const dropout = m.getModule('5');
    dropout.eval(); // a module the user keeps in eval mode stays so
    const optimizer = new eg.optim.SGD(m.parameters(), { lr: 0.01 });
    const [x, y] = batch(16);
    for (const method of ['pgd', 'fgsm', 'trades'] as const) {
      modes.length = 0;
      const grads: (number[] | null)[][] = [];
      let innerX: eg.Tensor | null = null;
      const step = robust.adversarialStep({
        method, eps: 0.1, seed: 2, ...(method === 'fgsm' ? {} : { steps: 3 }),
        ...(method === 'trades' ? {} : {
          inner: (s: eg.train.StepInput) => {
            grads.push(m.parameters().map((p) => (p.grad === null ? null : bits(p.grad))));
            innerX = s.x;
            return eg.train.standardStep(s);
          },
        }),
      });
      for (const p of m.parameters()) p.grad = null;
      const out = eg.tidy(() => {
        const r = step(stepInput(m, optimizer, x, y));
        const linf = innerX ? innerX.sub(x).abs().max().item() : null;
        return { loss: r.loss.item(), pred: r.pred.shape, linf };
      });
      const attackForwards = method === 'fgsm' ? 1 : 3;
      // pgd/fgsm: the attack's forwards (eval), then the training forward; trades: f(x) and the
      // attack's forwards in eval, then f(x) and f(x') in training mode.
      const expected = method === 'trades'
        ? [...new Array(1 + attackForwards).fill(false), true, true]
        : [...new Array(attackForwards).fill(false), true];
      expect(modes, method).toEqual(expected);
      expect(m.training && m.getModule('2').training && bn.training).toBe(true);
      expect(dropout.training).toBe(false);
      expect(m.parameters().every((p) => p.requiresGrad)).toBe(true);
      expect(Number.isFinite(out.loss)).toBe(true);
      expect(out.pred).toEqual([16, 10]);
      if (method !== 'trades') {
        expect(grads[0].every((g) => g === null), method).toBe(true); // the attack's backward reached no parameter
        expect(out.linf!).toBeGreaterThan(0.05);
        expect(out.linf!).toBeLessThanOrEqual(Math.fround(0.1) + 1e-7);
      }
    }
    eg.dispose([x, y]);
    m.dispose();
  });

  it('composes with DP-SGD: the privacy engine\'s step is the inner step, optimising on the adversarial batch, and ε is accounted', async () => {
    const m = cnn();
    const [x, y] = batch(256);
    const engine = new eg.privacy.PrivacyEngine({ accountant: 'rdp' });
    const pt = engine.makePrivate({ model: m, optimizer: new eg.optim.SGD(m.parameters(), { lr: 0.5 }), data: [x, y], batchSize: 32, noiseMultiplier: 1, maxGradNorm: 1, seed: 3 });
    let original: eg.Tensor | null = null;
    const moved: number[] = [];
    const adv = robust.adversarialStep({
      method: 'fgsm', eps: 0.1, seed: 4,
      inner: (s) => {
        if (s.x.shape[0] > 0) moved.push(eg.tidy(() => s.x.sub(original!).abs().max().item()));
        return pt.trainStep(s);
      },
    });
    m.compile({ optimizer: pt.optimizer, loss: ce });
    const h = await m.fit(pt.data, { epochs: 2, trainStep: (s) => { original = s.x; return adv(s); }, callbacks: [pt.callback], verbose: 0 });
    expect(h.history.epsilon.length).toBe(2);
    expect(h.history.epsilon[1]).toBeGreaterThan(h.history.epsilon[0]);
    expect(moved.length).toBeGreaterThan(8);
    for (const v of moved) expect(v).toBeCloseTo(Math.fround(0.1), 6); // every non-empty Poisson batch was attacked
    expect(h.history.loss.every(Number.isFinite)).toBe(true);
    pt.optimizer.dispose();
    eg.dispose([x, y]);
    m.dispose();
  });

  it('the adversarial batch inner gets raises the loss: it is PGD\'s, made on the model in eval mode', () => {
    const m = cnn();
    const optimizer = new eg.optim.SGD(m.parameters(), { lr: 0 });
    const [x, y] = batch(32);
    let lossAdv = 0;
    const step = robust.adversarialStep({
      eps: 0.1, steps: 5, seed: 7,
      inner: (s) => {
        lossAdv = eg.noGrad(() => eg.tidy(() => ce(s.model.forward(s.x), s.y).item()));
        return eg.train.standardStep(s);
      },
    });
    eg.tidy(() => { step(stepInput(m, optimizer, x, y)); });
    const lossClean = eg.noGrad(() => eg.tidy(() => ce(m.forward(x), y).item()));
    expect(lossAdv).toBeGreaterThan(lossClean + 0.01);
    eg.dispose([x, y]);
    m.dispose();
  });
});

/** FNV-1a over the trained parameters' bits after seeded PGD-AT, FGSM-AT (with warm-up and mix) and TRADES runs (update only knowingly). */
const DIGEST = '6c3da5e8';

describe('determinism and memory', () => {
  it('seeded PGD-AT, FGSM-AT and TRADES runs through fit are bitwise repeatable on 1 and 2 threads and match the stored digest (Node and Chromium)', async () => {
    const [x, y] = batch(96);
    const run = async (step: eg.train.TrainStep) => {
      const m = cnn();
      const optimizer = new eg.optim.Adam(m.parameters(), { lr: 0.01 });
      m.compile({ optimizer, loss: ce });
      await m.fit(x, y, { epochs: 2, batchSize: 32, seed: 5, verbose: 0, trainStep: step });
      const out = m.parameters().flatMap((p) => bits(p));
      optimizer.dispose();
      m.dispose();
      return out;
    };
    const all: number[] = [];
    const opts: eg.robust.AdversarialStepOptions[] = [
      { method: 'pgd', eps: 0.1, steps: 3, seed: 11 },
      { method: 'fgsm', eps: 0.2, warmupEpochs: 1, mixRatio: 0.5, seed: 12 },
      { method: 'trades', eps: 0.1, steps: 2, seed: 13, norm: 'l2' },
    ];
    for (const o of opts) {
      eg.setNumThreads(1);
      const one = await run(robust.adversarialStep(o));
      eg.setNumThreads(2);
      const two = await run(robust.adversarialStep(o));
      expect(two, o.method).toEqual(one);
      all.push(...one);
    }
    expect(fnv1a(all)).toBe(DIGEST);
    // A different seed gives different starts, hence other weights.
    expect(await run(robust.adversarialStep({ ...opts[0], seed: 99 }))).not.toEqual(all.slice(0, all.length / 3));
    eg.dispose([x, y]);
  });

  it('100 steps of each method leave live tensors and wasm memory flat', () => {
    const m = cnn();
    const optimizer = new eg.optim.SGD(m.parameters(), { lr: 0.01, momentum: 0.9 });
    const [x, y] = batch(8);
    const call = (step: eg.train.TrainStep) => () => { eg.tidy(() => { step(stepInput(m, optimizer, x, y)); }); };
    expectFlatOver100Calls([
      ['pgd', call(robust.adversarialStep({ eps: 0.1, steps: 2, seed: 1 }))],
      ['fgsm mix', call(robust.adversarialStep({ method: 'fgsm', eps: 0.1, mixRatio: 0.5 }))],
      ['trades', call(robust.adversarialStep({ method: 'trades', eps: 0.1, steps: 2, seed: 1 }))],
    ]);
    eg.dispose([x, y]);
    optimizer.dispose();
    m.dispose();
  });
});

describe('typed errors', () => {
  it('bad options are refused when the step is made, bad batches when it runs; the engine keeps working', async () => {
    const inner = eg.train.standardStep;
    const bad: [() => unknown, RegExp][] = [
      [() => robust.adversarialStep(undefined as never), /eps is required/],
      [() => robust.adversarialStep(5 as never), /options/],
      [() => robust.adversarialStep({ eps: 0.1, epsilon: 0.1 } as never), /unknown option 'epsilon'/],
      [() => robust.adversarialStep({ eps: 0 }), /eps must be > 0/],
      [() => robust.adversarialStep({ eps: NaN }), /eps/],
      [() => robust.adversarialStep({ eps: 0.1, method: 'free' as never }), /method must be 'pgd', 'fgsm' or 'trades'/],
      [() => robust.adversarialStep({ eps: 0.1, norm: 'l1' as never }), /norm must be 'linf' or 'l2'/],
      [() => robust.adversarialStep({ eps: 0.1, steps: 0 }), /steps/],
      [() => robust.adversarialStep({ eps: 0.1, method: 'fgsm', steps: 3 }), /steps does not apply to method 'fgsm'/],
      [() => robust.adversarialStep({ eps: 0.1, stepSize: -1 }), /stepSize must be > 0/],
      [() => robust.adversarialStep({ eps: 0.1, beta: 1 }), /beta does not apply to method 'pgd'/],
      [() => robust.adversarialStep({ eps: 0.1, method: 'trades', beta: -1 }), /beta must be >= 0/],
      [() => robust.adversarialStep({ eps: 0.1, method: 'trades', mixRatio: 0.5 }), /mixRatio does not apply/],
      [() => robust.adversarialStep({ eps: 0.1, method: 'trades', inner }), /TRADES cannot take an inner step: it optimises its own loss/],
      [() => robust.adversarialStep({ eps: 0.1, mixRatio: 1.5 }), /mixRatio must be in \[0, 1\]/],
      [() => robust.adversarialStep({ eps: 0.1, epsSchedule: 'cosine' as never }), /epsSchedule must be/],
      [() => robust.adversarialStep({ eps: 0.1, epsSchedule: 'constant', warmupEpochs: 2 }), /warmupEpochs needs epsSchedule 'linear'/],
      [() => robust.adversarialStep({ eps: 0.1, warmupEpochs: 0 }), /warmupEpochs must be > 0/],
      [() => robust.adversarialStep({ eps: 0.1, clipValues: { min: 1, max: 0 } }), /min < max/],
      [() => robust.adversarialStep({ eps: 0.1, clipValues: [0, 1] as never }), /clipValues/],
      [() => robust.adversarialStep({ eps: 0.1, seed: -1 }), /seed/],
      [() => robust.adversarialStep({ eps: 0.1, inner: 'sgd' as never }), /inner/],
      [() => robust.adversarialStep({ eps: 0.1 }).epsAt(-1, 0, 10), /epoch/],
    ];
    for (const [f, msg] of bad) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err, String(msg)).toBeInstanceOf(eg.ArgumentError);
      expect((err as Error).message).toMatch(msg);
    }

    const m = cnn();
    const optimizer = new eg.optim.SGD(m.parameters(), { lr: 0.01 });
    const [x, y] = batch(4);
    const [yFloat, x2] = eg.tidy(() => [y.cast('float32'), x.mul(2)]);
    const runBad: [() => unknown, RegExp][] = [
      [() => robust.adversarialStep({ eps: 0.1 })(undefined as never), /StepInput/],
      [() => robust.adversarialStep({ eps: 0.1 })(stepInput(m, optimizer, x, yFloat)), /int32 class labels|int32 \[4\]/],
      [() => robust.adversarialStep({ eps: 0.1 })(stepInput(m, optimizer, x2, y)), /outside clipValues/],
      [() => robust.adversarialStep({ eps: 0.1, epsSchedule: () => NaN })(stepInput(m, optimizer, x, y)), /epsSchedule\(0, 0\) returned NaN/],
    ];
    const before = eg.memory().numTensors;
    for (const [f, msg] of runBad) {
      let err: unknown;
      try {
        eg.tidy(() => { f(); });
      } catch (e) {
        err = e;
      }
      expect(err, String(msg)).toBeInstanceOf(eg.ArgumentError);
      expect((err as Error).message).toMatch(msg);
    }
    expect(eg.memory().numTensors).toBe(before); // failed steps free what they made
    // fit reports it the same way, and the model still trains afterwards.
    m.compile({ optimizer, loss: ce });
    await expect(m.fit(x2, y, { epochs: 1, verbose: 0, trainStep: robust.adversarialStep({ eps: 0.1 }) })).rejects.toThrow(eg.ArgumentError);
    expect(m.training).toBe(true);
    await m.fit(x, y, { epochs: 1, verbose: 0, trainStep: robust.adversarialStep({ eps: 0.1, steps: 1 }) });
    eg.dispose([x, y, yFloat, x2]);
    m.dispose();
  });
});
