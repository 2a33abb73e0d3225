/** eg.robust.evaluateRobustness and checkGradientMasking (issue 15 §1, §4): honest ensemble evaluation, worst case, monotonicity, masking signs, seeds, memory, errors. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { BAD_ARGUMENTS, setup } from './helpers.js';
import { mean, measure, trainedDigitsMlp, expectErrors, type ExpectedError } from './attack-fixtures.js';
import { bits, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';

const { nn, attacks, robust } = eg;

let model: eg.nn.Sequential;
let xTest: eg.Tensor;
let yTest: Int32Array;
const N_TEST = 60;
/** Small budgets so the file stays fast; the full-size numbers come from the examples. */
const FAST = { nIter: 10, nTargetClasses: 2, nQueries: 100 };

beforeAll(async () => {
  await setup();
  ({ model, xTest, yTest } = await trainedDigitsMlp(N_TEST, { images: true }));
});

function predict(x: eg.Tensor, f: (t: eg.Tensor) => eg.Tensor = (t) => model.forward(t)): Int32Array {
  return eg.noGrad(() => eg.tidy(() => f(x).argMax(-1).dataSync() as Int32Array));
}

/** A deployed model seen through an API: the same scores, copied through JS, so no gradient reaches the input. */
const api = (t: eg.Tensor) => eg.tensor(eg.noGrad(() => eg.tidy(() => model.forward(t).dataSync())) as Float32Array, [t.shape[0], 10]);

// First, while the engine's pool is small: later tests' large batches leave a pool whose trimming
// can grow wasm memory by a page at an arbitrary later call, which is not a leak.
describe('memory', () => {
  it('100 evaluations leave live tensors and wasm memory flat', () => {
    const x = eg.tidy(() => xTest.slice([0, 0, 0, 0], [4, 8, 8, 1]));
    const y = yTest.slice(0, 4);
    const calls: [string, () => unknown][] = [
      ['evaluateRobustness', () => robust.evaluateRobustness(model, x, y, { eps: 0.05, nIter: 2, nTargetClasses: 1, nQueries: 4, returnAdversarial: true })],
      ['checkGradientMasking', () => robust.checkGradientMasking(model, x, y, { eps: 0.05, steps: [1, 2], restarts: [1, 2], nQueries: 4 })],
    ];
    expectFlatOver100Calls(calls);
    x.dispose();
  });

});

