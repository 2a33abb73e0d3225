/**
 * Issue 18 §2: `eg.nn.lora` — adapters leave the model's outputs unchanged at init, only adapters
 * train (also inside fit), merge() gives the adapted outputs (≤ 1e-5) and a plain model again,
 * unmerge() undoes it, PEFT-named safetensors + adapter_config.json round-trip bit for bit, hostile
 * adapter files are FormatErrors that leave the model as it was, parameter counts, no leaks.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, isBrowser, setup } from './helpers.js';
import { bits, expectFlatOver100Calls, fnv1a } from './explain-fixtures.js';

const { nn } = eg;
const { lora } = nn;

beforeAll(async () => {
  await setup();
});

expectEachTestFreesItsTensors();

/** Linear(6→8) · ReLU · Linear(8→8) · ReLU · Linear(8→3): Linear paths '0', '2', '4'. */
const mlp = () => new nn.Sequential(
  new nn.Linear(6, 8, { seed: 1 }), new nn.ReLU(), new nn.Linear(8, 8, { seed: 2 }), new nn.ReLU(), new nn.Linear(8, 3, { seed: 3 }),
);
const input = (seed = 7, n = 5) => eg.rand([n, 6], -1, 1, { seed });
/** Forward in evaluation mode, outside any tape, as numbers. */
const run = (m: eg.nn.Module, x: eg.Tensor): Float32Array => eg.tidy(() => eg.noGrad(() => m.forward(x).dataSync() as Float32Array)).slice();
const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const ce = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });
/** Copies of a state dict's values by name. */
const snapshot = (m: eg.nn.Module): Record<string, Float32Array> => Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, (t.dataSync() as Float32Array).slice()]));

/** A few Adam steps on the adapters only (by hand, as users outside fit would). */
function trainSteps(m: eg.nn.Module, h: eg.nn.lora.LoraHandle, steps = 5): void {
  const opt = new eg.optim.Adam(h.trainableParameters(), { lr: 0.05 });
  const x = input(11, 16);
  const y = eg.randint([16], 0, 3, { seed: 12 });
  m.train();
  for (let i = 0; i < steps; i++) {
    eg.tidy(() => {
      opt.zeroGrad();
      ce(m.forward(x), y).backward();
      opt.step();
    });
  }
  m.eval();
  opt.dispose();
  x.dispose();
  y.dispose();
}

