/** Adversarial attacks (issue 14 §4, §6): ε-balls and ranges, strength ordering, targeted success, minimal L2, seeds, memory, errors. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';
import { mean, measure, trainedDigitsMlp, expectErrors, type ExpectedError } from './attack-fixtures.js';
import { bits, fnv1a } from './explain-fixtures.js';

const { nn, attacks } = eg;

let model: eg.nn.Sequential;
let xTest: eg.Tensor;
let yTest: Int32Array;
const N_TEST = 100;

beforeAll(async () => {
  await setup();
  ({ model, xTest, yTest } = await trainedDigitsMlp(N_TEST, { images: false }));
});

function accuracy(x: eg.Tensor): number {
  const pred = eg.noGrad(() => eg.tidy(() => model.forward(x).argMax(-1).dataSync()));
  return Array.from(pred).filter((p, i) => p === yTest[i]).length / yTest.length;
}



describe('adversarial examples stay in the ε-ball and the valid range', () => {
  it('FGSM and PGD (linf, l2; random start; targeted) respect eps and clipValues; reported norms match', () => {
    const eps = 0.1;
    const cases: [string, eg.attacks.Attack, number, 'linf' | 'l2'][] = [
      ['FGSM', new attacks.FGSM(model, { eps }), eps, 'linf'],
      ['PGD linf', new attacks.PGD(model, { eps, stepSize: 0.03, steps: 10, seed: 3 }), eps, 'linf'],
      ['PGD linf targeted', new attacks.PGD(model, { eps, stepSize: 0.03, steps: 10, targeted: true, seed: 4 }), eps, 'linf'],
      ['PGD l2', new attacks.PGD(model, { norm: 'l2', eps: 1, stepSize: 0.3, steps: 10, seed: 5 }), 1, 'l2'],
      ['PGD l2 no random start', new attacks.PGD(model, { norm: 'l2', eps: 0.5, stepSize: 0.3, steps: 5, randomStart: false }), 0.5, 'l2'],
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
      const want = norm === 'linf' ? m.linf : m.l2;
      want.forEach((v, i) => expect(r.norm[i], `${name} norm[${i}]`).toBeCloseTo(v, 5));
      expect(r.success.length).toBe(N_TEST);
      r.adversarial.dispose();
    }
  });

  it('image batches [n, 8, 8, 1] (NHWC) through a CNN: every attack keeps the shape, the range and its budget', () => {
    const cnn = new nn.Sequential(new nn.Conv2d(1, 4, 3, { padding: 'same', seed: 21 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(64, 5, { seed: 22 })).eval();
    const x = eg.rand([6, 8, 8, 1], 0, 1, { seed: 23 });
    const y = [0, 1, 2, 3, 4, 0];
    const list: [string, eg.attacks.Attack, 'linf' | 'l2', number][] = [
      ['FGSM', new attacks.FGSM(cnn, { eps: 0.05 }), 'linf', 0.05],
      ['PGD', new attacks.PGD(cnn, { eps: 0.05, stepSize: 0.01, steps: 5, seed: 2 }), 'linf', 0.05],
      ['PGD l2', new attacks.PGD(cnn, { norm: 'l2', eps: 0.5, stepSize: 0.1, steps: 5, seed: 3 }), 'l2', 0.5],
      ['DeepFool', new attacks.DeepFool(cnn, { steps: 20, nCandidates: 3 }), 'l2', Infinity],
      ['CW', new attacks.CarliniWagnerL2(cnn, { steps: 20, lr: 0.05, binarySearchSteps: 2 }), 'l2', Infinity],
    ];
    for (const [name, atk, norm, eps] of list) {
      const r = atk.perturb(x, y);
      expect(r.adversarial.shape, name).toEqual([6, 8, 8, 1]);
      const m = measure(x, r.adversarial);
      expect(m.lo, name).toBeGreaterThanOrEqual(0);
      expect(m.hi, name).toBeLessThanOrEqual(1);
      const got = norm === 'linf' ? m.linf : m.l2;
      got.forEach((v, i) => expect(r.norm[i], `${name} norm[${i}]`).toBeCloseTo(v, 4));
      expect(Math.max(...got), name).toBeLessThanOrEqual(norm === 'linf' ? eps + 1e-6 : eps * (1 + 1e-5));
      r.adversarial.dispose();
    }
    x.dispose();
    cnn.dispose();
  });

  it('a custom clipValues range and unbounded inputs (null) are honoured', () => {
    const x = eg.tidy(() => xTest.mul(2).sub(1)); // in [-1, 1]
    const r = new attacks.PGD((t: eg.Tensor) => model.forward(t.add(1).div(2)), { eps: 0.2, stepSize: 0.1, steps: 3, clipValues: { min: -1, max: 1 }, seed: 1 }).perturb(x, yTest);
    const m = measure(x, r.adversarial);
    expect(m.lo).toBeGreaterThanOrEqual(-1);
    expect(m.hi).toBeLessThanOrEqual(1);
    expect(m.lo).toBeLessThan(0);
    const u = new attacks.FGSM(model, { eps: 0.5, clipValues: null }).perturb(xTest, yTest);
    const mu = measure(xTest, u.adversarial);
    expect(mu.lo).toBeLessThan(0); // pixels at 0 pushed below: no clipping
    expect(Math.max(...mu.linf)).toBeLessThanOrEqual(0.5 + 1e-6);
    eg.dispose([x, r.adversarial, u.adversarial]);
  });
});

describe('attack strength on a trained digits MLP', () => {
  it('PGD-20 lowers accuracy at least as much as FGSM at the same ε', () => {
    const clean = accuracy(xTest);
    expect(clean).toBeGreaterThan(0.85);
    for (const eps of [0.05, 0.1]) {
      const f = new attacks.FGSM(model, { eps }).perturb(xTest, yTest);
      const p = new attacks.PGD(model, { eps, stepSize: eps / 4, steps: 20, seed: 7 }).perturb(xTest, yTest);
      const accF = accuracy(f.adversarial);
      const accP = accuracy(p.adversarial);
      expect(accF, `eps ${eps}`).toBeLessThan(clean);
      expect(accP, `eps ${eps}`).toBeLessThanOrEqual(accF);
      // success is "prediction differs from the label": 1 − success rate = accuracy on x'.
      expect(1 - p.success.filter(Boolean).length / N_TEST).toBeCloseTo(accP, 10);
      eg.dispose([f.adversarial, p.adversarial]);
    }
  });

  it('targeted PGD reaches its target on most examples', () => {
    const targets = Int32Array.from(yTest, (v) => (v + 1) % 10);
    const r = new attacks.PGD(model, { eps: 0.3, stepSize: 0.03, steps: 30, targeted: true, seed: 8 }).perturb(xTest, targets);
    const pred = eg.noGrad(() => eg.tidy(() => model.forward(r.adversarial).argMax(-1).dataSync()));
    const hits = Array.from(pred).filter((p, i) => p === targets[i]).length;
    expect(hits / N_TEST).toBeGreaterThan(0.8);
    r.success.forEach((s, i) => expect(s).toBe(pred[i] === targets[i]));
    r.adversarial.dispose();
  });

  it('CarliniWagnerL2 and DeepFool find smaller L2 perturbations than PGD-L2 on examples all three fool', () => {
    const n = 40;
    const x = eg.tidy(() => xTest.slice([0, 0], [n, 64]));
    const y = yTest.slice(0, n);
    const pgd = new attacks.PGD(model, { norm: 'l2', eps: 1.2, stepSize: 0.15, steps: 20, seed: 9 }).perturb(x, y);
    const df = new attacks.DeepFool(model, { steps: 50 }).perturb(x, y);
    const cw = new attacks.CarliniWagnerL2(model, { c: 1, steps: 100, lr: 0.05, binarySearchSteps: 5 }).perturb(x, y);
    for (const [name, r] of [['PGD', pgd], ['DeepFool', df], ['CW', cw]] as const) {
      const m = measure(x, r.adversarial);
      expect(m.lo, name).toBeGreaterThanOrEqual(0);
      expect(m.hi, name).toBeLessThanOrEqual(1);
      m.l2.forEach((v, i) => expect(r.norm[i], `${name} norm[${i}]`).toBeCloseTo(v, 4));
      // success agrees with the model's prediction on x'
      const pred = eg.noGrad(() => eg.tidy(() => model.forward(r.adversarial).argMax(-1).dataSync()));
      r.success.forEach((s, i) => expect(s, `${name} success[${i}]`).toBe(pred[i] !== y[i]));
    }
    const all = Array.from({ length: n }, (_, i) => i).filter((i) => pgd.success[i] && df.success[i] && cw.success[i]);
    expect(all.length).toBeGreaterThan(n / 2);
    const pick = (v: Float32Array) => all.map((i) => v[i]);
    expect(mean(pick(cw.norm))).toBeLessThan(mean(pick(pgd.norm)));
    expect(mean(pick(df.norm))).toBeLessThan(mean(pick(pgd.norm)));
    // Failed CW examples are returned unchanged.
    cw.success.forEach((s, i) => { if (!s) expect(cw.norm[i]).toBe(0); });
    eg.dispose([x, pgd.adversarial, df.adversarial, cw.adversarial]);
  });
});

/** FNV-1a over the float32 bits of seeded PGD (linf, l2), DeepFool and CW results; the same in Node and Chromium (update only knowingly). */
const DIGEST = 'ae76b0a0';