describe('evaluateRobustness', () => {
  it('the default ensemble (APGD-CE, APGD-T, Square) in sequence: clean and robust accuracy are what the model does on the returned worst-case batch, inside the ε-ball', () => {
    const eps = 0.1;
    const r = robust.evaluateRobustness(model, xTest, yTest, { eps, ...FAST, batchSize: 25, returnAdversarial: true });
    expect(r.attacks.map((a) => a.name)).toEqual(['apgd-ce', 'apgd-t', 'square']);
    const clean = predict(xTest);
    expect(r.correct).toEqual(Array.from(clean, (p, i) => p === yTest[i]));
    expect(r.cleanAccuracy).toBe(r.correct.filter(Boolean).length / N_TEST);
    expect(r.cleanAccuracy).toBeGreaterThan(0.85);
    // The worst-case batch: the model gets right exactly the examples reported robust.
    const adv = r.adversarial!;
    const pred = predict(adv);
    expect(Array.from(pred, (p, i) => p === yTest[i])).toEqual(r.robust);
    expect(r.robustAccuracy).toBe(r.robust.filter(Boolean).length / N_TEST);
    expect(r.robustAccuracy).toBeLessThan(r.cleanAccuracy - 0.2);
    const d = eg.tidy(() => adv.sub(xTest).abs().max().item());
    expect(d).toBeLessThanOrEqual(eps + 1e-6);
    expect(eg.tidy(() => [adv.min().item(), adv.max().item()])).toSatisfy(([lo, hi]: number[]) => lo >= 0 && hi <= 1);
    // Sequential bookkeeping: each attack ran on the survivors of the previous ones.
    expect(r.attacks[0].attacked).toBe(r.correct.filter(Boolean).length);
    for (let j = 1; j < 3; j++) expect(r.attacks[j].attacked).toBe(Math.round(r.attacks[j - 1].robustAccuracy * N_TEST));
    expect(r.attacks[2].robustAccuracy).toBe(r.robustAccuracy);
    expect(r.attacks[2].meanQueries).toBeGreaterThan(0);
    r.attacks.forEach((a) => expect(a.maxNorm).toBeLessThanOrEqual(eps + 1e-6));
    // Per example: robust ⇒ correct, brokenBy names the attack whose success came first, margins agree.
    r.robust.forEach((ok, i) => {
      if (ok) {
        expect(r.correct[i]).toBe(true);
        expect(r.brokenBy[i]).toBeNull();
        expect(r.worstMargin[i]).toBeGreaterThan(0);
      } else {
        expect(r.worstMargin[i]).toBeLessThanOrEqual(0);
        if (r.correct[i]) expect(r.attacks.find((a) => a.success[i])!.name).toBe(r.brokenBy[i]);
      }
    });
    expect(r.maskingSigns).toEqual([]);
    adv.dispose();
  });

  it('the worst case per example is at most every attack alone (individual runs), and adding attacks or restarts never raises robust accuracy', () => {
    const eps = 0.06;
    const ind = robust.evaluateRobustness(model, xTest, yTest, { eps, ...FAST, sequential: false, attacks: ['fgsm', 'pgd', 'apgd-ce', 'apgd-t', 'square'] });
    for (const a of ind.attacks) {
      expect(ind.robustAccuracy, a.name).toBeLessThanOrEqual(a.robustAccuracy);
      expect(a.attacked).toBe(ind.correct.filter(Boolean).length);
    }
    // Robust under the ensemble = correct and fooled by none of the attacks.
    ind.robust.forEach((ok, i) => expect(ok).toBe(ind.correct[i] && !ind.attacks.some((a) => a.success[i])));
    // A prefix of an ensemble (same seed: the same first attacks) leaves a superset robust.
    const one = robust.evaluateRobustness(model, xTest, yTest, { eps, ...FAST, attacks: ['apgd-ce'] });
    const three = robust.evaluateRobustness(model, xTest, yTest, { eps, ...FAST, attacks: ['apgd-ce', 'apgd-t', 'square'] });
    three.robust.forEach((ok, i) => { if (ok) expect(one.robust[i]).toBe(true); });
    expect(three.attacks[0].success).toEqual(one.attacks[0].success);
    // More restarts (restart 0 is the one-restart run) never leave more examples robust.
    const r1 = robust.evaluateRobustness(model, xTest, yTest, { eps, nIter: 5, attacks: ['pgd', 'apgd-ce'] });
    const r4 = robust.evaluateRobustness(model, xTest, yTest, { eps, nIter: 5, restarts: 4, attacks: ['pgd', 'apgd-ce'] });
    r4.robust.forEach((ok, i) => { if (ok) expect(r1.robust[i]).toBe(true); });
    expect(r4.robustAccuracy).toBeLessThanOrEqual(r1.robustAccuracy);
    // Labelled instances keep their own settings; repeated names are numbered.
    const inst = robust.evaluateRobustness(model, xTest, yTest, {
      eps, attacks: [new attacks.PGD(model, { eps, steps: 3, stepSize: eps / 2, seed: 1 }), new attacks.PGD(model, { eps, steps: 6, stepSize: eps / 3, seed: 2 }), { name: 'pgd-strong', attack: new attacks.PGD(model, { eps, steps: 10, restarts: 2, stepSize: eps / 4, seed: 3 }) }],
    });
    expect(inst.attacks.map((a) => a.name)).toEqual(['PGD', 'PGD#2', 'pgd-strong']);
  });

  it('refuses an attack that leaves the ε-ball or the valid range instead of reporting its number', () => {
    const big = new attacks.PGD(model, { eps: 0.2, steps: 3, stepSize: 0.1, seed: 1 });
    expect(() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, attacks: [big] })).toThrow(/perturbation of linf norm .* > eps 0.1/);
    const outside = new attacks.FGSM((t: eg.Tensor) => model.forward(t), { eps: 0.05, clipValues: null });
    expect(() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, attacks: [outside] })).toThrow(/outside clipValues/);
    expect(() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, attacks: [new attacks.PGD(model, { eps: 0.1, targeted: true })] })).toThrow(/targeted/);
  });

  it('a model with fewer than 4 classes: the default ensemble leaves APGD-T out; asking for it is a typed error', () => {
    const three = new nn.Sequential(new nn.Flatten(), new nn.Linear(64, 3, { seed: 5 })).eval();
    const y3 = Int32Array.from(yTest, (v) => v % 3);
    const r = robust.evaluateRobustness(three, xTest, y3, { eps: 0.05, ...FAST });
    expect(r.attacks.map((a) => a.name)).toEqual(['apgd-ce', 'square']);
    expect(() => robust.evaluateRobustness(three, xTest, y3, { eps: 0.05, ...FAST, attacks: ['apgd-t'] })).toThrow(/at least 4 classes/);
    three.dispose();
  });

  it('L2 threat model: APGD-CE, APGD-T and L2 Square by default, perturbations inside the L2 ball', () => {
    const r = robust.evaluateRobustness(model, xTest, yTest, { eps: 0.5, norm: 'l2', ...FAST, returnAdversarial: true });
    expect(r.attacks.map((a) => a.name)).toEqual(['apgd-ce', 'apgd-t', 'square']);
    const l2 = eg.tidy(() => Math.max(...(r.adversarial!.sub(xTest).reshape([N_TEST, -1]).square().sum(1).sqrt().dataSync() as Float32Array)));
    expect(l2).toBeLessThanOrEqual(0.5 * (1 + 1e-5));
    expect(r.robustAccuracy).toBeLessThan(r.cleanAccuracy);
    r.adversarial!.dispose();
  });
});