describe('apply', () => {
  it('wraps the targeted Linears, starts identical (bit for bit) and freezes the rest', () => {
    const m = mlp().eval();
    const x = input();
    const before = run(m, x);
    const h = lora.apply(m, { targets: ['0', '4'], rank: 2, alpha: 4, seed: 3 });
    expect(h.targets).toEqual(['0', '4']);
    expect(h.scaling).toBe(2);
    expect(Array.from(new Uint32Array(run(m, x).buffer))).toEqual(Array.from(new Uint32Array(before.buffer)));
    // PEFT names and layouts: A [r, in], B [out, r]; B zero, A within ±1/√in.
    const sd = m.stateDict();
    expect(sd['0.lora_A.weight'].shape).toEqual([2, 6]);
    expect(sd['0.lora_B.weight'].shape).toEqual([8, 2]);
    expect(sd['4.lora_A.weight'].shape).toEqual([2, 8]);
    expect(sd['4.lora_B.weight'].shape).toEqual([3, 2]);
    expect(Array.from(sd['0.lora_B.weight'].dataSync())).toEqual(new Array(16).fill(0));
    const a = sd['0.lora_A.weight'].dataSync() as Float32Array;
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(6));
    expect(new Set(a).size).toBe(12);
    expect(Object.keys(h.adapterStateDict())).toEqual([
      'base_model.model.0.lora_A.weight', 'base_model.model.0.lora_B.weight', 'base_model.model.4.lora_A.weight', 'base_model.model.4.lora_B.weight',
    ]);
    // Only the adapters train.
    const trainable = new Set(h.trainableParameters());
    for (const [name, p] of m.namedParameters()) expect(p.requiresGrad, name).toBe(name.includes('lora_'));
    expect(trainable.size).toBe(4);
    h.dispose();
    m.dispose();
    x.dispose();
  });

  it('counts parameters like PEFT (trainable, total with adapters, percent)', () => {
    const m = mlp();
    const base = m.numParameters();
    const h = lora.apply(m, { targets: ['2'], rank: 4 });
    const adapters = 4 * 8 + 8 * 4;
    expect(h.parameterCounts()).toEqual({ trainable: adapters, total: base + adapters, percent: (100 * adapters) / (base + adapters) });
    h.dispose();
    // Unload restores the model: no adapter, every parameter trainable again.
    expect(m.numParameters()).toBe(base);
    expect(m.trainableParameters().length).toBe(6);
    expect(Object.keys(m.stateDict()).some((k) => k.includes('lora'))).toBe(false);
    m.dispose();
  });

  it('matches targets by name suffix and by glob; modulesToSave stay trainable', () => {
    const enc = new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, seed: 4 });
    expect(lora.targetPaths(enc, ['linear1'])).toEqual(['linear1']);
    expect(lora.targetPaths(enc, ['out_proj'])).toEqual(['self_attn.out_proj']);
    expect(lora.targetPaths(enc, ['linear?'])).toEqual(['linear1', 'linear2']);
    expect(lora.targetPaths(enc, ['self_attn.*'])).toEqual(['self_attn.out_proj']);
    expect(lora.targetPaths(enc, ['**'])).toEqual(['self_attn.out_proj', 'linear1', 'linear2']);
    const m = mlp();
    const h = lora.apply(m, { targets: ['0'], rank: 2, modulesToSave: ['4'] });
    const names = m.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(names).toEqual(['0.lora_A.weight', '0.lora_B.weight', '4.weight', '4.bias']);
    expect(Object.keys(h.adapterStateDict())).toContain('base_model.model.4.bias');
    h.dispose();
    m.dispose();
    enc.dispose();
  });

  it('refuses targets that select no Linear, naming them and the Linear paths there are', () => {
    const m = mlp();
    expect(() => lora.apply(m, { targets: ['0', 'attn.q', 'nope'] })).toThrow(eg.ArgumentError);
    expect(() => lora.apply(m, { targets: ['0', 'attn.q', 'nope'] })).toThrow(/targets 'attn\.q', 'nope' match no Linear layer \(Linear layers: '0', '2', '4'\)/);
    expect(() => lora.apply(m, { targets: ['1'] })).toThrow(/'1 \(ReLU\)' match but LoRA wraps Linear layers only/);
    expect(() => lora.apply(m, { targets: [] })).toThrow(/targets must be a non-empty array/);
    expect(() => lora.apply(m, { targets: ['0'], rank: 0 })).toThrow(eg.ArgumentError);
    expect(() => lora.apply(m, { targets: ['0'], alpha: -1 })).toThrow(/alpha must be > 0/);
    expect(() => lora.apply(m, { targets: ['0'], dropout: 1 })).toThrow(/dropout must be in \[0, 1\)/);
    expect(() => lora.apply(m, { targets: ['0'], ranks: 2 } as never)).toThrow(/unknown option 'ranks'/);
    expect(() => lora.apply(m, { targets: ['0'], modulesToSave: ['head'] })).toThrow(/modulesToSave 'head' match no module/);
    expect(() => lora.apply(m, { targets: ['0'], modulesToSave: ['0'] })).toThrow(/both targets and modules to save/);
    // A failed apply leaves nothing behind.
    expect(m.numParameters()).toBe(6 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3);
    expect(m.trainableParameters().length).toBe(6);
    const h = lora.apply(m, { targets: ['0'] });
    expect(() => lora.apply(m, { targets: ['2'] })).toThrow(/already has LoRA adapters/);
    h.dispose();
    const fused = new nn.Sequential(new nn.Linear(3, 4, { activation: 'relu' }), new nn.Linear(4, 2));
    expect(() => lora.apply(fused, { targets: ['0'] })).toThrow(/fuses a ReLU/);
    expect(() => new (lora.LoraHandle as unknown as new (...a: unknown[]) => unknown)(Symbol('x'), m)).toThrow(/made by eg\.nn\.lora\.apply/);
    fused.dispose();
    m.dispose();
  });
});