describe('determinism, generality, memory', () => {
  it('seeded attacks are bitwise repeatable across calls and thread counts and match the stored digest (same in Node and Chromium); a different seed differs', () => {
    const run = (seed: number) => {
      const r = new attacks.PGD(model, { eps: 0.1, stepSize: 0.02, steps: 5, seed }).perturb(xTest, yTest);
      const b = bits(r.adversarial);
      r.adversarial.dispose();
      return b;
    };
    const a = run(11);
    expect(run(11)).toEqual(a);
    expect(run(12)).not.toEqual(a);
    const l2 = () => {
      const r = new attacks.PGD(model, { norm: 'l2', eps: 1, stepSize: 0.2, steps: 3, seed: 5 }).perturb(xTest, yTest);
      const b = bits(r.adversarial);
      r.adversarial.dispose();
      return b;
    };
    const base = l2();
    const minimal = () => {
      const x = eg.tidy(() => xTest.slice([0, 0], [8, 64]));
      const y = yTest.slice(0, 8);
      const out: number[] = [];
      for (const atk of [new attacks.DeepFool(model, { steps: 10 }), new attacks.CarliniWagnerL2(model, { steps: 10, lr: 0.05, binarySearchSteps: 2 })]) {
        const r = atk.perturb(x, y);
        out.push(...bits(r.adversarial));
        r.adversarial.dispose();
      }
      x.dispose();
      return out;
    };
    const rest = minimal();
    eg.setNumThreads(1);
    try {
      expect(run(11)).toEqual(a);
      expect(l2()).toEqual(base);
      expect(minimal()).toEqual(rest);
    } finally {
      eg.setNumThreads(eg.backendInfo().maxThreads >= 2 ? 2 : 1);
    }
    expect(fnv1a([...a, ...base, ...rest])).toBe(DIGEST);
  });

  it('a function forward equals the Module; a custom loss replaces cross-entropy', () => {
    const viaModule = new attacks.FGSM(model, { eps: 0.1 }).perturb(xTest, yTest);
    const viaFn = new attacks.FGSM((t: eg.Tensor) => model.forward(t), { eps: 0.1 }).perturb(xTest, yTest);
    expect(bits(viaFn.adversarial)).toEqual(bits(viaModule.adversarial));
    // Ascending −CE towards y is the targeted attack towards y.
    const neg = new attacks.FGSM(model, { eps: 0.1, loss: (o, l) => eg.losses.sparseCategoricalCrossEntropy(o, l, { fromLogits: true, reduction: 'none' }).neg() }).perturb(xTest, yTest);
    const tgt = new attacks.FGSM(model, { eps: 0.1, targeted: true }).perturb(xTest, yTest);
    expect(bits(neg.adversarial)).toEqual(bits(tgt.adversarial));
    expect(bits(neg.adversarial)).not.toEqual(bits(viaModule.adversarial));
    eg.dispose([viaModule.adversarial, viaFn.adversarial, neg.adversarial, tgt.adversarial]);
    for (const p of model.parameters()) p.zeroGrad(); // the closure's model accumulated .grad (documented)
  });

  it('leaves the model\'s parameters (.grad, requiresGrad) and the input batch untouched, also after an error', () => {
    const params = model.parameters();
    const grads = () => params.map((p) => (p.grad === null ? null : bits(p.grad)));
    const before = grads();
    const xBits = bits(xTest);
    expect(params.every((p) => p.requiresGrad)).toBe(true);
    for (const atk of [new attacks.FGSM(model), new attacks.PGD(model, { steps: 2 }), new attacks.DeepFool(model, { steps: 2 }), new attacks.CarliniWagnerL2(model, { steps: 2, binarySearchSteps: 1 })]) {
      atk.perturb(xTest, yTest).adversarial.dispose();
      expect(() => atk.perturb(xTest, Int32Array.from(yTest, () => 10))).toThrow(eg.ArgumentError);
    }
    expect(params.every((p) => p.requiresGrad)).toBe(true);
    expect(grads()).toEqual(before);
    expect(bits(xTest)).toEqual(xBits); // the input batch is not modified
  });

  it('100 calls of each attack leave live tensors and wasm memory flat', () => {
    const x = eg.tidy(() => xTest.slice([0, 0], [8, 64]));
    const y = yTest.slice(0, 8);
    const list: [string, eg.attacks.Attack][] = [
      ['FGSM', new attacks.FGSM(model)],
      ['PGD', new attacks.PGD(model, { steps: 3, seed: 1 })],
      ['PGD l2', new attacks.PGD(model, { norm: 'l2', steps: 3 })],
      ['DeepFool', new attacks.DeepFool(model, { steps: 3, nCandidates: 4 })],
      ['CW', new attacks.CarliniWagnerL2(model, { steps: 3, binarySearchSteps: 2 })],
    ];
    for (const [name, atk] of list) {
      atk.perturb(x, y).adversarial.dispose(); // warm-up: the pool sizes itself
      const before = eg.memory();
      for (let i = 0; i < 100; i++) atk.perturb(x, y).adversarial.dispose();
      const after = eg.memory();
      expect(after.numTensors, name).toBe(before.numTensors);
      expect(after.numBytes, name).toBe(before.numBytes);
      expect(after.wasmBytes, name).toBe(before.wasmBytes);
    }
    x.dispose();
  });
});

