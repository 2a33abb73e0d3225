/**
 * Randomized smoothing (issue 15 §2, §4): the statistics against SciPy, certification of a linear
 * classifier whose behaviour under noise is known in closed form, abstention on ties, the radius's
 * growth with n and σ, noise augmentation through fit, seeds (Node = Chromium, 1 = 2 threads),
 * memory and typed errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { BAD_ARGUMENTS, setup, expectEachTestFreesItsTensors } from './helpers.js';
import { cnn, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';

const { nn, robust } = eg;

beforeAll(async () => {
  await setup();
});

expectEachTestFreesItsTensors();

/** Relative error, with an absolute floor for values near 0. */
function close(got: number, want: number, rtol: number, atol = 0): void {
  expect(Math.abs(got - want), `${got} vs ${want}`).toBeLessThanOrEqual(atol + rtol * Math.abs(want));
}

describe('statistics (reference values: SciPy 1.17.1, printed with repr)', () => {
  it('normalCdf = scipy.stats.norm.cdf, normalQuantile = scipy.stats.norm.ppf', () => {
    const cdf: [number, number][] = [
      [-20, 2.7536241186061556e-89], [-8, 6.22096057427174e-16], [-3, 0.0013498980316300933], [-1.5, 0.06680720126885807],
      [0, 0.5], [0.5, 0.6914624612740131], [1.96, 0.9750021048517795], [5, 0.9999997133484281], [9, 1],
    ];
    for (const [x, want] of cdf) close(robust.normalCdf(x), want, 1e-13);
    const ppf: [number, number][] = [
      [1e-300, -37.0470962993612], [1e-20, -9.262340089798409], [1e-10, -6.361340902404056], [0.001, -3.090232306167813],
      [0.025, -1.9599639845400545], [0.3, -0.5244005127080409], [0.5, 0], [0.75, 0.6744897501960817], [0.975, 1.959963984540054],
      [0.999, 3.090232306167813], [1 - 1e-12, 7.0344869100478356],
    ];
    for (const [p, want] of ppf) close(robust.normalQuantile(p), want, 1e-14, 1e-15);
    expect(robust.normalQuantile(0)).toBe(-Infinity);
    expect(robust.normalQuantile(1)).toBe(Infinity);
  });

  it('betaInc = scipy.special.betainc, betaQuantile = scipy.stats.beta.ppf (up to a = 1e5)', () => {
    const inc: [number, number, number, number][] = [
      [0.5, 0.5, 0.3, 0.36901011956554536], [2, 3, 0.4, 0.5247999999999999], [10, 20, 0.25, 0.16630494959787945],
      [100, 50, 0.7, 0.8054481662277535], [9990, 11, 0.999, 0.583039760629257], [5000, 5001, 0.5, 0.5039893230696917],
      [1e5, 10, 0.99995, 0.9681592477182489],
    ];
    for (const [a, b, x, want] of inc) close(robust.betaInc(a, b, x), want, 2e-12);
    const ppf: [number, number, number, number][] = [
      [0.001, 990, 11, 0.9760361871553114], [0.001, 10000, 1, 0.9993094630025899], [0.001, 1, 100, 1.0004953285956376e-5],
      [0.05, 50, 51, 0.41362171463091174], [1e-6, 99990, 11, 0.9996557632042139], [0.001, 9500, 501, 0.942908610944434],
      [0.5, 3, 4, 0.42140719069071303],
    ];
    for (const [q, a, b, want] of ppf) close(robust.betaQuantile(q, a, b), want, 1e-13);
  });

  it('proportionConfint is the Clopper–Pearson interval; binomTest = scipy.stats.binomtest(k, n, p).pvalue', () => {
    // statsmodels' proportion_confint(k, n, alpha, method='beta') = (beta.ppf(alpha/2, k, n-k+1), beta.ppf(1-alpha/2, k+1, n-k)).
    const [lo, hi] = robust.proportionConfint(990, 1000, 0.002);
    close(lo, robust.betaQuantile(0.001, 990, 11), 0);
    close(hi, robust.betaQuantile(0.999, 991, 10), 0);
    close(lo, 0.9760361871553114, 1e-13);
    expect(robust.proportionConfint(0, 10, 0.05)[0]).toBe(0);
    expect(robust.proportionConfint(10, 10, 0.05)[1]).toBe(1);
    // All successes: the lower bound is (alpha/2)^(1/n) in closed form.
    close(robust.proportionConfint(500, 500, 0.01)[0], Math.pow(0.005, 1 / 500), 1e-14);
    const cases: [number, number, number, number][] = [
      [60, 100, 0.5, 0.05688793364098089], [40, 100, 0.5, 0.05688793364098089], [50, 100, 0.5, 1], [7, 10, 0.3, 0.010592078399999996],
      [2, 10, 0.3, 0.7331720679999996], [3, 10, 0.3, 1], [520, 1000, 0.5, 0.2174482932041415], [1, 5, 0.5, 0.375],
      [0, 20, 0.1, 0.25452997802490435], [9000, 10000, 0.5, 0],
    ];
    for (const [k, n, p, want] of cases) close(robust.binomTest(k, n, p), want, 1e-12, 1e-300);
  });

  it('logGamma = scipy.special.gammaln on the positive axis', () => {
    const cases: [number, number][] = [[0.5, 0.5723649429247], [3, 0.6931471805599453], [10.5, 13.940625219403763], [1e5, 1051287.7089736569], [1e-3, 6.907178885383853]];
    for (const [x, want] of cases) close(robust.logGamma(x), want, 1e-14);
  });
});