describe('gradient-masking checks', () => {
  it('a plain model passes: robust accuracy does not rise with steps or restarts, no black-box-only successes', () => {
    const m = robust.checkGradientMasking(model, xTest, yTest, { eps: 0.08, steps: [5, 20], restarts: [1, 3], nQueries: 150 });
    expect(m.settings.map((s) => [s.steps, s.restarts])).toEqual([[5, 1], [20, 1], [20, 3]]);
    expect(m.rises).toBe(false);
    expect(m.settings[2].robustAccuracy).toBeLessThanOrEqual(m.settings[1].robustAccuracy);
    expect(m.blackBoxOnly).toEqual([]);
    expect(m.flagged).toBe(false);
    expect(m.blackBoxRobustAccuracy).toBeGreaterThanOrEqual(m.settings[2].robustAccuracy);
  });

  it('a model whose gradients are masked is flagged: the black-box attack fools what PGD cannot; the evaluation reports it too', () => {
    const m = robust.checkGradientMasking(api, xTest, yTest, { eps: 0.1, steps: [5, 20], restarts: [1, 2], nQueries: 150 });
    expect(m.flagged).toBe(true);
    expect(m.blackBoxOnly.length).toBeGreaterThan(5);
    expect(m.reasons.join(' ')).toMatch(/Square attack fooled \d+ example/);
    const r = robust.evaluateRobustness(api, xTest, yTest, { eps: 0.1, ...FAST });
    expect(r.attacks[0].fooled).toBe(0); // APGD-CE sees a zero gradient
    expect(r.attacks[2].fooled).toBeGreaterThan(5);
    expect(r.maskingSigns.join(' ')).toMatch(/gradients may be masked/);
    // A model left in training mode is named as a risk.
    model.train();
    try {
      expect(robust.evaluateRobustness(model, xTest, yTest, { eps: 0.05, nIter: 2, attacks: ['fgsm'] }).maskingSigns.join(' ')).toMatch(/training mode/);
    } finally {
      model.eval();
    }
  });
});

/** FNV-1a over the float32 bits of a seeded evaluation's worst margins and worst-case batch; the same in Node and Chromium (update only knowingly). */
const DIGEST = 'c1f1a51c';

