/**
 * Issue 16 §1 (validate/fix) and §4/§6 (auditing): `eg.privacy.validate`/`fix`, membership inference
 * (loss threshold and shadow models) and the one-run audit with its ε lower bound — on tiny models
 * that memorise random labels, models that never saw the members, and a mechanism of known ε.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, expectEachTestFreesItsTensors } from './helpers.js';
import { bits, fnv1a } from './explain-fixtures.js';

const { nn, privacy } = eg;

beforeAll(async () => {
  await setup();
});

const ce = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });

/** `n` random points in 8-D with random labels of 4 classes: only memorisation fits them. */
function randomData(n: number, seed: number): { x: eg.Tensor; y: eg.Tensor } {
  return { x: eg.randn([n, 8], 0, 1, { seed }), y: eg.randint([n], 0, 4, { seed: seed + 1 }) };
}

/** An MLP trained (with `fit`) long enough on `d` to memorise it. */
async function memorise(d: { x: eg.Tensor; y: eg.Tensor }, seed = 1, epochs = 150): Promise<eg.nn.Sequential> {
  const m = new nn.Sequential(new nn.Linear(8, 64, { seed }), new nn.ReLU(), new nn.Linear(64, 4, { seed: seed + 1 }));
  const optimizer = new eg.optim.Adam(m.parameters(), { lr: 0.02 });
  m.compile({ optimizer, loss: ce });
  await m.fit(d.x, d.y, { epochs, batchSize: 32, seed, verbose: 0 });
  optimizer.dispose();
  return m;
}

const free = (...ds: { x: eg.Tensor; y: eg.Tensor }[]) => ds.forEach((d) => eg.dispose([d.x, d.y]));

expectEachTestFreesItsTensors();