/**
 * A linear classifier on R⁴: class 1 iff w·x > 0 with ‖w‖ = 1 (logits [0, w·x]). Under x + N(0, σ²I),
 * P(class 1) = Φ(w·x / σ), and the smoothed classifier's exact L2 radius is σ·Φ⁻¹(p_A) = |w·x|, the
 * distance to the hyperplane.
 */
const W = [0.6, -0.8, 0, 0];
function linear(): eg.nn.Sequential {
  const m = new nn.Sequential(new nn.Linear(4, 2));
  const state = { '0.weight': eg.tensor([[0, 0, 0, 0], W]), '0.bias': eg.tensor([0, 0]) };
  m.loadStateDict(state);
  eg.dispose(Object.values(state));
  return m.eval();
}
/** Points at signed distances `d` from the hyperplane (x = d·w plus a component along the hyperplane). */
function points(d: number[]): eg.Tensor {
  return eg.tensor(d.map((v) => [v * W[0] + 0.8 * 0.2, v * W[1] + 0.6 * 0.2, 0.5, -1]));
}

describe('certification of a linear classifier (closed form)', () => {
  it('p_A matches Φ(w·x/σ) within sampling error; the radius is σ·Φ⁻¹(p_lower) with Clopper–Pearson p_lower, and below the true distance', () => {
    const model = linear();
    const sigma = 0.5;
    const dist = [0.3, 0.1, 0.6, -0.3, -0.05];
    const x = points(dist);
    const smoothed = new robust.SmoothedClassifier(model, { sigma, numClasses: 2 });
    const n = 20_000;
    const alpha = 0.001;
    const r = smoothed.certify(x, { n0: 100, n, alpha, batchSize: 4096, seed: 11 });
    dist.forEach((d, i) => {
      const pA = robust.normalCdf(Math.abs(d) / sigma);
      const se = Math.sqrt((pA * (1 - pA)) / n);
      // Near the boundary the n0 = 100 selection samples may pick the other class (p = 1 − p_A).
      const err = Math.abs(d) < 0.1 ? Math.min(Math.abs(r.count[i] / n - pA), Math.abs(r.count[i] / n - (1 - pA))) : Math.abs(r.count[i] / n - pA);
      expect(err, `p_A of example ${i}`).toBeLessThan(4.5 * se);
      // p_lower is the α-quantile of Beta(k, n − k + 1): I_{p_lower}(k, n − k + 1) = α.
      close(robust.betaInc(r.count[i], n - r.count[i] + 1, r.pLower[i]), alpha, 1e-9);
      expect(r.pLower[i]).toBe(robust.proportionConfint(r.count[i], n, 2 * alpha)[0]);
      if (r.pLower[i] >= 0.5) {
        expect(r.prediction[i]).toBe(d > 0 ? 1 : 0);
        expect(r.radius[i]).toBe(sigma * robust.normalQuantile(r.pLower[i]));
        // Sound (below the exact radius |d|) and tight (n = 20,000 loses little).
        expect(r.radius[i]).toBeLessThanOrEqual(Math.abs(d));
        expect(r.radius[i]).toBeGreaterThan(Math.abs(d) - 0.04);
      } else {
        expect(r.prediction[i]).toBe(robust.ABSTAIN);
        expect(r.radius[i]).toBe(0);
      }
    });
    // Far enough examples certify; the one 0.05 from the boundary may abstain but the others may not.
    expect(Array.from(r.prediction.slice(0, 4))).toEqual([1, 1, 1, 0]);
    // Certified accuracy counts correct certificates with radius ≥ r.
    const labels = dist.map((d) => (d > 0 ? 1 : 0));
    const acc = robust.certifiedAccuracy(r, labels, [0, 0.2, 0.5, 0.7]);
    const want = [0, 0.2, 0.5, 0.7].map((t) => labels.filter((l, i) => r.prediction[i] === l && r.radius[i] >= t).length / 5);
    expect(acc).toEqual(want);
    expect(acc[2]).toBe(0.2); // only the example at 0.6 is certified beyond 0.5
    // The chart plots the same numbers (an eg.viz line chart: the spec's data rows).
    const chart = robust.certifiedAccuracyChart([{ name: 'σ = 0.5', results: r, labels }], { radii: [0, 0.2, 0.5, 0.7] });
    const rows = (chart.spec.data as { values: { x: number; y: number; series: string }[] }).values;
    expect(rows.map((v) => v.y)).toEqual(acc);
    expect(rows.map((v) => v.x)).toEqual([0, 0.2, 0.5, 0.7]);
    eg.dispose([x]);
    model.dispose();
  });

  it('abstains when the two classes tie (points on the hyperplane), in predict and certify', () => {
    const model = linear();
    const x = points([0, 0, 0, 0]);
    const smoothed = new robust.SmoothedClassifier(model, { sigma: 0.25, numClasses: 2 });
    for (const seed of [1, 2, 3]) {
      const r = smoothed.certify(x, { n0: 100, n: 2000, alpha: 0.001, seed });
      expect(Array.from(r.prediction)).toEqual([-1, -1, -1, -1]);
      expect(Array.from(r.radius)).toEqual([0, 0, 0, 0]);
      expect(Array.from(smoothed.predict(x, { n: 2000, alpha: 0.001, seed }))).toEqual([-1, -1, -1, -1]);
    }
    // Off the hyperplane, predict returns the class.
    const far = points([1, -1]);
    expect(Array.from(smoothed.predict(far, { n: 200, alpha: 0.001, seed: 4 }))).toEqual([1, 0]);
    eg.dispose([x, far]);
    model.dispose();
  });

  it('the radius grows with n and in proportion to σ: all samples agree, so p_lower = α^(1/n) and r = σ·Φ⁻¹(α^(1/n))', () => {
    const model = linear();
    const x = points([8]);
    const alpha = 0.001;
    const radii: number[][] = [];
    for (const sigma of [0.25, 0.5]) {
      const smoothed = new robust.SmoothedClassifier(model, { sigma, numClasses: 2 });
      radii.push([100, 1000, 10_000].map((n) => {
        const r = smoothed.certify(x, { n0: 10, n, alpha, batchSize: 5000, seed: 3 });
        expect(r.count[0]).toBe(n);
        close(r.pLower[0], Math.pow(alpha, 1 / n), 1e-13);
        close(r.radius[0], sigma * robust.normalQuantile(Math.pow(alpha, 1 / n)), 1e-12);
        return r.radius[0];
      }));
    }
    for (const row of radii) expect(row[0] < row[1] && row[1] < row[2]).toBe(true);
    radii[0].forEach((r, j) => close(radii[1][j] / r, 2, 1e-12));
    eg.dispose([x]);
    model.dispose();
  });
});

