/** APGD-CE, APGD-T, PGD restarts and the Square attack (issue 15 §1, §4): budgets, strength, targets, forward-only queries, seeds, memory, errors. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { BAD_ARGUMENTS, setup } from './helpers.js';
import { bits, expectFlatOver100Calls, fnv1a } from './explain-fixtures.js';

const { nn, attacks } = eg;

let model: eg.nn.Sequential;
let xTest: eg.Tensor;
let yTest: Int32Array;
const N_TEST = 100;

/** A digits MLP on 8x8x1 images (pixels in [0, 1]) trained for about a second. */
beforeAll(async () => {
  await setup();
  const d = await eg.loadDigits();
  const nTrain = 1200;
  const scaled = d.images.map((v) => v / 16);
  model = new nn.Sequential(new nn.Flatten(), new nn.Linear(64, 32, { seed: 1 }), new nn.ReLU(), new nn.Linear(32, 10, { seed: 2 }));
  const x = eg.tensor(scaled.slice(0, nTrain * 64), [nTrain, 8, 8, 1]);
  const y = eg.tensor(d.labels.slice(0, nTrain), [nTrain], 'int32');
  const opt = new eg.optim.Adam(model.parameters(), { lr: 0.02 });
  for (let s = 0; s < 150; s++) {
    eg.tidy(() => {
      opt.zeroGrad();
      eg.losses.sparseCategoricalCrossEntropy(model.forward(x), y, { fromLogits: true }).backward();
      opt.step();
    });
  }
  opt.zeroGrad();
  opt.dispose();
  eg.dispose([x, y]);
  model.eval();
  xTest = eg.tensor(scaled.slice((d.n - N_TEST) * 64), [N_TEST, 8, 8, 1]);
  yTest = d.labels.slice(d.n - N_TEST);
});

function predict(x: eg.Tensor): Int32Array {
  return eg.noGrad(() => eg.tidy(() => model.forward(x).argMax(-1).dataSync() as Int32Array));
}
function accuracy(x: eg.Tensor, y: ArrayLike<number> = yTest): number {
  const p = predict(x);
  return Array.from(p).filter((v, i) => v === y[i]).length / p.length;
}

/** Per-example max |δ| and ‖δ‖₂ computed here in JS (float64), and the range of x'. */
function measure(x: eg.Tensor, adv: eg.Tensor): { linf: number[]; l2: number[]; lo: number; hi: number } {
  const a = adv.dataSync() as Float32Array;
  const b = x.dataSync() as Float32Array;
  const d = a.length / x.shape[0];
  const linf: number[] = [];
  const l2: number[] = [];
  for (let i = 0; i < x.shape[0]; i++) {
    let m = 0;
    let s = 0;
    for (let k = i * d; k < (i + 1) * d; k++) {
      const v = a[k] - b[k];
      m = Math.max(m, Math.abs(v));
      s += v * v;
    }
    linf.push(m);
    l2.push(Math.sqrt(s));
  }
  return { linf, l2, lo: Math.min(...a), hi: Math.max(...a) };
}

const mean = (v: number[]) => v.reduce((s, a) => s + a, 0) / v.length;