describe('privacy.validate / fix', () => {
  it('lists every BatchNorm with its path, and layers without a per-example rule', () => {
    const m = new nn.Sequential(
      new nn.Sequential(new nn.Conv2d(1, 4, 3, { seed: 1 }), new nn.BatchNorm2d(4), new nn.ReLU()),
      new nn.Flatten(), new nn.Linear(16, 8, { seed: 2 }), new nn.BatchNorm1d(8), new nn.Linear(8, 2, { seed: 3 }),
    );
    const problems = privacy.validate(m);
    expect(problems.map((p) => [p.path, p.layer])).toEqual([['0.1', 'BatchNorm2d'], ['3', 'BatchNorm1d']]);
    expect(problems[0].reason).toMatch(/mixes examples/);
    const norms = new nn.Sequential(new nn.Linear(3, 3), new nn.LayerNorm(3), new nn.GroupNorm(1, 3));
    expect(privacy.validate(norms)).toEqual([]);
    // A layer the engine has no per-example rule for is listed while it is trainable, not once frozen.
    // (Recurrent layers have rules; a custom layer with its own parameter has none.)
    const recurrent = new nn.Sequential(new nn.LSTM(3, 4, { seed: 1 }), new nn.GRU(4, 4, { resetAfter: false, seed: 2 }));
    expect(privacy.validate(recurrent)).toEqual([]);
    class Scale extends nn.Module {
      constructor() {
        super();
        this.registerParameter('scale', eg.full([4], 1.5));
      }
      forward(x: eg.Tensor): eg.Tensor {
        return x.mul(this.param('scale'));
      }
    }
    const lstm = new nn.Sequential(new nn.LSTM(3, 4, { seed: 1 }), new Scale());
    expect(privacy.validate(lstm).map((p) => [p.path, p.layer])).toEqual([['1', 'Scale']]);
    expect(privacy.validate(lstm)[0].reason).toMatch(/no per-example gradient rule for Scale/);
    lstm.freeze();
    expect(privacy.validate(lstm)).toEqual([]);
    // A frozen BatchNorm still mixes examples through its batch statistics.
    m.freeze();
    expect(privacy.validate(m)).toHaveLength(2);
    for (const model of [m, lstm, norms, recurrent]) model.dispose();
  });

  it('fix replaces BatchNorm by GroupNorm in place (Opacus\'s group count), and the model then trains', async () => {
    const m = new nn.Sequential(
      new nn.Conv2d(1, 48, 3, { seed: 1 }), new nn.BatchNorm2d(48, { eps: 1e-3 }), new nn.ReLU(), new nn.Flatten(),
      new nn.Linear(48 * 4, 6, { seed: 2 }), new nn.BatchNorm1d(6, { affine: false }), new nn.ReLU(), new nn.Linear(6, 3, { seed: 3 }),
    );
    const live = eg.memory().numTensors;
    expect(privacy.fix(m)).toBe(m);
    // The BatchNorms' parameters and running statistics (4 + 2 tensors) are freed; GroupNorm(24, 48) has 2.
    expect(eg.memory().numTensors).toBe(live - 6 + 2);
    const g1 = m.getModule('1') as eg.nn.GroupNorm;
    const g5 = m.getModule('5') as eg.nn.GroupNorm;
    expect([g1.className, g1.numGroups, g1.numChannels, g1.eps, g1.affine]).toEqual(['GroupNorm', 24, 48, 1e-3, true]);
    // BatchNorm1d's [N, C] input has no positions: one group (C groups would output zeros).
    expect([g5.numGroups, g5.numChannels, g5.affine]).toEqual([1, 6, false]);
    expect(privacy.validate(m)).toEqual([]);
        const y = eg.randint([30], 0, 3, { seed: 5 });
    const x = eg.tidy(() => {
      // Class c lights up row c of the image.
      const patterns = eg.tensor([0, 1, 2].flatMap((c) => [0, 1, 2, 3].flatMap((r) => Array(4).fill(r === c ? 1 : 0))), [3, 4, 4, 1]);
      return eg.rand([30, 4, 4, 1], 0, 0.3, { seed: 4 }).add(patterns.indexSelect(0, y));
    });
    const optimizer = new eg.optim.Adam(m.parameters(), { lr: 0.01 });
    m.compile({ optimizer, loss: ce });
    const h = await m.fit(x, y, { epochs: 15, batchSize: 10, seed: 1, verbose: 0 });
    optimizer.dispose();
    expect(h.history.loss[14]).toBeLessThan(h.history.loss[0] * 0.8);
    // It saves and loads as fixed.
    const art = await eg.saveModel(m);
    const { model: back } = await eg.loadModel({ json: JSON.stringify(art.json), weights: art.weights });
    expect(privacy.validate(back)).toEqual([]);
    eg.dispose([x, y]);
    m.dispose();
    back.dispose();
  });

  it('fix works on a Graph model, which then saves and loads with its GroupNorm', async () => {
    const { graph } = nn;
    const inp = graph.input('x');
    const h = graph.call(new nn.BatchNorm2d(8), graph.call(new nn.Conv2d(1, 8, 3, { seed: 1 }), inp));
    const g = new nn.Graph({ inputs: inp, outputs: graph.call(new nn.Linear(8 * 4, 2, { seed: 2 }), graph.call(new nn.Flatten(), h)) });
    expect(privacy.validate(g).map((p) => p.layer)).toEqual(['BatchNorm2d']);
    privacy.fix(g);
    expect(privacy.validate(g)).toEqual([]);
    const x = eg.rand([3, 4, 4, 1], 0, 1, { seed: 3 });
    const art = await eg.saveModel(g);
    const { model: back } = await eg.loadModel({ json: JSON.stringify(art.json), weights: art.weights });
    expect([...back.namedModules()].some(([, m]) => m instanceof nn.GroupNorm)).toBe(true);
    eg.tidy(() => {
      expect(bits(back.forward(x))).toEqual(bits(g.forward(x)));
    });
    x.dispose();
    g.dispose();
    back.dispose();
  });

  it('fix updates a custom module\'s own field, and returns a GroupNorm for a bare BatchNorm', () => {
    class Block extends nn.Module {
      readonly lin = this.registerModule('lin', new nn.Linear(4, 64, { seed: 1 }));
      readonly bn = this.registerModule('bn', new nn.BatchNorm1d(64));
      forward(x: eg.Tensor) {
        return this.bn.forward(this.lin.forward(x));
      }
    }
    const b = privacy.fix(new Block()) as Block;
    expect(b.bn).toBeInstanceOf(nn.GroupNorm);
    expect(b.getModule('bn')).toBe(b.bn);
    expect((b.bn as unknown as eg.nn.GroupNorm).numGroups).toBe(1);
    // Each example's output no longer depends on the rest of the batch.
    eg.tidy(() => {
      const x = eg.randn([6, 4], 0, 1, { seed: 2 });
      expect(bits(b.forward(x).slice([2, 0], [3, 64]))).toEqual(bits(b.forward(x.slice([2, 0], [3, 4]))));
    });
    b.dispose();
    const bare = new nn.BatchNorm2d(64);
    const gn = privacy.fix(bare);
    expect(gn).toBeInstanceOf(nn.GroupNorm);
    expect((gn as eg.nn.GroupNorm).numGroups).toBe(32);
    expect(bare.parameters()).toEqual([]);
    gn.dispose();
  });
});

