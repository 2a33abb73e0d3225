/**
 * Issue 13, defect 10 across the whole public API: walks every function and class exported from
 * the SDK (eg.*, eg.nn.* (and its graph, functional, interop and text namespaces), eg.optim.*, eg.losses.*, eg.data.*, eg.train.*, eg.train.metrics.*,
 * eg.compress.*, eg.compress.int8.*, eg.explain.*, eg.attacks.*, eg.viz.*, eg.robust.*, eg.privacy.*, eg.he.*) and the public methods of representative
 * instances, calling each with null, undefined, a number, a string, a bigint, {}, a disposed tensor and an
 * options object whose every field is mistyped in
 * each required argument position and the first optional one (the positions before it filled with
 * a plausible tensor, model or number). Every failure must be an EdgegradError subclass (never a raw TypeError/RangeError),
 * and afterwards the engine still computes and no tensor has leaked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { BAD_ARGUMENTS, setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

type Fn = (...a: unknown[]) => unknown;

/** Exports not walked, each with the reason (they change process-wide state on purpose). */
const EXEMPT: Record<string, string> = {
  'eg.init': 'starts the engine (its options are tested in memory-limit/engine tests)',
  'eg.shutdownWorkers': 'stops the worker pool',
  'eg.setNumThreads': 'resizes the worker pool (tested in arguments.test.ts)',
  'eg.setMemoryLimit': 'a small number is a valid (tiny) limit',
  'eg.withAllocationLimit': 'a small number is a valid (tiny) limit',
  'eg.setTrapRecovery': 'engine-internal hook',
  'eg.fromEngineError': 'converts any value to an error by design',
  'eg.setRngState': 'replaces the global RNG stream (tested in resume.test.ts)',
  'nn.registerModule': 'registers a class globally',
  'compress.timeMs': 'runs its function (checked on its own below)',
  'eg.Tensor': "wraps an engine handle only for the SDK itself (see 'new Tensor() from user code is refused')",
};

// What comes before the bad argument: a tensor, a model, a number or a list of tensors.
const model = (): eg.nn.Sequential => new eg.nn.Sequential(new eg.nn.Linear(3, 2, { seed: 1 }));
const FILL: [string, () => unknown][] = [
  ['T', () => eg.rand([4, 3], 0, 1, { seed: 1 })],
  ['M', model],
  ['N', () => 2],
  ['[T]', () => [eg.rand([4, 3], 0, 1, { seed: 2 })]],
];

/** Positions where a string is a valid argument (a folder to write into): not passed a string there. */
// Paths: a string there is a valid argument and would write files into the working directory.
const STRING_OK: Record<string, number> = { 'eg.saveModel': 1, 'train.saveCheckpoint': 1, 'compress.saveQuantizedModel': 1, 'LoraHandle.saveAdapters': 0 };

const isClass = (f: unknown, name: string): boolean => typeof f === 'function' && /^[A-Z]/.test(name);

/** Disposes whatever a call returned that owns tensors (a model, a tensor, arrays of them). */
function release(r: unknown): void {
  if (Array.isArray(r)) r.forEach(release);
  else if (r && typeof (r as { model?: { dispose?: unknown } }).model?.dispose === 'function') release((r as { model: unknown }).model);
  else if (r && typeof (r as { dispose?: unknown }).dispose === 'function') (r as { dispose(): void }).dispose();
}

/** Runs `f` (awaiting a promise under a time bound) and returns its untyped error, if any. */
async function untyped(f: () => unknown): Promise<string | null> {
  let made: unknown[] = [];
  try {
    let r: unknown;
    eg.tidy(() => {
      r = f();
    });
    made.push(r);
    if (r instanceof Promise) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const bound = new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error('no answer within 10 s')), 10_000);
      });
      try {
        made = [await Promise.race([r, bound])];
      } finally {
        clearTimeout(timer);
      }
    }
    return null;
  } catch (e) {
    return e instanceof eg.EdgegradError ? null : `${(e as Error)?.constructor?.name}: ${String((e as Error)?.message).slice(0, 160)}`;
  } finally {
    made.forEach(release);
  }
}