describe('APGD-CE and APGD-T', () => {
  it('keep every adversarial in the ε-ball and the valid range (linf, l2, targeted, APGD-T); norms and success are reported truthfully', () => {
    const cases: [string, eg.attacks.Attack, number, 'linf' | 'l2'][] = [
      ['APGD-CE linf', new attacks.APGDCE(model, { eps: 0.1, nIter: 20, seed: 1 }), 0.1, 'linf'],
      ['APGD-CE l2', new attacks.APGDCE(model, { norm: 'l2', eps: 0.8, nIter: 20, seed: 2 }), 0.8, 'l2'],
      ['APGD-CE targeted', new attacks.APGDCE(model, { eps: 0.1, nIter: 20, targeted: true, seed: 3 }), 0.1, 'linf'],
      ['APGD-T linf', new attacks.APGDT(model, { eps: 0.1, nIter: 10, nTargetClasses: 3, seed: 4 }), 0.1, 'linf'],
      ['APGD-T l2', new attacks.APGDT(model, { norm: 'l2', eps: 0.8, nIter: 10, nTargetClasses: 2, seed: 5 }), 0.8, 'l2'],
      ['PGD restarts', new attacks.PGD(model, { eps: 0.1, stepSize: 0.025, steps: 10, restarts: 3, seed: 6 }), 0.1, 'linf'],
      ['PGD l2 restarts', new attacks.PGD(model, { norm: 'l2', eps: 0.8, stepSize: 0.2, steps: 10, restarts: 2, seed: 7 }), 0.8, 'l2'],
    ];
    for (const [name, atk, e, norm] of cases) {
      const y = atk.targeted ? Int32Array.from(yTest, (v) => (v + 3) % 10) : yTest;
      const r = atk.perturb(xTest, y);
      expect(r.adversarial.shape, name).toEqual(xTest.shape);
      const m = measure(xTest, r.adversarial);
      expect(m.lo, name).toBeGreaterThanOrEqual(0);
      expect(m.hi, name).toBeLessThanOrEqual(1);
      if (norm === 'linf') expect(Math.max(...m.linf), name).toBeLessThanOrEqual(e + 1e-6);
      else expect(Math.max(...m.l2), name).toBeLessThanOrEqual(e * (1 + 1e-5));
      (norm === 'linf' ? m.linf : m.l2).forEach((v, i) => expect(r.norm[i], `${name} norm[${i}]`).toBeCloseTo(v, 5));
      const pred = predict(r.adversarial);
      r.success.forEach((s, i) => expect(s, `${name} success[${i}]`).toBe(atk.targeted ? pred[i] === y[i] : pred[i] !== y[i]));
      r.adversarial.dispose();
    }
  });

  it('APGD-CE (no step size to tune) fools at least as many examples as PGD with the same number of steps, averaged over PGD step sizes', () => {
    const clean = accuracy(xTest);
    expect(clean).toBeGreaterThan(0.85);
    const apgd: number[] = [];
    const pgd: number[] = [];
    for (const eps of [0.03, 0.05, 0.08]) {
      for (const steps of [5, 10]) {
        const a = new attacks.APGDCE(model, { eps, nIter: steps, seed: 11 }).perturb(xTest, yTest);
        apgd.push(accuracy(a.adversarial));
        expect(apgd.at(-1)!, `eps ${eps}`).toBeLessThan(clean);
        a.adversarial.dispose();
        for (const f of [0.1, 0.25, 0.5, 1]) {
          const p = new attacks.PGD(model, { eps, stepSize: f * eps, steps, seed: 11 }).perturb(xTest, yTest);
          pgd.push(accuracy(p.adversarial));
          p.adversarial.dispose();
        }
      }
    }
    expect(mean(apgd)).toBeLessThanOrEqual(mean(pgd));
  });

  it('targeted APGD-CE reaches its target on most examples; APGD-T misclassifies at least as many as APGD-CE at a small ε', () => {
    const targets = Int32Array.from(yTest, (v) => (v + 1) % 10);
    const r = new attacks.APGDCE(model, { eps: 0.3, nIter: 30, targeted: true, seed: 8 }).perturb(xTest, targets);
    expect(accuracy(r.adversarial, targets)).toBeGreaterThan(0.8);
    const ce = new attacks.APGDCE(model, { eps: 0.04, nIter: 20, seed: 9 }).perturb(xTest, yTest);
    const t = new attacks.APGDT(model, { eps: 0.04, nIter: 20, nTargetClasses: 3, seed: 9 }).perturb(xTest, yTest);
    expect(accuracy(t.adversarial)).toBeLessThanOrEqual(accuracy(ce.adversarial) + 0.02);
    eg.dispose([r.adversarial, ce.adversarial, t.adversarial]);
  });

  it('examples the model already misclassifies are returned unchanged; a zero budget returns x', () => {
    const pred = predict(xTest);
    const wrongLabels = Int32Array.from(pred, (p) => (p + 1) % 10); // every prediction is "wrong" for these labels
    const r = new attacks.APGDCE(model, { eps: 0.1, nIter: 5, seed: 1 }).perturb(xTest, wrongLabels);
    expect(bits(r.adversarial)).toEqual(bits(xTest));
    expect(r.success.every(Boolean)).toBe(true);
    const z = new attacks.APGDCE(model, { eps: 0, nIter: 5, seed: 1 }).perturb(xTest, yTest);
    expect(Math.max(...measure(xTest, z.adversarial).linf)).toBe(0);
    eg.dispose([r.adversarial, z.adversarial]);
  });
});

describe('restarts never raise measured robust accuracy', () => {
  it('PGD and APGD: the examples robust after r + k restarts are a subset of those robust after r (same seed); more steps of APGD do not help the model either', () => {
    const eps = 0.05;
    const robustSet = (atk: eg.attacks.Attack) => {
      const r = atk.perturb(xTest, yTest);
      r.adversarial.dispose();
      return r.success.map((s) => !s);
    };
    const pairs: [string, boolean[], boolean[]][] = [
      ['PGD 1 vs 4 restarts', robustSet(new attacks.PGD(model, { eps, stepSize: eps / 4, steps: 10, seed: 21 })), robustSet(new attacks.PGD(model, { eps, stepSize: eps / 4, steps: 10, restarts: 4, seed: 21 }))],
      ['APGD 1 vs 3 restarts', robustSet(new attacks.APGDCE(model, { eps, nIter: 10, seed: 22 })), robustSet(new attacks.APGDCE(model, { eps, nIter: 10, restarts: 3, seed: 22 }))],
    ];
    for (const [name, few, many] of pairs) {
      many.forEach((robust, i) => { if (robust) expect(few[i], `${name}: example ${i}`).toBe(true); });
      expect(many.filter(Boolean).length, name).toBeLessThanOrEqual(few.filter(Boolean).length);
    }
    const short = robustSet(new attacks.APGDCE(model, { eps, nIter: 5, seed: 23 })).filter(Boolean).length;
    const long = robustSet(new attacks.APGDCE(model, { eps, nIter: 50, seed: 23 })).filter(Boolean).length;
    expect(long).toBeLessThanOrEqual(short);
  });
});