describe('Gaussian noise augmentation through fit', () => {
  it('trains on x + N(0, σ²) with per-step seeds: reproducible, and the noise has the asked σ', async () => {
    const x = eg.rand([64, 6], 0, 1, { seed: 5 });
    const y = eg.randint([64], 0, 3, { seed: 6 });
    const noise: number[][] = [];
    const run = async (sigma: number, seed: number) => {
      const m = new nn.Sequential(new nn.Linear(6, 8, { seed: 1 }), new nn.ReLU(), new nn.Linear(8, 3, { seed: 2 }));
      const optimizer = new eg.optim.SGD(m.parameters(), { lr: 0.1 });
      m.compile({ optimizer, loss: (l, t) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true }) });
      const inner: eg.train.TrainStep = (s) => {
        noise.push(Array.from(eg.tidy(() => s.x.sub(x.slice([s.step % 2 === 0 ? 0 : 32, 0], [s.step % 2 === 0 ? 32 : 64, 6])).dataSync())));
        return eg.train.standardStep(s);
      };
      await m.fit(x, y, { epochs: 2, batchSize: 32, shuffle: false, verbose: 0, trainStep: robust.noiseAugmentationStep({ sigma, seed, inner }) });
      const w = Array.from(eg.tidy(() => m.getModule('2').stateDict().weight.dataSync()));
      m.dispose();
      optimizer.dispose();
      return w;
    };
    const a = await run(0.5, 9);
    const noiseA = noise.splice(0);
    const b = await run(0.5, 9);
    const noiseB = noise.splice(0);
    const c = await run(0.5, 10);
    noise.length = 0;
    expect(b).toEqual(a);
    expect(noiseB).toEqual(noiseA);
    expect(c).not.toEqual(a);
    expect(noiseA.length).toBe(4);
    expect(noiseA[1]).not.toEqual(noiseA[0]); // a fresh draw per step
    const all = noiseA.flat();
    const mean = all.reduce((s, v) => s + v, 0) / all.length;
    const sd = Math.sqrt(all.reduce((s, v) => s + (v - mean) ** 2, 0) / all.length);
    expect(Math.abs(mean)).toBeLessThan(0.1); // 768 draws: SE of the mean 0.018
    expect(Math.abs(sd - 0.5)).toBeLessThan(0.05);
    eg.dispose([x, y]);
  });
});

