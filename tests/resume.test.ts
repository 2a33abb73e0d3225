/**
 * Checkpoint-resume: a run that stops, is rebuilt from its checkpoint (new model from the file, new
 * optimizer, schedule and callbacks) and continues ends bitwise where an uninterrupted run ends —
 * weights, BatchNorm statistics, optimizer moments and the whole loss history — with dropout from the
 * global stream and from a seeded layer, shuffling, a schedule, early stopping and validation on.
 * Node resumes from a directory, browsers from in-memory artifacts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { isBrowser, setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { nn } = eg;
type Artifacts = eg.ModelArtifacts;

function data(n: number, seed: number): [eg.Tensor, eg.Tensor] {
  const x = eg.tensor(vals(n * 6, seed, -2, 2), [n, 6]);
  // Labels from a fixed rule of the inputs, so there is something to learn.
  const y = eg.tidy(() => x.matmul(eg.tensor(vals(18, seed + 1), [6, 3])).argMax(1).cast('int32'));
  return [x, y];
}

const net = () => new nn.Sequential(
  new nn.Linear(6, 16, { seed: 1 }), new nn.BatchNorm1d(16), new nn.ReLU(),
  new nn.Dropout(0.3), // masks from the global stream
  new nn.Linear(16, 16, { seed: 2 }), new nn.ReLU(),
  new nn.Dropout(0.2, 9), // seeded masks numbered per call: extra state
  new nn.Linear(16, 3, { seed: 3 }),
);
const ce = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });

/** Every state tensor as raw bits (so NaN and -0 compare exactly). */
function bits(m: eg.nn.Module, opt?: eg.optim.Optimizer<{ lr: number }>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(m.stateDict())) out[k] = Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));
  opt?.stateDict().params.forEach((p, i) => {
    for (const [k, t] of Object.entries(p.tensors)) out[`opt.${i}.${k}`] = Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));
  });
  return out;
}

async function tmpDir(): Promise<string> {
  const { mkdtemp } = await import(/* @vite-ignore */ 'node:fs/promises' as string);
  const { tmpdir } = await import(/* @vite-ignore */ 'node:os' as string);
  return mkdtemp(`${tmpdir()}/edgegrad-resume-`);
}

interface Run {
  model: eg.nn.Module;
  opt: eg.optim.Optimizer<{ lr: number }>;
  callbacks: eg.train.Callback[];
}

/** Adam, a cosine schedule per epoch, early stopping that keeps the best weights, checkpoints. */
function adamRun(model: eg.nn.Module, onSave: (a: Artifacts) => void): Run {
  const opt = new eg.optim.Adam(model.parameters(), { lr: 0.02 });
  model.compile({ optimizer: opt, loss: ce, metrics: ['accuracy'] });
  const callbacks = [
    new eg.train.LearningRateScheduler(new eg.optim.CosineAnnealingLR(opt, 4, 0.001)),
    new eg.train.EarlyStopping({ monitor: 'val_loss', patience: 50, restoreBestWeights: true }),
    new eg.train.ModelCheckpoint({ onSave, saveTrainingState: true, saveFreq: 3 }),
    new eg.train.ModelCheckpoint({ onSave, saveTrainingState: true }),
    new eg.train.ModelCheckpoint({ onSave: () => {}, saveTrainingState: true, monitor: 'val_loss', saveBestOnly: true }),
  ];
  return { model, opt, callbacks };
}

const fitOpts = { epochs: 6, batchSize: 16, seed: 4, validationSplit: 0.25, verbose: 0 as const };