describe('training', () => {
  it('changes only the adapter parameters', () => {
    const m = mlp();
    const h = lora.apply(m, { targets: ['0', '2'], rank: 2, seed: 5 });
    const before = snapshot(m);
    trainSteps(m, h);
    const after = snapshot(m);
    for (const k of Object.keys(before)) {
      const changed = maxAbsDiff(before[k], after[k]) > 0;
      expect(changed, k).toBe(k.includes('lora_'));
    }
    h.dispose();
    m.dispose();
  });

  it('works inside fit with an optimizer over handle.trainableParameters() (and clipping)', async () => {
    const m = mlp();
    const h = lora.apply(m, { targets: ['0', '2', '4'], rank: 2, alpha: 4, dropout: 0.1, seed: 6 });
    const frozen = snapshot(m);
    const opt = new eg.optim.Adam(h.trainableParameters(), { lr: 0.05 });
    m.compile({ optimizer: opt, loss: ce, clipGradNorm: 1 });
    const x = input(21, 64);
    const y = eg.tidy(() => x.slice([0, 0], [64, 3]).argMax(1));
    const hist = await m.fit(x, y, { epochs: 6, batchSize: 16, seed: 2, verbose: 0 });
    const loss = hist.history.loss;
    expect(loss[loss.length - 1]).toBeLessThan(loss[0]);
    const now = snapshot(m);
    for (const k of Object.keys(frozen)) if (!k.includes('lora_')) expect(Array.from(now[k]), k).toEqual(Array.from(frozen[k]));
    opt.dispose();
    h.dispose();
    m.dispose();
    x.dispose();
    y.dispose();
  });

  it('dropout acts in training mode only, reproducibly with a seed', () => {
    const outs = () => {
      const m = mlp();
      const h = lora.apply(m, { targets: ['0'], rank: 2, dropout: 0.5, seed: 9 });
      // B ≠ 0, so the adapter path (and its dropout) shows in the output.
      const half = eg.full([8, 2], 0.5);
      eg.noGrad(() => h.adapterStateDict()['base_model.model.0.lora_B.weight'].assign(half));
      half.dispose();
      const x = input();
      m.train();
      const t1 = run(m, x);
      const t2 = run(m, x);
      m.eval();
      const e1 = run(m, x);
      const e2 = run(m, x);
      h.dispose();
      m.dispose();
      x.dispose();
      return { t1, t2, e1, e2 };
    };
    const a = outs();
    const b = outs();
    expect(maxAbsDiff(a.t1, a.t2)).toBeGreaterThan(0);
    expect(a.e1).toEqual(a.e2);
    expect(maxAbsDiff(a.t1, a.e1)).toBeGreaterThan(0);
    expect(a.t1).toEqual(b.t1);
    expect(a.t2).toEqual(b.t2);
  });
});

