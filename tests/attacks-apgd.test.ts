/** APGD-CE, APGD-T, PGD restarts and the Square attack (issue 15 §1, §4): budgets, strength, targets, forward-only queries, seeds, memory, errors. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { BAD_ARGUMENTS, setup } from './helpers.js';
import { mean, measure, trainedDigitsMlp, expectErrors, type ExpectedError } from './attack-fixtures.js';
import { bits, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';
import { metaPseudoGaussian as attacksMetaPseudoGaussian, squareFraction as attacksSquareFraction } from '../sdk/attacks/square.js';

const { nn, attacks } = eg;

let model: eg.nn.Sequential;
let xTest: eg.Tensor;
let yTest: Int32Array;
const N_TEST = 100;

beforeAll(async () => {
  await setup();
  ({ model, xTest, yTest } = await trainedDigitsMlp(N_TEST, { images: true }));
});

function predict(x: eg.Tensor): Int32Array {
  return eg.noGrad(() => eg.tidy(() => model.forward(x).argMax(-1).dataSync() as Int32Array));
}
function accuracy(x: eg.Tensor, y: ArrayLike<number> = yTest): number {
  const p = predict(x);
  return Array.from(p).filter((v, i) => v === y[i]).length / p.length;
}



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
      ['Square linf', new attacks.SquareAttack(model, { eps: 0.1, nQueries: 50, seed: 8 }), 0.1, 'linf'],
      ['Square l2', new attacks.SquareAttack(model, { norm: 'l2', eps: 0.8, nQueries: 50, seed: 9 }), 0.8, 'l2'],
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

describe('Square attack (black-box, forward passes only)', () => {
  it('lowers the accuracy of an undefended model using only forward passes under noGrad; queries are counted exactly; the budget and range hold', () => {
    let rowsForwarded = 0;
    let underGrad = 0;
    const counting = (t: eg.Tensor) => {
      rowsForwarded += t.shape[0];
      if (eg.isGradEnabled()) underGrad++;
      return model.forward(t);
    };
    const eps = 0.1;
    const clean = accuracy(xTest);
    const r = new attacks.SquareAttack(counting, { eps, nQueries: 200, seed: 5 }).perturb(xTest, yTest);
    expect(underGrad).toBe(0); // no tape was ever built: no backward could have happened
    const acc = accuracy(r.adversarial);
    expect(acc).toBeLessThan(clean - 0.2);
    const m = measure(xTest, r.adversarial);
    expect(Math.max(...m.linf)).toBeLessThanOrEqual(eps + 1e-6);
    expect(m.lo).toBeGreaterThanOrEqual(0);
    expect(m.hi).toBeLessThanOrEqual(1);
    m.linf.forEach((v, i) => expect(r.norm[i]).toBeCloseTo(v, 6));
    // Every forwarded row is one query of one example, but for the final check of the result (n rows).
    const q = Array.from(r.queries);
    expect(q.reduce((a, b) => a + b, 0)).toBe(rowsForwarded - N_TEST);
    expect(Math.max(...q)).toBeLessThanOrEqual(200);
    expect(Math.min(...q)).toBeGreaterThanOrEqual(1);
    // Fooled examples stopped early; misclassified ones were not attacked (one query, unchanged).
    const pred = predict(r.adversarial);
    const cleanPred = predict(xTest);
    r.success.forEach((s, i) => expect(s).toBe(pred[i] !== yTest[i]));
    cleanPred.forEach((p, i) => { if (p !== yTest[i]) { expect(q[i]).toBe(1); expect(m.linf[i]).toBe(0); } });
    expect(q.filter((v, i) => r.success[i] && cleanPred[i] === yTest[i] && v < 200).length).toBeGreaterThan(0);
    r.adversarial.dispose();
  });

  it('attacks a model with no usable gradient (scores copied through JS) where white-box PGD fails; targeted mode reaches some targets', () => {
    const api = (t: eg.Tensor) => eg.tensor(eg.noGrad(() => eg.tidy(() => model.forward(t).dataSync())) as Float32Array, [t.shape[0], 10]);
    const clean = accuracy(xTest);
    const pgd = new attacks.PGD(api, { eps: 0.1, stepSize: 0.025, steps: 10, randomStart: false }).perturb(xTest, yTest);
    expect(accuracy(pgd.adversarial)).toBe(clean); // zero gradient: PGD does not move
    const sq = new attacks.SquareAttack(api, { eps: 0.1, nQueries: 200, seed: 6 }).perturb(xTest, yTest);
    expect(accuracy(sq.adversarial)).toBeLessThan(clean - 0.2);
    const targets = Int32Array.from(yTest, (v) => (v + 1) % 10);
    const t = new attacks.SquareAttack(api, { eps: 0.3, nQueries: 200, targeted: true, seed: 7 }).perturb(xTest, targets);
    expect(t.success.filter(Boolean).length).toBeGreaterThan(N_TEST / 4);
    t.success.forEach((s, i) => expect(s).toBe(predict(t.adversarial)[i] === targets[i]));
    eg.dispose([pgd.adversarial, sq.adversarial, t.adversarial]);
  });

  it('L2: stays in the L2 ball and lowers accuracy with forward passes only', () => {
    const clean = accuracy(xTest);
    const r = new attacks.SquareAttack(model, { norm: 'l2', eps: 1, nQueries: 200, seed: 10 }).perturb(xTest, yTest);
    expect(accuracy(r.adversarial)).toBeLessThan(clean - 0.3);
    const m = measure(xTest, r.adversarial);
    expect(Math.max(...m.l2)).toBeLessThanOrEqual(1 + 1e-5);
    expect(m.lo).toBeGreaterThanOrEqual(0);
    expect(m.hi).toBeLessThanOrEqual(1);
    m.l2.forEach((v, i) => expect(r.norm[i]).toBeCloseTo(v, 5));
    r.adversarial.dispose();
  });

  it('follows the reference schedule of the square size and its pseudo-Gaussian bump', () => {
    // meta_pseudo_gaussian_pert(5): a + bump over the top rows, a − bump below, unit L2 norm, peaked at the centre.
    const bump = attacksMetaPseudoGaussian(5, false);
    expect(bump.reduce((a, v) => a + v * v, 0)).toBeCloseTo(1, 6);
    expect(Array.from(bump.slice(0, 5)).every((v) => v > 0)).toBe(true); // top half +
    expect(Array.from(bump.slice(10)).every((v) => v < 0)).toBe(true); // bottom half −
    expect(bump[2]).toBeGreaterThan(bump[0]); // peaks at the centre column
    expect(Array.from(attacksMetaPseudoGaussian(5, true))).toEqual(Array.from({ length: 25 }, (_, q) => bump[(q % 5) * 5 + Math.floor(q / 5)]));

    const p = (it: number) => attacksSquareFraction(0.8, it, 10000);
    expect([p(0), p(10), p(11), p(50), p(51), p(200), p(201), p(9999)]).toEqual([0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.8 / 512]);
  });
});

/** FNV-1a over the float32 bits of seeded APGD-CE (linf, l2), APGD-T, PGD with restarts and Square (linf, l2) results; the same in Node and Chromium (update only knowingly). */
const DIGEST = 'cd277d88';