describe('noise augmentation makes smoothing work', () => {
  it('on the digits, a model trained with noiseAugmentationStep certifies far more test digits at radius 0.5 than one trained on clean inputs', async () => {
    const d = await eg.loadDigits();
    const nTrain = 1200;
    const nTest = 60;
    const scaled = d.images.map((v) => v / 16);
    const x = eg.tensor(scaled.slice(0, nTrain * 64), [nTrain, 64]);
    const y = eg.tensor(d.labels.slice(0, nTrain), [nTrain], 'int32');
    const xTest = eg.tensor(scaled.slice((d.n - nTest) * 64), [nTest, 64]);
    const yTest = d.labels.slice(d.n - nTest);
    const sigma = 0.5;
    const certified: number[] = [];
    for (const noisy of [false, true]) {
      const m = new nn.Sequential(new nn.Linear(64, 64, { seed: 1 }), new nn.ReLU(), new nn.Linear(64, 10, { seed: 2 }));
      const optimizer = new eg.optim.Adam(m.parameters(), { lr: 0.01 });
      m.compile({ optimizer, loss: (l, t) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true }) });
      await m.fit(x, y, { epochs: 15, batchSize: 100, seed: 3, verbose: 0, trainStep: noisy ? robust.noiseAugmentationStep({ sigma, seed: 4 }) : undefined });
      const r = new robust.SmoothedClassifier(m, { sigma, numClasses: 10 }).certify(xTest, { n0: 50, n: 500, alpha: 0.001, seed: 5 });
      certified.push(robust.certifiedAccuracy(r, yTest, [0.5])[0]);
      m.dispose();
      optimizer.dispose();
    }
    // Certified accuracy at L2 radius 0.5 on 60 test digits, measured: 1.7% (clean training), 30% (noise augmentation).
    expect(certified[1]).toBeGreaterThan(certified[0] + 0.15);
    eg.dispose([x, y, xTest]);
  });
});