describe('determinism, memory, errors', () => {
  it('a seeded evaluation is bitwise repeatable, the same on 1 and 2 threads and matches the stored digest (Node and Chromium)', () => {
    const run = () => {
      const r = robust.evaluateRobustness(model, xTest, yTest, { eps: 0.08, ...FAST, seed: 7, returnAdversarial: true });
      const out = [...new Uint32Array(r.worstMargin.buffer), ...bits(r.adversarial!), ...r.robust.map(Number)];
      r.adversarial!.dispose();
      return out;
    };
    const a = sameBitsOnOneAndTwoThreads(run);
    expect(run()).toEqual(a);
    expect(fnv1a(a)).toBe(DIGEST);
  });

  it('bad arguments are typed errors naming the problem, in every position, and leak nothing', () => {
    const before = eg.memory().numTensors;
    const bad: ExpectedError[] = [
      [() => robust.evaluateRobustness(model, xTest, yTest, {} as never), eg.ArgumentError, /eps/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: -0.1 }), eg.ArgumentError, /eps must be >= 0/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, epsilon: 1 } as never), eg.ArgumentError, /unknown option 'epsilon'/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, attacks: ['autoattack' as never] }), eg.ArgumentError, /unknown attack 'autoattack'/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, attacks: [] }), eg.ArgumentError, /empty/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, attacks: [3 as never] }), eg.ArgumentError, /attacks\[0\]/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.5, norm: 'l2', attacks: ['fgsm'] }), eg.ArgumentError, /'fgsm' is an L∞ attack/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, norm: 'l1' as never }), eg.ArgumentError, /norm/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, batchSize: 0 }), eg.ArgumentError, /batchSize/],
      [() => robust.evaluateRobustness(model, xTest, yTest.slice(0, 3), { eps: 0.1 }), eg.ArgumentError, /3 targets for a batch of 60/],
      [() => robust.evaluateRobustness(model, xTest, Int32Array.from(yTest, () => 12), { eps: 0.1 }), eg.ArgumentError, /out of range for 10 classes/],
      [() => robust.evaluateRobustness((t: eg.Tensor) => t.sum(), xTest, yTest, { eps: 0.1 }), eg.ShapeError, /class scores/],
      [() => robust.evaluateRobustness((t: eg.Tensor) => model.forward(t).mul(NaN), xTest, yTest, { eps: 0.1 }), eg.ArgumentError, /NaN class scores for example 0/],
      [() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1, clipValues: { min: 0, max: 0.5 } }), eg.ArgumentError, /outside clipValues/],
      [() => eg.noGrad(() => robust.evaluateRobustness(model, xTest, yTest, { eps: 0.1 })), eg.ArgumentError, /noGrad/],
      [() => robust.checkGradientMasking(model, xTest, yTest, { eps: 0.1, steps: [20, 5] }), eg.ArgumentError, /increasing/],
      [() => robust.checkGradientMasking(model, xTest, yTest, { eps: 0.1, restarts: 3 as never }), eg.ArgumentError, /restarts must be \[fewer, more\]/],
    ];
    expectErrors(bad);
    const fill: unknown[] = [model, xTest, yTest, { eps: 0.05, nIter: 1, nTargetClasses: 1, nQueries: 2, attacks: ['apgd-ce'] }];
    for (const [name, f] of [['evaluateRobustness', robust.evaluateRobustness], ['checkGradientMasking', robust.checkGradientMasking]] as const) {
      for (let pos = 0; pos < 4; pos++) {
        for (const [label, value] of BAD_ARGUMENTS) {
          const args = fill.slice();
          args[pos] = value();
          if (name === 'checkGradientMasking' && pos !== 3) args[3] = { eps: 0.05, steps: [1, 2], restarts: [1, 2], nQueries: 2 };
          try {
            eg.dispose((f as (...a: unknown[]) => unknown)(...args));
          } catch (e) {
            expect(e, `${name} position ${pos}: ${label}`).toBeInstanceOf(eg.EdgegradError);
          }
        }
      }
    }
    expect(eg.memory().numTensors).toBe(before);
  });
});