describe('checkpoint-resume is bitwise equal to an uninterrupted run', () => {
  it('Adam + cosine schedule + BatchNorm + dropout + shuffling: resumed at epoch boundaries and mid-epoch', async () => {
    const [x, y] = data(96, 11);
    // The uninterrupted run, checkpointing every 3 steps and at every epoch's end (72 training
    // samples: 5 batches an epoch, so step 15 is after epoch 2's last batch but before its end).
    type Pos = { epoch: number; batch: number; step: number };
    const saved: (Pos & { art: Artifacts })[] = [];
    const a = adamRun(net(), (art) => { saved.push({ ...(art.json.training as Pos), art }); });
    eg.manualSeed(21);
    const hA = await a.model.fit(x, y, { ...fitOpts, callbacks: a.callbacks });
    const wA = bits(a.model, a.opt);
    expect(hA.epoch).toEqual([0, 1, 2, 3, 4, 5]);
    const before = eg.memory().numTensors;

    const at = (p: Partial<Pos>) => saved.find((s) => Object.entries(p).every(([k, v]) => s[k as keyof Pos] === v))!;
    const picks = [
      at({ epoch: 0, batch: 3 }), // inside the first epoch
      at({ epoch: 2, batch: 5 }), // every batch of epoch 2 done, its end (validation, schedule, callbacks) not yet
      at({ epoch: 3, batch: 0 }), // an epoch boundary in the middle of the cosine schedule
    ];
    expect(picks.every(Boolean)).toBe(true);
    for (const pick of picks) {
      // Fresh everything: a model built from the checkpoint's file, a new optimizer, schedule and callbacks.
      eg.manualSeed(999);
      eg.rand([5]).dispose(); // the global stream is elsewhere: the checkpoint must restore it
      const { model } = await eg.loadModel(pick.art);
      const b = adamRun(model, () => {});
      const hB = await b.model.fit(x, y, { ...fitOpts, callbacks: b.callbacks, resumeFrom: pick.art });
      expect(hB).toEqual(hA);
      expect(bits(b.model, b.opt)).toEqual(wA);
      expect(b.opt.lr).toBe(a.opt.lr);
      b.model.dispose();
      b.opt.dispose();
    }
    expect(eg.memory().numTensors).toBe(before);
    a.model.dispose();
    a.opt.dispose();
    x.dispose();
    y.dispose();
  }, 60_000);

  it(`SGD with momentum and a per-batch StepLR: stopped after 2 epochs, resumed from ${isBrowser ? 'artifacts' : 'a directory'}`, async () => {
    const [x, y] = data(80, 12);
    const build = (model: eg.nn.Module, ckpt: eg.train.ModelCheckpoint) => {
      const opt = new eg.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 });
      model.compile({ optimizer: opt, loss: ce, clipGradNorm: 5 });
      return { opt, callbacks: [ckpt, new eg.train.LearningRateScheduler(new eg.optim.StepLR(opt, 3, 0.7), 'batch')] };
    };
    const o = { epochs: 5, batchSize: 12, seed: 8, verbose: 0 as const };

    eg.manualSeed(3);
    const straight = net();
    const s = build(straight, new eg.train.ModelCheckpoint({ onSave: () => {}, saveTrainingState: true }));
    const hS = await straight.fit(x, y, { ...o, callbacks: s.callbacks });

    const dir = isBrowser ? undefined : await tmpDir();
    let art: Artifacts | undefined;
    eg.manualSeed(3);
    const first = net();
    const f = build(first, new eg.train.ModelCheckpoint({ dir, onSave: (a) => { art = a; }, saveTrainingState: true }));
    await first.fit(x, y, { ...o, epochs: 2, callbacks: f.callbacks }); // "interrupted" after epoch 2
    if (dir) {
      // Each save was written beside the directory and swapped in: nothing is left over.
      const { readdir } = await import(/* @vite-ignore */ 'node:fs/promises' as string);
      const parent = dir.slice(0, dir.lastIndexOf('/'));
      const name = dir.slice(dir.lastIndexOf('/') + 1);
      expect((await readdir(parent) as string[]).filter((n) => n.startsWith(name))).toEqual([name]);
      expect((await readdir(dir) as string[]).sort()).toEqual(['model.json', 'model.safetensors']);
    }
    first.dispose();
    f.opt.dispose();

    const src = dir ?? art!;
    const { model } = await eg.loadModel(src);
    const r = build(model, new eg.train.ModelCheckpoint({ onSave: () => {}, saveTrainingState: true }));
    const hR = await model.fit(x, y, { ...o, callbacks: r.callbacks, resumeFrom: src });
    expect(hR).toEqual(hS);
    expect(bits(model, r.opt)).toEqual(bits(straight, s.opt));
    for (const d of [model, straight]) d.dispose();
    for (const d of [r.opt, s.opt]) d.dispose();
    x.dispose();
    y.dispose();
  }, 60_000);

  it('a streaming Dataset resumed inside an epoch: the batches before the checkpoint are skipped and freed', async () => {
    const [x, y] = data(40, 15);
    const ds = eg.data.Dataset.fromGenerator(function* (epoch) {
      for (let s = 0; s < 40; s += 10) {
        const idx = Int32Array.from({ length: 10 }, (_, i) => (s + i + epoch * 13) % 40);
        const [bx, by] = eg.data.takeRows([x, y], idx);
        yield { x: bx, y: by };
      }
    }, 4);
    const build = (model: eg.nn.Module, onSave: (a: Artifacts) => void) => {
      const opt = new eg.optim.AdamW(model.parameters(), { lr: 0.01 });
      model.compile({ optimizer: opt, loss: ce });
      return { opt, callbacks: [new eg.train.ModelCheckpoint({ onSave, saveTrainingState: true, saveFreq: 6 })] };
    };
    const saved: Artifacts[] = [];
    eg.manualSeed(8);
    const m = net();
    const a = build(m, (art) => { saved.push(art); });
    const hA = await m.fit(ds, { epochs: 3, verbose: 0, callbacks: a.callbacks });
    const pick = saved.find((s) => (s.json.training as { batch: number }).batch === 2)!; // step 6: epoch 1, batch 2
    const before = eg.memory().numTensors;
    const { model } = await eg.loadModel(pick);
    const b = build(model, () => {});
    const hB = await model.fit(ds, { epochs: 3, verbose: 0, callbacks: b.callbacks, resumeFrom: pick });
    expect(hB).toEqual(hA);
    expect(bits(model, b.opt)).toEqual(bits(m, a.opt));
    model.dispose();
    b.opt.dispose();
    expect(eg.memory().numTensors).toBe(before);
    for (const d of [m, a.opt, x, y]) d.dispose();
  }, 60_000);

  it('gradual pruning (PruningCallback) resumed mid-schedule: same masks, same weights', async () => {
    const [x, y] = data(32, 17);
    const build = (model: eg.nn.Module, onSave: (a: Artifacts) => void) => {
      const opt = new eg.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
      model.compile({ optimizer: opt, loss: ce });
      const pruner = new eg.compress.Pruner(model);
      const schedule = new eg.compress.PolynomialDecay({ finalSparsity: 0.6, beginStep: 2, endStep: 12, frequency: 2 });
      return { opt, pruner, callbacks: [new eg.compress.PruningCallback(pruner, schedule), new eg.train.ModelCheckpoint({ onSave, saveTrainingState: true, saveFreq: 5 })] };
    };
    const o = { epochs: 4, batchSize: 8, seed: 2, verbose: 0 as const };
    const saved: Artifacts[] = [];
    eg.manualSeed(4);
    const m = net();
    const a = build(m, (art) => { saved.push(art); });
    const hA = await m.fit(x, y, { ...o, callbacks: a.callbacks });
    const pick = saved[1]; // step 10: epoch 2, batch 2, masks at an intermediate sparsity
    expect((pick.json.training as { step: number }).step).toBe(10);
    const { model } = await eg.loadModel(pick);
    const b = build(model, () => {});
    const hB = await model.fit(x, y, { ...o, callbacks: b.callbacks, resumeFrom: pick });
    expect(hB).toEqual(hA);
    expect(bits(model, b.opt)).toEqual(bits(m, a.opt));
    expect(b.pruner.sparsity).toBe(0.6);
    for (const d of [m, model, a.opt, b.opt, x, y]) d.dispose();
    a.pruner.dispose();
    b.pruner.dispose();
  }, 60_000);

  it('a hand-written loop: saveCheckpoint / loadCheckpoint restore weights, optimizer, schedule and RNG', async () => {
    const [x, y] = data(32, 13);
    const step = (m: eg.nn.Module, opt: eg.optim.Optimizer<{ lr: number }>) => eg.tidy(() => {
      opt.zeroGrad();
      ce(m.forward(x), y).backward();
      opt.step();
    });
    const make = (m: eg.nn.Module) => {
      const opt = new eg.optim.RMSProp(m.parameters(), { lr: 0.01, momentum: 0.5, centered: true });
      return { opt, sched: new eg.optim.ExponentialLR(opt, 0.9) };
    };
    eg.manualSeed(5);
    const m = net();
    const a = make(m);
    for (let i = 0; i < 3; i++) { step(m, a.opt); a.sched.step(); }
    const art = await eg.train.saveCheckpoint(m, undefined, { optimizer: a.opt, schedulers: [a.sched], epoch: 3, step: 3 });
    for (let i = 0; i < 3; i++) { step(m, a.opt); a.sched.step(); }

    eg.manualSeed(77);
    const m2 = net();
    const b = make(m2);
    const got = await eg.train.loadCheckpoint(art, { model: m2, optimizer: b.opt, schedulers: [b.sched] });
    expect([got.epoch, got.step, got.model]).toEqual([3, 3, m2]);
    expect(b.opt.lr).toBe(0.01 * 0.9 ** 3);
    for (let i = 0; i < 3; i++) { step(m2, b.opt); b.sched.step(); }
    expect(bits(m2, b.opt)).toEqual(bits(m, a.opt));
    for (const d of [m, m2, a.opt, b.opt, x, y]) d.dispose();
  }, 60_000);

  it('parameters frozen when the checkpoint was taken train after the resume as in the uninterrupted run', async () => {
    const [x, y] = data(24, 16);
    const step = (m: eg.nn.Module, opt: eg.optim.Optimizer<{ lr: number }>) => eg.tidy(() => {
      opt.zeroGrad();
      ce(m.forward(x), y).backward();
      opt.step();
    });
    const mk = () => {
      const m = new nn.Sequential(new nn.Linear(6, 8, { seed: 4 }), new nn.ReLU(), new nn.Linear(8, 3, { seed: 5 }));
      return { m, opt: new eg.optim.Adam(m.parameters(), { lr: 0.01 }) };
    };
    const a = mk();
    a.m.freeze('0'); // fine-tuning: the head first, so the body's Adam state does not exist yet
    step(a.m, a.opt);
    const art = await eg.train.saveCheckpoint(a.m, undefined, { optimizer: a.opt });
    a.m.unfreeze();
    step(a.m, a.opt);
    step(a.m, a.opt);

    const b = mk();
    b.m.freeze('0');
    await eg.train.loadCheckpoint(art, { model: b.m, optimizer: b.opt });
    b.m.unfreeze();
    step(b.m, b.opt);
    step(b.m, b.opt);
    expect(bits(b.m, b.opt)).toEqual(bits(a.m, a.opt));
    for (const d of [a.m, a.opt, b.m, b.opt, x, y]) d.dispose();
  }, 60_000);

  it('getRngState / setRngState continue the global stream exactly; bad states are ArgumentErrors', () => {
    eg.manualSeed(2 ** 40 + 3);
    eg.randn([7]).dispose();
    const s = eg.getRngState();
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    const a = eg.tidy(() => Array.from(eg.rand([9]).dataSync()));
    eg.randn([3]).dispose();
    eg.setRngState(s);
    expect(eg.tidy(() => Array.from(eg.rand([9]).dataSync()))).toEqual(a);
    for (const bad of [null, {}, { key: [1, 2], counter: [1] }, { key: [1, -1], counter: [0, 0] }, { key: [1, 2 ** 32], counter: [0, 0] }, { key: [0.5, 0], counter: [0, 0] }]) {
      expect(() => eg.setRngState(bad as unknown as eg.RngState)).toThrow(eg.ArgumentError);
    }
    expect(eg.tidy(() => Array.from(eg.rand([9]).dataSync()))).not.toEqual(a); // the stream moved on, still working
  }, 60_000);
});