describe('seeds, threads, runtimes, memory', () => {
  /** A stored digest both runtimes must reproduce (set from a Node run; UPDATE_FIXTURES prints it). */
  const DIGEST = 'eb366d7b';

  it('seeded certify/predict/sampleCounts are bitwise identical on 1 and 2 threads and match the stored digest', () => {
    const model = cnn();
    const x = eg.rand([3, 8, 8, 1], 0, 1, { seed: 21 });
    const smoothed = new robust.SmoothedClassifier(model, { sigma: 0.5, numClasses: 5 });
    const words = sameBitsOnOneAndTwoThreads(() => {
      const r = smoothed.certify(x, { n0: 40, n: 300, alpha: 0.01, batchSize: 128, seed: 7 });
      const counts = smoothed.sampleCounts(x, 200, { batchSize: 64, seed: 8 });
      const pred = smoothed.predict(x, { n: 150, alpha: 0.05, batchSize: 100, seed: 9 });
      return [...r.prediction, ...r.count, ...new Uint32Array(r.radius.buffer), ...new Uint32Array(r.pLower.buffer), ...counts, ...pred];
    });
    const d = fnv1a(words);
    const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
    if (env?.UPDATE_FIXTURES) console.log(`robust-smoothing digest: ${d}`);
    expect(d).toBe(DIGEST);
    eg.dispose([x]);
    model.dispose();
  });

  it('100 calls leave tensor memory flat; a Module keeps its training mode', () => {
    const model = cnn().train();
    const x = eg.rand([2, 8, 8, 1], 0, 1, { seed: 22 });
    const smoothed = new robust.SmoothedClassifier(model, { sigma: 0.25, numClasses: 5 });
    const step = robust.noiseAugmentationStep({ sigma: 0.3, seed: 1 });
    const opt = new eg.optim.SGD(model.parameters(), { lr: 0 });
    const y = eg.tensor([0, 1], [2], 'int32');
    const loss = (l: eg.Tensor, t: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true });
    expectFlatOver100Calls([
      ['certify', () => smoothed.certify(x, { n0: 8, n: 30, batchSize: 16, seed: 1 })],
      ['predict', () => smoothed.predict(x, { n: 30, seed: 2 })],
      ['noiseAugmentationStep', () => eg.tidy(() => {
        step({ model, optimizer: opt, loss, x, y, params: model.parameters(), epoch: 0, step: 0, epochs: 1, batchesPerEpoch: 1 });
      })],
    ]);
    expect(model.training).toBe(true);
    opt.dispose();
    eg.dispose([x, y]);
    model.dispose();
  });
});