/** Calls `call(args)` with each bad value at positions 0..maxPos (fillers before it); returns the untyped failures. */
async function walk(name: string, call: (args: unknown[]) => unknown, maxPos: number): Promise<string[]> {
  const raw: string[] = [];
  for (let p = 0; p <= maxPos; p++) {
    for (const [fillName, fill] of p === 0 ? [FILL[0]] : FILL) {
      for (const [badName, bad] of BAD_ARGUMENTS) {
        if (badName === '"2"' && STRING_OK[name] === p) continue;
        const shown = `${name}(${[...Array(p)].map(() => fillName).concat(badName).join(', ')})`;
        // Fillers are made inside the call's tidy scope; models among them are freed after.
        const fillers: unknown[] = [];
        const err = await untyped(() => {
          for (let i = 0; i < p; i++) fillers.push(fill());
          return call([...fillers, bad()]);
        });
        fillers.forEach(release);
        if (err) raw.push(`${shown} -> ${err}`);
      }
    }
  }
  return raw;
}

const NAMESPACES: Record<string, Record<string, unknown>> = {
  eg: eg as unknown as Record<string, unknown>,
  nn: eg.nn as unknown as Record<string, unknown>,
  'nn.graph': eg.nn.graph as unknown as Record<string, unknown>,
  'nn.functional': eg.nn.functional as unknown as Record<string, unknown>,
  'nn.interop': eg.nn.interop as unknown as Record<string, unknown>,
  'nn.text': eg.nn.text as unknown as Record<string, unknown>,
  optim: eg.optim as unknown as Record<string, unknown>,
  losses: eg.losses as unknown as Record<string, unknown>,
  data: eg.data as unknown as Record<string, unknown>,
  train: eg.train as unknown as Record<string, unknown>,
  metrics: eg.train.metrics as unknown as Record<string, unknown>,
  compress: eg.compress as unknown as Record<string, unknown>,
  int8: eg.compress.int8 as unknown as Record<string, unknown>,
  explain: eg.explain as unknown as Record<string, unknown>,
  attacks: eg.attacks as unknown as Record<string, unknown>,
  viz: eg.viz as unknown as Record<string, unknown>,
  robust: eg.robust as unknown as Record<string, unknown>,
  privacy: eg.privacy as unknown as Record<string, unknown>,
  he: eg.he as unknown as Record<string, unknown>,
  onnx: eg.onnx as unknown as Record<string, unknown>,
  'nn.lora': eg.nn.lora as unknown as Record<string, unknown>,
};

/** The exported functions and classes of a namespace (error classes and exemptions left out). */
function exportsOf(ns: string): [string, Fn][] {
  const fns = Object.entries(NAMESPACES[ns]).filter(([, f]) => typeof f === 'function') as [string, Fn][];
  return fns.filter(([name, f]) => !(f === Error || f.prototype instanceof Error) && !(`${ns}.${name}` in EXEMPT));
}

/** After every walk: the engine computes on every thread, and no tensor is left behind. */
let liveBefore = 0;
beforeAll(() => {
  liveBefore = eg.memory().numTensors;
});
afterAll(() => {
  expect(eg.tidy(() => eg.ones([64, 64]).matmul(eg.ones([64, 64])).sum().item())).toBe(64 * 64 * 64);
});

describe('every exported function and class refuses wrong argument types with a typed error', () => {
  for (const ns of Object.keys(NAMESPACES)) {
    it(`${ns}.*`, async () => {
      const fns = exportsOf(ns);
      expect(fns.length).toBeGreaterThan(3);
      const raw: string[] = [];
      for (const [name, f] of fns) {
        const call = isClass(f, name) ? (a: unknown[]) => new (f as unknown as new (...x: unknown[]) => unknown)(...a) : (a: unknown[]) => f(...a);
        // Every required parameter and the first optional one (often the options object), at most 4.
        raw.push(...(await walk(`${ns}.${name}`, call, Math.min(3, f.length))));
      }
      expect(raw).toEqual([]);
      expect(eg.tidy(() => eg.ones([8, 8]).matmul(eg.ones([8, 8])).sum().item())).toBe(512);
    });
  }
});