describe('corrupt or mismatched checkpoints are typed errors', () => {
  it('rejects a corrupt training state with FormatError naming the field, and leaks nothing', async () => {
    const [x, y] = data(32, 14);
    let art: Artifacts | undefined;
    const m = net();
    const opt = new eg.optim.Adam(m.parameters());
    m.compile({ optimizer: opt, loss: ce });
    await m.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0, callbacks: [new eg.train.ModelCheckpoint({ onSave: (a) => { art = a; }, saveTrainingState: true })] });
    const plain = await eg.saveModel(m, undefined, { optimizer: opt });
    const before = eg.memory().numTensors;
    const corrupt: [string, (t: Record<string, unknown>) => void, RegExp][] = [
      ['non-finite epoch', (t) => { t.epoch = 1e400; }, /training state: epoch must be an integer/],
      ['absurd epoch', (t) => { t.epoch = 1e15; }, /training state: epoch must be an integer/],
      ['string step', (t) => { t.step = '3'; }, /training state: step must be an integer/],
      ['bad rng word', (t) => { t.rng = { key: [1, 2], counter: [0, 2 ** 33] }; }, /rng.counter\[1\]/],
      ['history of the wrong type', (t) => { t.history = { epoch: [0], history: { loss: 'x' } }; }, /history.history.loss must be an array/],
      ['history longer than its epochs', (t) => { t.history = { epoch: [0], history: { loss: [1, 2] } }; }, /longer than its 1 epochs/],
      ['bad $number tag', (t) => { (t.history as { history: { loss: unknown[] } }).history.loss[0] = { $number: 'lots' }; }, /\$number/],
      ['deep nesting', (t) => { let v: unknown = 1; for (let i = 0; i < 40; i++) v = [v]; t.modules = { x: v }; }, /training state: modules.x.* is nested more than 32 levels deep/],
      ['unknown layer state', (t) => { t.modules = { 'no.such.layer': { calls: 1 } }; }, /no\.such\.layer/],
      ['bad layer state', (t) => { t.modules = { 6: { calls: -1 } }; }, /layer '6'/],
      ['bad callback state', (t) => { t.callbacks = [{ className: 'ModelCheckpoint', values: { best: 'x', saves: 1 } }]; }, /ModelCheckpoint state: best must be a number/],
      ['mid-epoch without its meter', (t) => { t.batch = 1; t.meter = null; }, /meter/],
      ['unsupported version', (t) => { t.version = 2; }, /version/],
    ];
    for (const [what, mutate, msg] of corrupt) {
      const json = structuredClone(art!.json);
      mutate(json.training as Record<string, unknown>);
      const m2 = net();
      const opt2 = new eg.optim.Adam(m2.parameters());
      m2.compile({ optimizer: opt2, loss: ce });
      const cb = new eg.train.ModelCheckpoint({ onSave: () => {}, saveTrainingState: true });
      const err = await m2.fit(x, y, { epochs: 2, batchSize: 16, verbose: 0, callbacks: [cb], resumeFrom: { json, weights: art!.weights } }).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(eg.FormatError);
      expect((err as Error).message, what).toMatch(msg);
      m2.dispose();
      opt2.dispose();
    }
    // A model file without training state, and callbacks that do not match the checkpoint's.
    const m3 = net();
    const opt3 = new eg.optim.Adam(m3.parameters());
    m3.compile({ optimizer: opt3, loss: ce });
    await expect(m3.fit(x, y, { epochs: 2, verbose: 0, resumeFrom: plain })).rejects.toThrow(/no training state/);
    await expect(m3.fit(x, y, { epochs: 2, verbose: 0, resumeFrom: art!, callbacks: [new eg.train.EarlyStopping()] })).rejects.toThrow(eg.ArgumentError);
    await expect(m3.fit(x, y, { epochs: 2, verbose: 0, resumeFrom: art!, initialEpoch: 1, callbacks: [] })).rejects.toThrow(eg.ArgumentError);
    const other = new nn.Sequential(new nn.Linear(6, 3));
    await expect(eg.train.loadCheckpoint(art!, { model: other })).rejects.toThrow(/does not match this model/);
    m3.dispose();
    opt3.dispose();
    other.dispose();
    expect(eg.memory().numTensors).toBe(before);
    // The engine and training still work.
    const h = await m.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
    expect(Number.isFinite(h.history.loss[0])).toBe(true);
    for (const d of [m, opt, x, y]) d.dispose();
  }, 60_000);
});