describe('typed errors', () => {
  it('bad options, inputs and labels throw ArgumentError/ShapeError/DTypeError naming the problem; the engine keeps working', () => {
    const [xInt, x63, x16, z64] = eg.tidy(() => [eg.zeros([2, 64], 'int32'), eg.zeros([2, 63]), xTest.mul(16), eg.zeros([2, 64])]);
    const bad: ExpectedError[] = [
      [() => new attacks.FGSM(model, { epsilon: 0.1 } as never), eg.ArgumentError, /unknown option 'epsilon'/],
      [() => new attacks.FGSM(model, { eps: -0.1 }), eg.ArgumentError, /eps must be >= 0/],
      [() => new attacks.FGSM(model, { eps: NaN }), eg.ArgumentError, /eps/],
      [() => new attacks.FGSM({} as never), eg.ArgumentError, /Module or a function/],
      [() => new attacks.FGSM(model, { loss: 'ce' as never }), eg.ArgumentError, /loss/],
      [() => new attacks.PGD(model, { norm: 'l3' as never }), eg.ArgumentError, /norm must be 'linf' or 'l2'/],
      [() => new attacks.PGD(model, { steps: 1.5 }), eg.ArgumentError, /steps/],
      [() => new attacks.PGD(model, { stepSize: 0 }), eg.ArgumentError, /stepSize must be > 0/],
      [() => new attacks.PGD(model, { seed: -1 }), eg.ArgumentError, /seed/],
      [() => new attacks.PGD(model, { clipValues: { min: 1, max: 0 } }), eg.ArgumentError, /min < max/],
      [() => new attacks.PGD(model, { clipValues: [0, 1] as never }), eg.ArgumentError, /clipValues/],
      [() => new attacks.PGD(model, { targeted: 'yes' as never }), eg.ArgumentError, /targeted/],
      [() => new attacks.DeepFool(model, { nCandidates: 1 }), eg.ArgumentError, /nCandidates/],
      [() => new attacks.DeepFool(model, { targeted: true } as never), eg.ArgumentError, /unknown option 'targeted'/],
      [() => new attacks.CarliniWagnerL2(model, { clipValues: null }), eg.ArgumentError, /bounded input range/],
      [() => new attacks.CarliniWagnerL2(model, { binarySearchSteps: 0 }), eg.ArgumentError, /binarySearchSteps/],
      [() => new attacks.FGSM(model).perturb(xTest, yTest.slice(0, 3)), eg.ArgumentError, /3 targets for a batch of 100/],
      [() => new attacks.FGSM(model).perturb(xTest, undefined as never), eg.ArgumentError, /y is required/],
      [() => new attacks.FGSM(model).perturb(xTest, 10), eg.ArgumentError, /out of range for 10 classes/],
      [() => new attacks.FGSM(model).perturb([xTest] as never, yTest), eg.ArgumentError, /one Tensor/],
      [() => new attacks.FGSM(model).perturb(x16, yTest), eg.ArgumentError, /outside clipValues/],
      [() => new attacks.FGSM(model).perturb(xInt, [0, 1]), eg.DTypeError, /float32/],
      [() => new attacks.FGSM(model).perturb(x63, [0, 1]), eg.ShapeError, /./],
      [() => new attacks.FGSM((t: eg.Tensor) => t.sum(1)).perturb(z64, [0, 1]), eg.ShapeError, /class scores/],
      [() => eg.noGrad(() => new attacks.PGD(model).perturb(xTest, yTest)), eg.ArgumentError, /noGrad/],
      [() => new attacks.FGSM(model, { loss: () => 3 as never }).perturb(xTest, yTest), eg.ArgumentError, /not a Tensor/],
    ];
    const before = eg.memory().numTensors;
    expectErrors(bad);
    expect(eg.memory().numTensors).toBe(before); // failed calls free what they made
    eg.dispose([xInt, x63, x16, z64]);
    const r = new attacks.FGSM(model, { eps: 0.1 }).perturb(xTest, yTest);
    expect(r.success.length).toBe(N_TEST);
    r.adversarial.dispose();
  });
});