describe('merge', () => {
  it('gives the adapted outputs (≤ 1e-5), a plain state dict, and unmerge() undoes it', () => {
    const m = mlp();
    const h = lora.apply(m, { targets: ['0', '2', '4'], rank: 3, alpha: 6, dropout: 0.2, seed: 8 });
    trainSteps(m, h, 8);
    const x = input(31, 32);
    const adapted = run(m, x);
    const base = snapshot(m);
    const ad = Object.fromEntries(Object.entries(h.adapterStateDict()).map(([k, t]) => [k, bits(t)]));
    expect(h.merge()).toBe(m);
    expect(h.merged).toBe(true);
    const merged = run(m, x);
    expect(maxAbsDiff(adapted, merged)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(adapted, merged)).toBeGreaterThan(0); // a different computation, not the same one
    expect(Object.keys(m.stateDict()).sort()).toEqual(['0.bias', '0.weight', '2.bias', '2.weight', '4.bias', '4.weight']);
    expect([...m.namedModules()].every(([, mod]) => mod.numForwardHooks === 0)).toBe(true);
    expect(maxAbsDiff(base['0.weight'], snapshot(m)['0.weight'])).toBeGreaterThan(0);
    // The adapters are still the handle's, for saving and unmerge.
    expect(Object.fromEntries(Object.entries(h.adapterStateDict()).map(([k, t]) => [k, bits(t)]))).toEqual(ad);
    expect(() => h.trainableParameters()).toThrow(/merged into the model; call unmerge\(\) first/);
    expect(() => h.merge()).toThrow(eg.ArgumentError);
    h.unmerge();
    expect(h.merged).toBe(false);
    expect(maxAbsDiff(run(m, x), adapted)).toBeLessThanOrEqual(1e-5);
    const restored = snapshot(m);
    for (const k of ['0.weight', '2.weight', '4.weight']) expect(maxAbsDiff(restored[k], base[k]), k).toBeLessThanOrEqual(1e-6);
    expect(h.trainableParameters().length).toBe(6);
    expect(() => h.unmerge()).toThrow(/not merged/);
    h.merge();
    h.dispose();
    expect(() => h.parameterCounts()).toThrow(/disposed/);
    // Merged then disposed: the merged model stays, plain.
    expect(maxAbsDiff(run(m, x), merged)).toBe(0);
    m.dispose();
    x.dispose();
  });

  it('works on a Transformer encoder layer and a GPT (rank-3 inputs)', () => {
    const enc = new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, seed: 4 }).eval();
    const gpt = new nn.GPT({ vocabSize: 11, blockSize: 6, nLayer: 1, nHead: 2, nEmbd: 8, seed: 5 }).eval();
    const x = eg.rand([2, 5, 8], -1, 1, { seed: 3 });
    const ids = eg.randint([2, 6], 0, 11, { seed: 4 });
    for (const [m, inp, targets] of [[enc, x, ['out_proj', 'linear1', 'linear2']], [gpt, ids, ['c_attn', 'c_proj', 'c_fc']]] as const) {
      const before = run(m, inp);
      const h = lora.apply(m, { targets: [...targets], rank: 2, seed: 1 });
      expect(run(m, inp)).toEqual(before);
      for (const [k, t] of Object.entries(h.adapterStateDict())) {
        if (!k.endsWith('lora_B.weight')) continue;
        const r = eg.rand(t.shape, -0.3, 0.3, { seed: 2 });
        eg.noGrad(() => t.assign(r));
        r.dispose();
      }
      const adapted = run(m, inp);
      expect(maxAbsDiff(adapted, before)).toBeGreaterThan(1e-3);
      h.merge();
      expect(maxAbsDiff(run(m, inp), adapted)).toBeLessThanOrEqual(1e-5);
      h.dispose();
    }
    enc.dispose();
    gpt.dispose();
    x.dispose();
    ids.dispose();
  });
});

describe('on the BERT encoder', () => {
  it("adapts 'attn.q'/'attn.v' with the classifier saved: unchanged at init, merged = adapted", () => {
    const clf = new nn.BertForSequenceClassification({ vocabSize: 30, maxPositions: 8, hiddenSize: 8, numLayers: 2, numHeads: 2, seed: 3 }, { numClasses: 2 }).eval();
    const ids = eg.tensor(Int32Array.from([2, 7, 9, 11, 3, 0, 0, 0, 2, 5, 6, 3, 0, 0, 0, 0]), [2, 8], 'int32');
    const before = run(clf, ids);
    const h = lora.apply(clf, { targets: ['attn.q', 'attn.v'], rank: 2, alpha: 4, modulesToSave: ['classifier'], seed: 4 });
    expect(h.targets).toEqual(['bert.layers.0.attn.q', 'bert.layers.0.attn.v', 'bert.layers.1.attn.q', 'bert.layers.1.attn.v']);
    expect(run(clf, ids)).toEqual(before);
    const adapters = 4 * (2 * 8 + 8 * 2);
    const head = 8 * 2 + 2;
    expect(h.parameterCounts().trainable).toBe(adapters + head);
    for (const [k, t] of Object.entries(h.adapterStateDict())) {
      if (!k.endsWith('lora_B.weight')) continue;
      const r = eg.rand(t.shape, -0.5, 0.5, { seed: 6 });
      eg.noGrad(() => t.assign(r));
      r.dispose();
    }
    const adapted = run(clf, ids);
    expect(maxAbsDiff(adapted, before)).toBeGreaterThan(1e-4);
    h.merge();
    expect(maxAbsDiff(run(clf, ids), adapted)).toBeLessThanOrEqual(1e-5);
    h.dispose();
    clf.dispose();
    ids.dispose();
  });
});