// Representative instances: their public methods (TypeScript-protected ones are not API).
const PROTECTED = new Set(['buildOrFree', 'readCallCount', 'validate', 'stateNames', 'update', 'stateOf', 'run', 'withFrozenParameters', 'gradients', 'outputs', 'rowOutputs', 'dispose', 'invoke', 'gradientPass', 'withLayer', 'layerOutput', 'layerGradients']);
/**
 * Protected/private helpers of a class family, skipped on that family only (models and optimizers
 * have a public predict, evaluate and step).
 */
const INTERNALS: [abstract new (...a: never[]) => object, Set<string>][] = [
  [eg.attacks.Attack, new Set(['batch', 'clip', 'logits', 'checkClasses', 'objective', 'lossGradient', 'predict', 'succeeded', 'result', 'project', 'start', 'step'])],
  [eg.explain.PerturbationAttribution, new Set(['perEval', 'evaluate', 'spread', 'keepFeatures', 'start'])],
];
const isInternal = (obj: object, k: string): boolean => INTERNALS.some(([cls, names]) => obj instanceof cls && names.has(k));
const calibration = (): eg.Tensor => eg.rand([8, 3], 0, 1, { seed: 3 });

interface Instance {
  obj: object;
  free(): void;
}
function withModel<T extends object>(f: (m: eg.nn.Sequential) => T): Instance {
  const m = model();
  const obj = f(m);
  return { obj, free: () => { release(obj); m.dispose(); } };
}
const INSTANCES: [string, () => Instance][] = [
  ['Tensor', () => { const t = eg.rand([4, 3], 0, 1, { seed: 1 }); return { obj: t, free: () => t.dispose() }; }],
  ['Sequential', () => withModel((m) => m)],
  ['LSTM', () => { const m = new eg.nn.LSTM(3, 2); return { obj: m, free: () => m.dispose() }; }],
  ['MultiHeadAttention', () => { const m = new eg.nn.MultiHeadAttention(4, 2); return { obj: m, free: () => m.dispose() }; }],
  ['compiled Sequential', () => {
    const m = model();
    m.compile({ optimizer: new eg.optim.SGD(m.parameters(), { lr: 0.1 }), loss: 'mse' });
    return { obj: m, free: () => m.dispose() };
  }],
  ['Graph', () => {
    const inp = eg.nn.graph.input('x');
    const g = new eg.nn.Graph({ inputs: inp, outputs: eg.nn.graph.call(new eg.nn.Linear(3, 2, { seed: 1 }), inp) });
    return { obj: g, free: () => g.dispose() };
  }],
  ['GPT', () => { const m = new eg.nn.GPT({ vocabSize: 11, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 4 }); return { obj: m, free: () => m.dispose() }; }],
  ['SGD', () => withModel((m) => new eg.optim.SGD(m.parameters(), { lr: 0.1 }))],
  ['RMSProp', () => withModel((m) => new eg.optim.RMSProp(m.parameters(), { lr: 0.1 }))],
  ['Adagrad', () => withModel((m) => new eg.optim.Adagrad(m.parameters(), { lr: 0.1 }))],
  ['CosineAnnealingLR', () => withModel((m) => new eg.optim.CosineAnnealingLR(new eg.optim.SGD(m.parameters(), { lr: 0.1 }), 3))],
  ['LinearWarmup', () => withModel((m) => new eg.optim.LinearWarmup(new eg.optim.SGD(m.parameters(), { lr: 0.1 }), 3))],
  ['LambdaLR', () => withModel((m) => new eg.optim.LambdaLR(new eg.optim.SGD(m.parameters(), { lr: 0.1 }), () => 1))],
  ['EarlyStopping', () => { const c = new eg.train.EarlyStopping(); return { obj: c, free: () => {} }; }],
  ['ModelCheckpoint', () => { const c = new eg.train.ModelCheckpoint({ onSave: () => {} }); return { obj: c, free: () => {} }; }],
  ['PolynomialDecay', () => ({ obj: new eg.compress.PolynomialDecay({ finalSparsity: 0.5, endStep: 4 }), free: () => {} })],
  ['PruningCallback', () => withModel((m) => new eg.compress.PruningCallback(new eg.compress.Pruner(m), new eg.compress.PolynomialDecay({ finalSparsity: 0.5, endStep: 4 })))],
  ['GradientShap', () => withModel((m) => new eg.explain.GradientShap(m))],
  ['DeepLift', () => withModel((m) => new eg.explain.DeepLift(m))],
  ['GuidedBackprop', () => withModel((m) => new eg.explain.GuidedBackprop(m))],
  ['NoiseTunnel', () => withModel((m) => new eg.explain.NoiseTunnel(new eg.explain.Saliency(m)))],
  ['Adam', () => withModel((m) => new eg.optim.Adam(m.parameters(), { lr: 0.1 }))],
  ['StepLR', () => withModel((m) => new eg.optim.StepLR(new eg.optim.SGD(m.parameters(), { lr: 0.1 }), 2))],
  ['QuantizedModel', () => withModel((m) => eg.tidy(() => eg.compress.quantize(m, calibration())))],
  ['BinaryModel', () => withModel((m) => eg.compress.BinaryModel.fromModule(m, { inputShape: [3] }))],
  ['QATModel', () => withModel((m) => eg.compress.prepareQAT(m, { inputShape: [3] }))],
  ['Pruner', () => withModel((m) => new eg.compress.Pruner(m))],
  ['Dataset', () => { const x = eg.rand([4, 3], 0, 1, { seed: 1 }); return { obj: eg.data.Dataset.fromTensors(x), free: () => x.dispose() }; }],
  ['Standardizer', () => { const s = new eg.data.Standardizer(); eg.tidy(() => s.fit(eg.rand([4, 3], 0, 1, { seed: 1 }))); return { obj: s, free: () => s.dispose() }; }],
  ['Saliency', () => withModel((m) => new eg.explain.Saliency(m))],
  ['IntegratedGradients', () => withModel((m) => new eg.explain.IntegratedGradients(m))],
  ['LayerGradCam', () => withModel((m) => new eg.explain.LayerGradCam(m, '0'))],
  ['GuidedGradCam', () => withModel((m) => new eg.explain.GuidedGradCam(m, '0'))],
  ['LayerIntegratedGradients', () => withModel((m) => new eg.explain.LayerIntegratedGradients(m, '0'))],
  ['LayerActivation', () => withModel((m) => new eg.explain.LayerActivation(m, '0'))],
  ['Occlusion', () => withModel((m) => new eg.explain.Occlusion(m))],
  ['FeatureAblation', () => withModel((m) => new eg.explain.FeatureAblation(m))],
  ['KernelShap', () => withModel((m) => new eg.explain.KernelShap(m))],
  ['Lime', () => withModel((m) => new eg.explain.Lime(m))],
  ['FGSM', () => withModel((m) => new eg.attacks.FGSM(m))],
  ['PGD', () => withModel((m) => new eg.attacks.PGD(m))],
  ['DeepFool', () => withModel((m) => new eg.attacks.DeepFool(m))],
  ['CarliniWagnerL2', () => withModel((m) => new eg.attacks.CarliniWagnerL2(m))],
  ['APGDCE', () => withModel((m) => new eg.attacks.APGDCE(m))],
  ['SquareAttack', () => withModel((m) => new eg.attacks.SquareAttack(m))],
  ['SmoothedClassifier', () => withModel((m) => new eg.robust.SmoothedClassifier(m, { sigma: 0.5, numClasses: 2 }))],
  ['GuardedModel', () => withModel((m) => eg.robust.guard(m, { shape: [3] }))],
  ['FeatureSqueezingDetector', () => withModel((m) => new eg.robust.FeatureSqueezingDetector(m, { squeezers: [eg.robust.bitDepth(4)] }))],
  ['PrivacyEngine', () => ({ obj: new eg.privacy.PrivacyEngine({ accountant: 'rdp' }), free: () => {} })],
  ['RDPAccountant', () => ({ obj: new eg.privacy.RDPAccountant(), free: () => {} })],
  ['PRVAccountant', () => ({ obj: new eg.privacy.PRVAccountant(), free: () => {} })],
  ['GaussianAccountant', () => ({ obj: new eg.privacy.GaussianAccountant(), free: () => {} })],
  ['BertForMaskedLM', () => { const m = new eg.nn.BertForMaskedLM({ vocabSize: 12, maxPositions: 8, hiddenSize: 8, numLayers: 1, numHeads: 2 }); return { obj: m, free: () => m.dispose() }; }],
  ['WordPieceTokenizer', () => ({ obj: eg.nn.WordPieceTokenizer.train(['the cat sat', 'the dog ran'], { vocabSize: 40 }), free: () => {} })],
  ['LoraHandle', () => {
    const m = model();
    const h = eg.nn.lora.apply(m, { targets: ['0'], rank: 1 });
    return { obj: h, free: () => { h.dispose(); m.dispose(); } };
  }],
  ['OnnxModule', () => {
    const m = model();
    const o = eg.onnx.importModel(eg.onnx.exportModel(m, { inputShapes: [1, 3] }));
    m.dispose();
    return { obj: o, free: () => o.dispose() };
  }],
];