describe('determinism, memory, errors', () => {
  const x8 = () => eg.tidy(() => xTest.slice([0, 0, 0, 0], [16, 8, 8, 1]));
  const y8 = () => yTest.slice(0, 16);

  function seededBits(): number[] {
    const x = x8();
    const y = y8();
    const out: number[] = [];
    for (const atk of [
      new attacks.APGDCE(model, { eps: 0.08, nIter: 12, restarts: 2, seed: 31 }),
      new attacks.APGDCE(model, { norm: 'l2', eps: 0.6, nIter: 12, seed: 32 }),
      new attacks.APGDT(model, { eps: 0.05, nIter: 8, nTargetClasses: 2, seed: 33 }),
      new attacks.PGD(model, { eps: 0.05, stepSize: 0.0125, steps: 5, restarts: 3, seed: 34 }),
      new attacks.SquareAttack(model, { eps: 0.1, nQueries: 40, seed: 35 }),
      new attacks.SquareAttack(model, { norm: 'l2', eps: 0.8, nQueries: 40, seed: 36 }),
    ]) {
      const r = atk.perturb(x, y);
      out.push(...bits(r.adversarial));
      r.adversarial.dispose();
    }
    x.dispose();
    return out;
  }

  it('seeded APGD, APGD-T, PGD restarts and Square are bitwise repeatable, the same on 1 and 2 threads, and match the stored digest (Node and Chromium); another seed differs', () => {
    const a = sameBitsOnOneAndTwoThreads(seededBits);
    expect(seededBits()).toEqual(a);
    const x = x8();
    const other = new attacks.APGDCE(model, { eps: 0.08, nIter: 12, restarts: 2, seed: 99 }).perturb(x, y8());
    const first = new attacks.APGDCE(model, { eps: 0.08, nIter: 12, restarts: 2, seed: 31 }).perturb(x, y8());
    expect(bits(other.adversarial)).not.toEqual(bits(first.adversarial));
    eg.dispose([x, other.adversarial, first.adversarial]);
    expect(fnv1a(a)).toBe(DIGEST);
  });

  it('100 calls of each leave live tensors and wasm memory flat; the model and the input batch are untouched', () => {
    const x = eg.tidy(() => xTest.slice([0, 0, 0, 0], [4, 8, 8, 1]));
    const y = yTest.slice(0, 4);
    const params = model.parameters();
    const xBits = bits(x);
    const gradsBefore = params.map((p) => (p.grad === null ? null : bits(p.grad)));
    expectFlatOver100Calls([
      ['APGDCE', () => new attacks.APGDCE(model, { eps: 0.03, nIter: 3, restarts: 2, seed: 1 }).perturb(x, y).adversarial],
      ['APGDCE l2', () => new attacks.APGDCE(model, { norm: 'l2', eps: 0.3, nIter: 3 }).perturb(x, y).adversarial],
      ['APGDT', () => new attacks.APGDT(model, { eps: 0.03, nIter: 3, nTargetClasses: 2, seed: 1 }).perturb(x, y).adversarial],
      ['PGD restarts', () => new attacks.PGD(model, { eps: 0.03, steps: 2, restarts: 3, seed: 1 }).perturb(x, y).adversarial],
      ['Square', () => new attacks.SquareAttack(model, { eps: 0.05, nQueries: 6, seed: 1 }).perturb(x, y).adversarial],
      ['Square l2', () => new attacks.SquareAttack(model, { norm: 'l2', eps: 0.3, nQueries: 6, seed: 1 }).perturb(x, y).adversarial],
    ]);
    expect(bits(x)).toEqual(xBits);
    expect(params.every((p) => p.requiresGrad)).toBe(true);
    expect(params.map((p) => (p.grad === null ? null : bits(p.grad)))).toEqual(gradsBefore);
    x.dispose();
  });

  it('bad options, inputs and labels throw typed errors naming the problem, and free what they made', () => {
    const [x2, xInt, xTwo, x4] = eg.tidy(() => [eg.zeros([2, 64]), eg.zeros([2, 8, 8, 1], 'int32'), xTest.slice([0, 0, 0, 0], [2, 8, 8, 1]), eg.zeros([2, 4, 4, 1])]);
    const linear4 = new nn.Sequential(new nn.Flatten(), new nn.Linear(64, 3, { seed: 1 }));
    const bad: ExpectedError[] = [
      [() => new attacks.APGDCE(model, { epsilon: 0.1 } as never), eg.ArgumentError, /unknown option 'epsilon'/],
      [() => new attacks.APGDCE(model, { eps: -1 }), eg.ArgumentError, /eps must be >= 0/],
      [() => new attacks.APGDCE(model, { nIter: 0 }), eg.ArgumentError, /nIter/],
      [() => new attacks.APGDCE(model, { restarts: 1.5 }), eg.ArgumentError, /restarts/],
      [() => new attacks.APGDCE(model, { rho: 2 }), eg.ArgumentError, /rho must be in \(0, 1\]/],
      [() => new attacks.APGDCE(model, { norm: 'l1' as never }), eg.ArgumentError, /norm must be 'linf' or 'l2'/],
      [() => new attacks.APGDCE(model, { seed: -3 }), eg.ArgumentError, /seed/],
      [() => new attacks.APGDT(model, { targeted: true } as never), eg.ArgumentError, /unknown option 'targeted'/],
      [() => new attacks.APGDT(model, { nTargetClasses: 0 }), eg.ArgumentError, /nTargetClasses/],
      [() => new attacks.APGDT(linear4, { nIter: 2 }).perturb(xTwo, [0, 1]), eg.ArgumentError, /at least 4 classes/],
      [() => new attacks.PGD(model, { restarts: 3, randomStart: false }), eg.ArgumentError, /needs randomStart/],
      [() => new attacks.PGD(model, { restarts: 0 }), eg.ArgumentError, /restarts/],
      [() => new attacks.SquareAttack(model, { pInit: 1.5 }), eg.ArgumentError, /pInit/],
      [() => new attacks.SquareAttack(model, { nQueries: 0 }), eg.ArgumentError, /nQueries/],
      [() => new attacks.SquareAttack(model, { norm: 'l1' as never }), eg.ArgumentError, /norm must be 'linf' or 'l2'/],
      [() => new attacks.SquareAttack(model, { nQueries: 3, norm: 'l2' }).perturb(x4, [0, 1]), eg.ShapeError, /h >= 5/],
      [() => new attacks.SquareAttack((t: eg.Tensor) => model.forward(t.reshape([-1, 8, 8, 1]))).perturb(x2, [0, 1]), eg.ShapeError, /NHWC/],
      [() => new attacks.SquareAttack(model).perturb(xInt, [0, 1]), eg.DTypeError, /float32/],
      [() => new attacks.APGDCE(model, { nIter: 2 }).perturb(xTest, Int32Array.from(yTest, () => 10)), eg.ArgumentError, /out of range for 10 classes/],
      [() => new attacks.SquareAttack(model, { nQueries: 3 }).perturb(xTest, Int32Array.from(yTest, () => 10)), eg.ArgumentError, /out of range for 10 classes/],
      [() => new attacks.APGDCE(model).perturb(xTest, yTest.slice(0, 5)), eg.ArgumentError, /5 targets for a batch of 100/],
      [() => eg.noGrad(() => new attacks.APGDCE(model).perturb(xTest, yTest)), eg.ArgumentError, /noGrad/],
    ];
    const before = eg.memory().numTensors;
    expectErrors(bad);
    expect(eg.memory().numTensors).toBe(before);
    // Every wrong argument type in every position is a typed error, never a raw TypeError.
    const ctors: [string, (a: unknown, b: unknown) => unknown][] = [
      ['APGDCE', (a, b) => new attacks.APGDCE(a as never, b as never)],
      ['APGDT', (a, b) => new attacks.APGDT(a as never, b as never)],
      ['SquareAttack', (a, b) => new attacks.SquareAttack(a as never, b as never)],
      ['PGD', (a, b) => new attacks.PGD(a as never, b as never)],
    ];
    for (const [name, make] of ctors) {
      for (const [label, value] of BAD_ARGUMENTS) {
        for (const args of [[value(), undefined], [model, value()]]) {
          try {
            make(args[0], args[1]);
          } catch (e) {
            expect(e, `${name}(${label})`).toBeInstanceOf(eg.EdgegradError);
          }
        }
      }
      const atk = make(model, pickFor(name)) as eg.attacks.Attack;
      for (const [label, value] of BAD_ARGUMENTS) {
        for (const args of [[value(), yTest], [xTest, value()]]) {
          try {
            eg.dispose(atk.perturb(args[0] as never, args[1] as never).adversarial);
          } catch (e) {
            expect(e, `${name}.perturb(${label})`).toBeInstanceOf(eg.EdgegradError);
          }
        }
      }
    }
    eg.dispose([x2, xInt, xTwo, x4]);
    linear4.dispose();
  });
});

/** Cheap options for each attack of the argument walk. */
function pickFor(name: string): object {
  return name === 'SquareAttack' ? { nQueries: 3 } : name === 'PGD' ? { steps: 2 } : { nIter: 2, ...(name === 'APGDT' ? { nTargetClasses: 2 } : {}) };
}