describe('membership inference', () => {
  it('rocCurve: AUC is P(member > non-member) + ½ P(tie), with TPR/FPR points from (0, 0) to (1, 1)', () => {
    const roc = privacy.rocCurve([3, 2, 1], [0.5, 2]);
    expect(roc.auc).toBeCloseTo(4.5 / 6, 12);
    expect(Array.from(roc.fpr)).toEqual([0, 0, 0.5, 0.5, 1]);
    expect(Array.from(roc.tpr)).toEqual([0, 1 / 3, 2 / 3, 1, 1]);
    expect(Array.from(roc.thresholds)).toEqual([Infinity, 3, 2, 1, 0.5]);
    expect(privacy.rocCurve([5, 6], [1, 2]).auc).toBe(1);
    expect(privacy.rocCurve([1], [1]).auc).toBe(0.5);
    expect(() => privacy.rocCurve([], [1])).toThrow(eg.ArgumentError);
    expect(() => privacy.rocCurve([NaN], [1])).toThrow(/not NaN/);
    expect(() => privacy.rocCurve([1, '2'] as never, [1])).toThrow(/entry 1 is "2"/);
    expect(privacy.rocCurve([Infinity, 1], [-Infinity, 1]).auc).toBe(0.875);
  });

  it('the loss attack ranks by the loss, without the float32 ties of a confident model\'s zero losses', async () => {
    const d = randomData(64, 3);
    const m = new nn.Sequential(new nn.Linear(8, 4, { seed: 2 }));
    eg.tidy(() => eg.noGrad(() => m.getModule('0').stateDict().weight.assign(m.getModule('0').stateDict().weight.mul(60))));
    const perExample = (p: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(p, y, { fromLogits: true, reduction: 'none' });
    const loss = eg.tidy(() => Array.from(perExample(m.forward(d.x), d.y).dataSync()));
    // Many losses round to exactly 0 in float32 ...
    expect(loss.filter((l) => l === 0).length).toBeGreaterThan(5);
    const r = await privacy.membershipInference(m, { members: d, nonMembers: d });
    const score = Array.from(r.scores.members);
    // ... the scores (log-odds of the true label) stay distinct, and order the examples as the loss does.
    expect(new Set(score).size).toBe(64);
    for (let i = 0; i < 64; i++) {
      for (let j = 0; j < 64; j++) if (loss[i] < loss[j]) expect(score[i]).toBeGreaterThan(score[j]);
    }
    // A per-example loss of one's own is used as given (negated).
    const own = await privacy.membershipInference(m, { members: d, nonMembers: d, loss: perExample });
    expect(Array.from(own.scores.members)).toEqual(loss.map((l) => -l));
    m.dispose();
    free(d);
  });

  it('the loss attack finds the members of a memorising model, and sees nothing in a model that never saw them', async () => {
    const members = randomData(48, 10);
    const nonMembers = randomData(48, 20);
    const model = await memorise(members);
    const r = await privacy.membershipInference(model, { members, nonMembers });
    expect(r.attack).toBe('loss');
    expect(r.auc).toBeGreaterThan(0.85);
    expect(r.advantage).toBeGreaterThan(0.5);
    expect(r.tprAtFpr.map((t) => t.fpr)).toEqual([0.001, 0.01]);
    // With 48 non-members an FPR of 1% allows no false positive: the TPR there is that of the top scores.
    expect(r.tprAtFpr[1].tpr).toBeGreaterThan(0.1);
    expect(r.scores.members).toHaveLength(48);
    expect(r.roc.fpr[r.roc.fpr.length - 1]).toBe(1);
    // Two sets the model never saw: no membership signal.
    const other = randomData(48, 30);
    const blind = await privacy.membershipInference(model, { members: other, nonMembers });
    expect(Math.abs(blind.auc - 0.5)).toBeLessThan(0.15);
    model.dispose();
    free(members, nonMembers, other);
  });

  it('the shadow-model attack learns membership from shadows trained like the target', async () => {
    const members = randomData(48, 10);
    const nonMembers = randomData(48, 20);
    const shadowData = randomData(96, 40);
    const model = await memorise(members);
    let trained = 0;
    const r = await privacy.membershipInference(model, {
      members, nonMembers, attack: 'shadow', seed: 3,
      shadow: { data: shadowData, numShadows: 2, attackEpochs: 60, train: (x, y, i) => (trained++, memorise({ x, y }, 100 + i)) },
    });
    expect(trained).toBe(2);
    expect(r.attack).toBe('shadow');
    expect(r.auc).toBeGreaterThan(0.8);
    model.dispose();
    free(members, nonMembers, shadowData);
  });

  it('scores are bitwise reproducible (stored digest, Node and Chromium), and repeated attacks leave memory flat', async () => {
    const members = randomData(24, 50);
    const nonMembers = randomData(24, 60);
    const shadowData = randomData(32, 70);
    const model = await memorise(members, 5, 40);
    const shadow = { data: shadowData, numShadows: 1, attackEpochs: 20, train: (x: eg.Tensor, y: eg.Tensor) => memorise({ x, y }, 9, 20) };
    const loss = await privacy.membershipInference(model, { members, nonMembers });
    const sh = await privacy.membershipInference(model, { members, nonMembers, attack: 'shadow', shadow });
    const words = [loss.scores.members, loss.scores.nonMembers, sh.scores.members, sh.scores.nonMembers].flatMap((a) => Array.from(new Uint32Array(a.buffer)));
    expect(fnv1a(words)).toBe('3aa19686');
    const before = eg.memory();
    for (let i = 0; i < 100; i++) await privacy.membershipInference(model, { members, nonMembers });
    await privacy.membershipInference(model, { members, nonMembers, attack: 'shadow', shadow });
    const after = eg.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
    model.dispose();
    free(members, nonMembers, shadowData);
  });

  it('refuses bad arguments with typed errors', async () => {
    const d = randomData(8, 1);
    const [y3, y8float] = [eg.zeros([3], 'int32'), eg.zeros([8])];
    const m = new nn.Sequential(new nn.Linear(8, 4, { seed: 1 }));
    const bad: [unknown, RegExp][] = [
      [{ members: d }, /nonMembers must be an object/],
      [{ members: d, nonMembers: { x: d.x, y: y3 } }, /x has 8 examples but y has 3 labels/],
      [{ members: d, nonMembers: d, attack: 'lira' }, /attack must be 'loss' or 'shadow'/],
      [{ members: d, nonMembers: d, attack: 'shadow' }, /needs shadow: \{ data, train \}/],
      [{ members: d, nonMembers: d, fprs: [2] }, /fprs must be an array of rates/],
      [{ members: d, nonMembers: { x: d.x, y: y8float } }, /int32 labels/],
      [{ members: d, nonMembers: d, loss: () => eg.zeros([3]) }, /one value per example \(8\)/],
      [{ members: d, nonMembers: d, loss: () => eg.full([8], NaN) }, /NaN for example 0/],
    ];
    for (const [o, msg] of bad) {
      await expect(privacy.membershipInference(m, o as never)).rejects.toThrow(eg.EdgegradError);
      await expect(privacy.membershipInference(m, o as never)).rejects.toThrow(msg);
    }
    await expect(privacy.membershipInference({} as never, { members: d, nonMembers: d })).rejects.toThrow(eg.ArgumentError);
    await expect(privacy.membershipInference(m, { members: d, nonMembers: d, attack: 'shadow', shadow: { data: d, train: () => 5 as never } })).rejects.toThrow(/must return a Module/);
    eg.dispose([y3, y8float]);
    m.dispose();
    free(d);
  });
});

describe('one-run audit (Steinke, Nasr & Jagielski 2023)', () => {
  it('oneRunEpsilonBound matches an independent computation (scipy.stats.binom, the paper\'s Appendix D)', () => {
    // [m, r, v, delta, beta, eps]: get_eps_audit from the paper's Appendix D run with SciPy 1.17 (bisection to 1e-12).
    const ref: [number, number, number, number, number, number][] = [
      [100, 20, 20, 0, 0.05, 1.8227156065022427],
      [1000, 100, 90, 1e-5, 0.05, 1.6261434806956458],
      [1000, 1000, 1000, 1e-5, 0.05, 5.7822831353933],
      [1000, 200, 150, 0, 0.05, 0.8213962430636457],
      [10000, 1000, 700, 1e-5, 0.05, 0.7292532390256383],
      [1000, 100, 55, 1e-5, 0.05, 0],
      [50, 10, 10, 1e-5, 0.01, 0.531577448770804],
      [100000, 2000, 1500, 1e-5, 0.05, 0.994340665864911],
    ];
    for (const [m, r, v, delta, beta, eps] of ref) {
      expect(Math.abs(privacy.oneRunEpsilonBound(m, r, v, { delta, beta }) - eps), `${[m, r, v, delta, beta]}`).toBeLessThan(1e-7);
    }
    // More right guesses, more confidence (β up) or a smaller δ never lower the bound.
    let last = -1;
    for (let v = 100; v <= 200; v += 10) {
      const e = privacy.oneRunEpsilonBound(1000, 200, v);
      expect(e).toBeGreaterThanOrEqual(last);
      last = e;
    }
    expect(privacy.oneRunEpsilonBound(1000, 200, 170, { beta: 0.2 })).toBeGreaterThan(privacy.oneRunEpsilonBound(1000, 200, 170, { beta: 0.01 }));
    expect(privacy.oneRunEpsilonBound(1000, 200, 170, { delta: 0 })).toBeGreaterThan(privacy.oneRunEpsilonBound(1000, 200, 170, { delta: 1e-3 }));
    expect(() => privacy.oneRunEpsilonBound(10, 11, 5)).toThrow(eg.ArgumentError);
    expect(() => privacy.oneRunEpsilonBound(10, 5, 6)).toThrow(eg.ArgumentError);
    expect(() => privacy.oneRunEpsilonBound(10, 5, 5, { beta: 1 })).toThrow(/beta must be in \(0, 1\)/);
    expect(() => privacy.oneRunEpsilonBound(10, 5, 5, { delta: -1 })).toThrow(/delta must be in \[0, 1\]/);
  });

  it('never exceeds the ε of a mechanism with a known guarantee (randomized response on membership)', async () => {
    // Each canary's score is its inclusion bit, flipped with probability 1/(1+e^ε₀): exactly ε₀-DP per canary.
    const eps0 = 1;
    const m = 2000;
    const canaries = { x: eg.zeros([m, 1]), y: eg.zeros([m], 'int32') };
    const bounds: number[] = [];
    for (const seed of [1, 2, 3]) {
      let drawn: boolean[] = [];
      const r = await privacy.oneRunAudit({
        canaries, seed, kPositive: 400, kNegative: 400, delta: 0,
        train: ({ mask }) => ((drawn = mask), new nn.Sequential()),
        score: () => eg.tidy(() => {
          const keep = Array.from(eg.rand([m], 0, 1, { seed: seed + 100 }).dataSync(), (u) => u < Math.exp(eps0) / (1 + Math.exp(eps0)));
          return drawn.map((inc, i) => ((inc === keep[i]) ? 1 : 0) + 1e-3 * ((i * 7919) % 1000) / 1000);
        }),
      });
      expect(r.mask).toEqual(drawn);
      expect(r.guesses).toBe(800);
      bounds.push(r.epsilon);
    }
    for (const b of bounds) {
      expect(b).toBeLessThanOrEqual(eps0);
      expect(b).toBeGreaterThan(0.4);
    }
    eg.dispose([canaries.x, canaries.y]);
  });

  it('is clearly above 0 for a model that memorises its canaries, and 0 when the guesses carry no information', async () => {
    const base = randomData(64, 80);
    const canaries = randomData(128, 90);
    const train = async ({ x, y }: { x: eg.Tensor; y: eg.Tensor }) => {
      const all = { x: eg.concat([base.x, x]), y: eg.concat([base.y, y]) };
      try {
        return await memorise(all, 3, 200);
      } finally {
        free(all);
      }
    };
    // An excluded canary whose random label the model happens to predict also has a tiny loss, so
    // only the high-loss end is telling: guess "excluded" for the 32 highest losses.
    const r = await privacy.oneRunAudit({ canaries, train, seed: 7, kPositive: 0, kNegative: 32 });
    expect(r.correct).toBeGreaterThanOrEqual(31);
    expect(r.epsilon).toBeGreaterThan(1);
    expect([r.m, r.guesses, r.delta, r.beta]).toEqual([128, 32, 1e-5, 0.05]);
    expect(r.model).toBeInstanceOf(nn.Module);
    r.model.dispose();
    // A model trained without the canaries: its guesses are coin flips.
    const blind = await memorise(base, 3, 60);
    const r0 = await privacy.oneRunAudit({ canaries, seed: 7, train: () => blind });
    expect(r0.epsilon).toBeLessThan(0.5);
    expect(r0.model).toBe(blind);
    blind.dispose();
    free(base, canaries);
  });

  it('draws the same canaries for a seed in every runtime, leaves memory flat, and refuses bad arguments', async () => {
    const canaries = randomData(40, 5);
    const model = new nn.Sequential(new nn.Linear(8, 4, { seed: 1 }));
    const r = await privacy.oneRunAudit({ canaries, seed: 11, train: () => model });
    expect(fnv1a([...r.mask.map(Number), ...Array.from(new Uint32Array(r.scores.buffer))])).toBe('8385e96c');
    const before = eg.memory();
    for (let i = 0; i < 100; i++) await privacy.oneRunAudit({ canaries, seed: i, train: () => model });
    expect(eg.memory().numTensors).toBe(before.numTensors);
    expect(eg.memory().numBytes).toBe(before.numBytes);
    const bad: [unknown, RegExp][] = [
      [{ canaries }, /train must be a function/],
      [{ canaries, train: () => model, kPositive: 30, kNegative: 30 }, /must not exceed the 40 canaries/],
      [{ canaries, train: () => model, beta: 0 }, /beta must be in \(0, 1\)/],
      [{ canaries, train: () => null }, /train must return the trained Module/],
      [{ canaries, train: () => model, score: () => [1, 2] }, /one value per example \(40\)/],
      [{ canaries: { x: canaries.x }, train: () => model }, /canaries.y must be a Tensor/],
    ];
    for (const [o, msg] of bad) await expect(privacy.oneRunAudit(o as never)).rejects.toThrow(msg);
    await expect(privacy.oneRunAudit(null as never)).rejects.toThrow(eg.ArgumentError);
    model.dispose();
    free(canaries);
  });
});

describe('auditing DP-SGD (PrivacyEngine)', () => {
  /** The memorising MLP's recipe, trained with DP-SGD (σ, C = 1, Poisson batches of 16 expected); returns it and ε(1e-5). */
  async function trainPrivately(d: { x: eg.Tensor; y: eg.Tensor }, sigma: number, epochs = 30): Promise<{ model: eg.nn.Sequential; epsilon: number }> {
    const model = new nn.Sequential(new nn.Linear(8, 64, { seed: 1 }), new nn.ReLU(), new nn.Linear(64, 4, { seed: 2 }));
    const optimizer = new eg.optim.Adam(model.parameters(), { lr: 0.02 });
    const engine = new privacy.PrivacyEngine({ accountant: 'rdp' });
    const p = engine.makePrivate({ model, optimizer, data: [d.x, d.y], batchSize: 16, noiseMultiplier: sigma, maxGradNorm: 1, seed: 3 });
    model.compile({ optimizer, loss: ce });
    await model.fit(p.data, { epochs, trainStep: p.trainStep, callbacks: [p.callback], verbose: 0 });
    optimizer.dispose();
    return { model, epsilon: engine.getEpsilon(1e-5) };
  }

  it('DP-SGD pulls the membership-inference AUC towards 0.5', async () => {
    const members = randomData(64, 110);
    const nonMembers = randomData(64, 120);
    const open = await memorise(members);
    const dp = await trainPrivately(members, 4);
    const aucOpen = (await privacy.membershipInference(open, { members, nonMembers })).auc;
    const aucDp = (await privacy.membershipInference(dp.model, { members, nonMembers })).auc;
    expect(aucOpen).toBeGreaterThan(0.85);
    expect(Math.abs(aucDp - 0.5)).toBeLessThan(Math.abs(aucOpen - 0.5));
    expect(aucOpen - aucDp).toBeGreaterThan(0.1);
    expect(dp.epsilon).toBeLessThan(4);
    open.dispose();
    dp.model.dispose();
    free(members, nonMembers);
  });

  it('the one-run audit of a DP-SGD run stays below the accountant\'s ε', async () => {
    const base = randomData(64, 130);
    const canaries = randomData(128, 140);
    let epsilon = Infinity;
    const r = await privacy.oneRunAudit({
      canaries, seed: 5, kPositive: 0, kNegative: 32,
      train: async ({ x, y }) => {
        const all = { x: eg.concat([base.x, x]), y: eg.concat([base.y, y]) };
        const run = await trainPrivately(all, 1, 20);
        free(all);
        epsilon = run.epsilon;
        return run.model;
      },
    });
    expect(Number.isFinite(epsilon)).toBe(true);
    expect(r.epsilon).toBeLessThanOrEqual(epsilon);
    r.model.dispose();
    free(base, canaries);
  });
});