/** Callback hooks (onEpochEnd, afterBatchEnd...) are called by fit with its context, not by users. */
const isHook = (k: string): boolean => /^(on|after)[A-Z]/.test(k);

function publicMethods(obj: object): string[] {
  const names = new Set<string>();
  for (let p = Object.getPrototypeOf(obj); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) {
      if (isInternal(obj, k)) continue;
      if (k !== 'constructor' && !PROTECTED.has(k) && !isHook(k) && typeof Object.getOwnPropertyDescriptor(p, k)!.value === 'function') names.add(k);
    }
  }
  return [...names];
}

describe('public methods of models, optimizers, schedules, compressed models and data helpers', () => {
  for (const [name, make] of INSTANCES) {
    it(name, async () => {
      const probe = make();
      const methods = publicMethods(probe.obj);
      const arities = new Map(methods.map((k) => [k, (probe.obj as Record<string, Fn>)[k].length]));
      probe.free();
      expect(methods.length).toBeGreaterThan(0);
      const raw: string[] = [];
      for (const method of methods) {
        const arity = arities.get(method) ?? 0;
        raw.push(...(await walk(`${name}.${method}`, (args) => {
          const inst = make();
          try {
            return (inst.obj as Record<string, Fn>)[method](...args);
          } finally {
            inst.free();
          }
        }, Math.min(2, arity))));
      }
      expect(raw).toEqual([]);
    });
  }
});