describe('determinism', () => {
  it('seeded adapters and their training give the same bits in Node and Chromium', () => {
    const m = mlp();
    const h = lora.apply(m, { targets: ['0', '2', '4'], rank: 2, alpha: 4, dropout: 0.25, seed: 17 });
    const init = fnv1a(Object.values(h.adapterStateDict()).flatMap((t) => bits(t)));
    trainSteps(m, h, 3);
    const trained = fnv1a(Object.values(h.adapterStateDict()).flatMap((t) => bits(t)));
    expect([init, trained]).toEqual(['610326a9', '304812ae']);
    h.dispose();
    m.dispose();
  });
});

describe('save and load', () => {
  /** A trained adapter on a seeded MLP, its artifacts and outputs. */
  async function trained() {
    const m = mlp();
    const h = lora.apply(m, { targets: ['0', '2'], rank: 2, alpha: 16, dropout: 0.05, modulesToSave: ['4'], seed: 3 });
    trainSteps(m, h, 4);
    return { m, h, art: await h.saveAdapters() };
  }

  it('round-trips bit for bit through PEFT names and adapter_config.json', async () => {
    const { m, h, art } = await trained();
    expect(art.config).toMatchObject({ peft_type: 'LORA', r: 2, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['0', '2'], modules_to_save: ['4'], bias: 'none' });
    const x = input(41, 9);
    const want = run(m, x);
    const wantAd = Object.fromEntries(Object.entries(h.adapterStateDict()).map(([k, t]) => [k, bits(t)]));
    // A fresh copy of the base model (same seeds), adapters from the bytes (config as JSON text, as read from disk).
    const m2 = mlp().eval();
    const h2 = await lora.loadAdapters(m2, { config: JSON.stringify(art.config), weights: art.weights }, { isTrainable: true });
    expect(Array.from(new Uint32Array(run(m2, x).buffer))).toEqual(Array.from(new Uint32Array(want.buffer)));
    expect(Object.fromEntries(Object.entries(h2.adapterStateDict()).map(([k, t]) => [k, bits(t)]))).toEqual(wantAd);
    expect(h2.config).toEqual(h.config);
    expect(h2.trainableParameters().length).toBe(6);
    // Saved again: the same bytes.
    expect(fnv1a((await h2.saveAdapters()).weights)).toBe(fnv1a(art.weights));
    h2.dispose();
    // For inference (PEFT's default is_trainable=False): loaded frozen.
    const h3 = await lora.loadAdapters(m2, art);
    expect(h3.trainableParameters()).toEqual([]);
    expect(h3.parameterCounts().trainable).toBe(0);
    h3.dispose();
    h.dispose();
    m.dispose();
    m2.dispose();
    x.dispose();
  });

  it.skipIf(isBrowser)('saves and loads a directory in Node (adapter_model.safetensors + adapter_config.json)', async () => {
    const fs = await import('node:fs/promises');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'eg-lora-'));
    try {
      const { m, h, art } = await trained();
      await h.saveAdapters(dir);
      expect((await fs.readdir(dir)).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
      expect(JSON.parse(await fs.readFile(path.join(dir, 'adapter_config.json'), 'utf8'))).toEqual(art.config);
      const m2 = mlp().eval();
      const h2 = await lora.loadAdapters(m2, dir);
      const x = input();
      expect(run(m2, x)).toEqual(run(m, x));
      const m3 = mlp();
      await expect(lora.loadAdapters(m3, path.join(dir, 'missing'))).rejects.toThrow(/cannot read adapter_config\.json .*no such file/);
      m3.dispose();
      h2.dispose();
      h.dispose();
      m.dispose();
      m2.dispose();
      x.dispose();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('hostile or mismatched adapter files are FormatErrors that leave the model as it was', async () => {
    const { m, h, art } = await trained();
    const tensors = h.adapterStateDict();
    const good = art.config;
    const ints = eg.zeros([2, 6], 'int32');
    const bad: [string, unknown, Uint8Array | ArrayBuffer, RegExp][] = [
      ['not JSON', '{"peft_type": "LORA",', art.weights, /adapter_config\.json is not valid JSON/],
      ['deep JSON', '['.repeat(100_000), art.weights, /nested more than/],
      ['other PEFT type', { ...good, peft_type: 'IA3' }, art.weights, /peft_type/],
      ['rank a string', { ...good, r: '2' }, art.weights, /r must be an integer/],
      ['DoRA', { ...good, use_dora: true }, art.weights, /use_dora/],
      ['bias training', { ...good, bias: 'all' }, art.weights, /bias/],
      ['regex target', { ...good, target_modules: '.*' }, art.weights, /target_modules/],
      ['unknown target', { ...good, target_modules: ['attn.q'] }, art.weights, /adapter_config\.json does not fit this model: target 'attn\.q' match no Linear/],
      ['another rank', { ...good, r: 3 }, art.weights, /'base_model\.model\.0\.lora_A\.weight' has shape \[2, 6\] but the model needs \[3, 6\]/],
      ['fewer targets', { ...good, target_modules: ['0'] }, art.weights, /unexpected 'base_model\.model\.2\.lora_A\.weight'/],
      ['more targets', { ...good, target_modules: ['0', '2', '4'], modules_to_save: null }, art.weights, /missing 'base_model\.model\.4\.lora_A\.weight'/],
      ['empty bytes', good, new Uint8Array(0), /shorter than the 8-byte header/],
      ['garbage', good, Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 255), /safetensors/],
      ['truncated', good, art.weights.slice(0, art.weights.length - 4), /outside the .*data section|trailing/],
      ['huge header claim', good, Uint8Array.from([255, 255, 255, 255, 0, 0, 0, 0, 123]), /corrupt safetensors header/],
      ['int tensor', good, eg.saveWeights({ ...tensors, 'base_model.model.0.lora_A.weight': ints }), /'base_model\.model\.0\.lora_A\.weight' is I32, not a floating-point tensor/],
      ['extra tensor', good, eg.saveWeights({ ...tensors, 'base_model.model.0.lora_C.weight': tensors['base_model.model.0.lora_A.weight'] }), /unexpected 'base_model\.model\.0\.lora_C\.weight'/],
    ];
    for (const [name, config, weights, msg] of bad) {
      const m2 = mlp();
      const before = snapshot(m2);
      const err = await lora.loadAdapters(m2, { config: config as string, weights }).then(() => null, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(eg.FormatError);
      expect((err as Error).message, name).toMatch(msg);
      // Unchanged: same tensors, no adapter modules' parameters, no hooks, everything trainable; adapters can be applied.
      expect(snapshot(m2), name).toEqual(before);
      expect([...m2.namedModules()].every(([, mod]) => mod.numForwardHooks === 0), name).toBe(true);
      expect(m2.trainableParameters().length, name).toBe(6);
      lora.apply(m2, { targets: ['0'] }).dispose();
      m2.dispose();
    }
    // Bad arguments are ArgumentErrors.
    await expect(lora.loadAdapters(m, { config: good, weights: 'x' as never })).rejects.toThrow(eg.ArgumentError);
    await expect(lora.loadAdapters(m, art)).rejects.toThrow(/already has LoRA adapters/);
    await expect(lora.loadAdapters(m, art, { maxBytes: -1 })).rejects.toThrow(eg.ArgumentError);
    ints.dispose();
    h.dispose();
    m.dispose();
  });
});

describe('memory', () => {
  it('apply/forward/dispose and untaped forwards 100 times leave memory flat', () => {
    const m = mlp();
    const m2 = mlp();
    const h2 = lora.apply(m2, { targets: ['0', '2', '4'], rank: 2, dropout: 0.1, seed: 2 });
    m2.train();
    const x = input();
    expectFlatOver100Calls([
      ['apply + forward + dispose', () => {
        const h = lora.apply(m, { targets: ['0', '2'], rank: 2, dropout: 0.1, seed: 1 });
        m.train();
        eg.noGrad(() => m.forward(x)).dispose();
        m.eval();
        h.dispose();
      }],
      // Outside tidy and without a tape, the hook frees its intermediates (as Sequential does).
      ['forward outside tidy (no tape)', () => eg.noGrad(() => m2.forward(x))],
    ]);
    h2.dispose();
    m.dispose();
    m2.dispose();
    x.dispose();
  });

  it('merge/unmerge and serialize 100 times leave memory flat', () => {
    const m = mlp();
    const h = lora.apply(m, { targets: ['0', '2'], rank: 2, seed: 1 });
    expectFlatOver100Calls([
      ['merge + unmerge', () => {
        h.merge();
        h.unmerge();
      }],
      ['serializeAdapters', () => h.serializeAdapters()],
    ]);
    h.dispose();
    m.dispose();
  });
});