describe('typed errors', () => {
  it('bad constructor, method and step options are EdgegradErrors naming the problem', () => {
    const model = linear();
    const x = points([0.5]);
    const ok = new robust.SmoothedClassifier(model, { sigma: 0.5, numClasses: 2 });
    const calls: [string, (v: unknown) => unknown][] = [
      ['SmoothedClassifier base', (v) => new robust.SmoothedClassifier(v as eg.nn.Module, { sigma: 0.5, numClasses: 2 })],
      ['SmoothedClassifier options', (v) => new robust.SmoothedClassifier(model, v as eg.robust.SmoothedClassifierOptions)],
      ['sigma', (v) => new robust.SmoothedClassifier(model, { sigma: v as number, numClasses: 2 })],
      ['numClasses', (v) => new robust.SmoothedClassifier(model, { sigma: 0.5, numClasses: v as number })],
      ['certify x', (v) => ok.certify(v as eg.Tensor, { n: 10 })],
      ['predict x', (v) => ok.predict(v as eg.Tensor, { n: 10 })],
      ['noiseAugmentationStep options', (v) => robust.noiseAugmentationStep(v as eg.robust.NoiseAugmentationOptions)],
      ['certifiedAccuracy results', (v) => robust.certifiedAccuracy(v as eg.robust.CertifyResult, [0], [0])],
      ['certifiedAccuracyChart series', (v) => robust.certifiedAccuracyChart(v as eg.robust.CertifiedAccuracySeries[])],
      ['certifiedAccuracyChart results', (v) => robust.certifiedAccuracyChart([{ name: 'a', results: v as eg.robust.CertifyResult, labels: [0] }])],
    ];
    // The statistics, each argument in turn ('num' names where 5 is a valid value).
    calls.push(
      ['normalCdf num', (v) => robust.normalCdf(v as number)],
      ['normalQuantile', (v) => robust.normalQuantile(v as number)],
      ['logGamma num', (v) => robust.logGamma(v as number)],
      ['betaInc a num', (v) => robust.betaInc(v as number, 2, 0.5)],
      ['betaInc b num', (v) => robust.betaInc(2, v as number, 0.5)],
      ['betaInc x', (v) => robust.betaInc(2, 2, v as number)],
      ['betaQuantile q', (v) => robust.betaQuantile(v as number, 2, 2)],
      ['betaQuantile a num', (v) => robust.betaQuantile(0.5, v as number, 2)],
      ['proportionConfint count num', (v) => robust.proportionConfint(v as number, 10)],
      ['proportionConfint nobs num', (v) => robust.proportionConfint(3, v as number)],
      ['proportionConfint alpha', (v) => robust.proportionConfint(3, 10, v === undefined ? null as unknown as number : v as number)],
      ['binomTest k num', (v) => robust.binomTest(v as number, 10)],
      ['binomTest n num', (v) => robust.binomTest(3, v as number)],
      ['binomTest p', (v) => robust.binomTest(3, 10, v === undefined ? null as unknown as number : v as number)],
    );
    for (const key of ['n0', 'n', 'alpha', 'batchSize', 'seed']) calls.push([`certify ${key}`, (v) => (v === undefined ? ok.certify(x, { n: 10, [key]: null }) : ok.certify(x, { n: 10, [key]: v }))]);
    for (const key of ['n', 'alpha', 'batchSize', 'seed']) calls.push([`predict ${key}`, (v) => (v === undefined ? ok.predict(x, { n: 10, [key]: null }) : ok.predict(x, { n: 10, [key]: v }))]);
    // 5 is a valid σ, class count, sample count or seed.
    const intKey = /^(sigma|numClasses)$| (n0|n|batchSize|seed|num)$/;
    for (const [name, call] of calls) {
      for (const [label, make] of BAD_ARGUMENTS) {
        if (label === '5' && intKey.test(name)) continue;
        const v = make();
        expect(() => call(v), `${name} = ${label}`).toThrow(eg.EdgegradError);
      }
    }
    const bad: [string, () => unknown, RegExp][] = [
      ['sigma 0', () => new robust.SmoothedClassifier(model, { sigma: 0, numClasses: 2 }), /sigma must be > 0/],
      ['one class', () => new robust.SmoothedClassifier(model, { sigma: 1, numClasses: 1 }), /numClasses/],
      ['alpha 0.5', () => ok.certify(x, { alpha: 0.5, n: 10 }), /alpha must be in \(0, 0.5\)/],
      ['n 0', () => ok.certify(x, { n: 0 }), /n must be between 1/],
      ['unknown option', () => ok.certify(x, { m: 3 } as eg.robust.CertifyOptions), /unknown option 'm'/],
      ['NaN input', () => eg.tidy(() => ok.certify(eg.tensor([[NaN, 0, 0, 0]]), { n: 10 })), /NaN or infinite/],
      ['int32 input', () => eg.tidy(() => ok.predict(eg.tensor([[1, 0, 0, 0]], [1, 4], 'int32'), { n: 10 })), /int32/],
      ['scalar input', () => eg.tidy(() => ok.predict(eg.tensor(1), { n: 10 })), /batches/],
      ['wrong numClasses', () => new robust.SmoothedClassifier(model, { sigma: 1, numClasses: 3 }).certify(x, { n: 10 }), /expected class scores \[100, 3\] \(numClasses 3\)/],
      ['NaN scores', () => new robust.SmoothedClassifier((t: eg.Tensor) => t.slice([0, 0], [t.shape[0], 2]).mul(Infinity), { sigma: 1, numClasses: 2 }).predict(x, { n: 10 }), /NaN or infinite scores/],
      ['not a tensor', () => new robust.SmoothedClassifier((() => 3) as unknown as (t: eg.Tensor) => eg.Tensor, { sigma: 1, numClasses: 2 }).predict(x, { n: 10 }), /not a Tensor/],
      ['no sigma', () => robust.noiseAugmentationStep({} as eg.robust.NoiseAugmentationOptions), /needs \{ sigma \}/],
      ['labels length', () => robust.certifiedAccuracy({ prediction: new Int32Array(2), radius: new Float64Array(2) }, [0], [0]), /1 labels for 2 results/],
      ['negative radius', () => robust.certifiedAccuracy({ prediction: new Int32Array(1), radius: new Float64Array(1) }, [0], [-1]), /radii\[0\] must be >= 0/],
      ['betaQuantile q', () => robust.betaQuantile(2, 1, 1), /q must be in \[0, 1\]/],
      ['binomTest k > n', () => robust.binomTest(5, 3), /k must be between 0 and 3/],
    ];
    for (const [name, f, msg] of bad) {
      expect(f, name).toThrow(eg.EdgegradError);
      expect(f, name).toThrow(msg);
    }
    const before = eg.memory().numTensors;
    expect(() => ok.certify(x, { n: 0 })).toThrow(eg.ArgumentError);
    expect(eg.memory().numTensors).toBe(before);
    eg.dispose([x]);
    model.dispose();
  });
});