describe('typed errors name the problem', () => {
  it('the ones this walk found, each with its message', async () => {
    const t = eg.keep(eg.rand([4, 3], 0, 1, { seed: 1 }));
    const m = model();
    expect(() => eg.serializeModel(null as never)).toThrow(/serializeModel needs a Module, got null/);
    await expect(eg.saveModel(5 as never)).rejects.toThrow(eg.ArgumentError);
    expect(() => eg.encodeSafetensors(null as never)).toThrow(/named tensors/);
    expect(() => eg.saveWeights({ w: 5 } as never)).toThrow(/'w' must be a Tensor, got 5/);
    expect(() => eg.loadWeights(m, '2' as never)).toThrow(/safetensors bytes/);
    expect(() => eg.compress.quantizeTensor(t, null as never)).toThrow(/quantizeTensor: q must be \{ scale, zeroPoint \}, got null/);
    expect(() => eg.compress.quantizeTensor(t, { scale: '2', zeroPoint: 0 } as never)).toThrow(/q.scale must be a number/);
    expect(() => eg.compress.int8.qmaxPool2d(t, [2] as never, [2, 2], [0, 0])).toThrow(/kernel must be an array of 2 sizes/);
    expect(() => eg.compress.traceModel({} as never, [3])).toThrow(/traceModel needs a Module/);
    expect(() => eg.compress.disposeGraph(null as never)).toThrow(/needs a graph/);
    expect(() => eg.compress.magnitudePrune(null as never, 0.5)).toThrow(/Pruner needs a Module/);
    expect(() => eg.compress.magnitudePrune(m, '0.5' as never)).toThrow(/sparsity must be in \[0, 1\], got "0.5"/);
    await expect(eg.compress.distill(t, t, null as never)).rejects.toThrow(/distill needs options/);
    expect(() => eg.data.oneHot(null as never, 3)).toThrow(/oneHot needs int32 labels/);
    expect(() => eg.data.trainTestSplit([t, 5] as never)).toThrow(/trainTestSplit needs Tensors, got 5/);
    expect(() => eg.train.metrics.accuracy(t, null as never)).toThrow(/accuracy needs the targets as a Tensor/);
    expect(() => new eg.train.ModelCheckpoint(null as never)).toThrow(eg.ArgumentError);
    expect(() => new eg.train.EarlyStopping({ patience: '3' } as never)).toThrow(/patience must be an integer/);
    expect(() => eg.nn.scaledDotProductAttention(t, t, t, { mask: 5 } as never)).toThrow(/mask must be a Tensor/);
    expect(() => eg.nn.lengthsToMask(null as never, 3)).toThrow(/lengthsToMask needs an array \(or typed array\) of integers, got null/);
    expect(() => m.loadStateDict(m.stateDict(), null as never)).toThrow(/loadStateDict options must be an object/);
    expect(() => eg.compress.timeMs(null as never)).toThrow(/timeMs: fn must be a function/);
    expect(() => eg.compress.timeMs(() => {}, '2' as never)).toThrow(/reps must be an integer/);
    await expect(eg.loadDigits(null as never)).rejects.toThrow(/loadDigits options must be an object/);
    m.dispose();
    t.dispose();
  });

  it('new Tensor() from user code is refused: a raw handle would alias, and on dispose free, another tensor', () => {
    const t = eg.tensor([1, 2, 3]);
    const before = eg.memory().numTensors;
    expect(() => new eg.Tensor(t.handle)).toThrow(eg.ArgumentError);
    expect(() => new eg.Tensor(t.handle)).toThrow(/internal/);
    expect(eg.memory().numTensors).toBe(before);
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3]);
    t.dispose();
  });

  it('a constructor that finds a bad option after building layers frees them', () => {
    const before = eg.memory().numTensors;
    const { nn } = eg;
    expect(() => new nn.VGG({ stages: [[1, 4], [1, '8']] } as never)).toThrow(eg.ArgumentError);
    expect(() => new nn.VGG({ stages: [[1, 4], 5] } as never)).toThrow(/\[numConvs, channels\] pairs, got 5/);
    expect(() => new nn.Inception({ modules: [{ c1: 2, c3reduce: 2, c3: 2, c5reduce: 2, c5: 2, pool: 2 }, { c1: 'x' }] } as never)).toThrow(eg.EdgegradError);
    expect(() => new nn.GPTMLP(4, { dropout: '2' } as never)).toThrow(eg.ArgumentError);
    expect(() => new nn.CausalSelfAttention(4, 2, { dropout: 2 })).toThrow(eg.ArgumentError);
    expect(eg.memory().numTensors).toBe(before);
  });

  it('no tensor leaked over the whole walk', () => {
    expect(eg.memory().numTensors).toBe(liveBefore);
  });
});
