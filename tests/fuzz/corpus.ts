/**
 * Valid files for the fuzz suite, made once per run with the real save/serialize APIs from small
 * real models (Linear, Conv2d, BatchNorm, pooling, LSTM, attention; int8-quantized and binary
 * models from the compress API), so every mutation starts from something the loaders accept.
 */
import * as eg from '../../sdk/index.js';

const { nn } = eg;
const C = eg.compress;

/** A float model, its saved artifacts, and a twin (same architecture) whose optimizer loads states. */
export interface ModelBase {
  name: string;
  json: eg.ModelJson;
  weights: Uint8Array;
  /** Per-sample input shape for a forward pass after loading. */
  inputShape: number[];
  inputDtype: 'float32' | 'int32';
  /** Same architecture, used as the target of `loadWeights` and of optimizer states. */
  twin: eg.nn.Module;
  /** An optimizer over `twin` of the class stored in `json` (when it has one). */
  optimizer?: eg.optim.Optimizer<{ lr: number }>;
  /** Its valid state (owned copies). */
  optimizerState?: eg.optim.OptimizerState;
  /** A fresh optimizer of that class over `twin` (each case loads into its own, then disposes it). */
  makeOptimizer?: () => eg.optim.Optimizer<{ lr: number }>;
}

export interface CompressedBase {
  name: string;
  bytes: Uint8Array;
  inputShape: number[];
}

export interface OptimizerBase {
  name: string;
  model: eg.nn.Module;
  optimizer: eg.optim.Optimizer<{ lr: number }>;
  /** A fresh optimizer of the same class and groups over `model`. */
  make: () => eg.optim.Optimizer<{ lr: number }>;
  /** The valid state (group options, steps, moment tensors as owned copies). */
  state: eg.optim.OptimizerState;
}

export interface ScheduleBase {
  name: string;
  optimizer: eg.optim.Optimizer<{ lr: number }>;
  schedule: eg.optim.LRScheduler;
  state: { stepCount: number };
  baseLr: number;
}

/** A training checkpoint (`saveCheckpoint`) and how to build the objects it loads into. */
export interface CheckpointBase {
  name: string;
  json: eg.ModelJson;
  weights: Uint8Array;
  inputShape: number[];
  /** A fresh model, optimizer and schedule of the saved kinds (each case builds and frees its own). */
  make: () => { model: eg.nn.Module; optimizer: eg.optim.Optimizer<{ lr: number }>; schedule: eg.optim.LRScheduler };
  groups: Record<string, number | boolean>[];
  tensorNames: string[][];
}

export interface Corpus {
  models: ModelBase[];
  checkpoints: CheckpointBase[];
  quantized: CompressedBase[];
  binary: CompressedBase[];
  optimizers: OptimizerBase[];
  schedules: ScheduleBase[];
  dispose(): void;
}

type Factory = () => eg.nn.Module;

function trainStep(model: eg.nn.Module, opt: eg.optim.Optimizer<{ lr: number }>, x: eg.Tensor): void {
  eg.tidy(() => {
    opt.zeroGrad();
    model.forward(x).square().mean().backward();
    opt.step();
  });
}

function input(shape: number[], dtype: 'float32' | 'int32', seed: number): eg.Tensor {
  return dtype === 'int32' ? eg.randint([2, ...shape], 0, 5, { seed }) : eg.rand([2, ...shape], -1, 1, { seed });
}

const FLOAT_MODELS: { name: string; make: Factory; inputShape: number[]; dtype?: 'int32'; opt?: (ps: eg.Tensor[]) => eg.optim.Optimizer<{ lr: number }> }[] = [
  {
    name: 'mlp',
    make: () => new nn.Sequential(new nn.Linear(6, 8, { seed: 1 }), new nn.ReLU(), new nn.Dropout(0.1, 2), new nn.Linear(8, 3, { seed: 3 })),
    inputShape: [6],
    opt: (ps) => new eg.optim.Adam(ps, { lr: 0.01 }),
  },
  {
    name: 'cnn',
    make: () => new nn.Sequential(
      new nn.Conv2d(2, 4, 3, { padding: 'same', seed: 4 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(4, 4, 3, { seed: 5 }), new nn.AvgPool2d(1), new nn.Flatten(), new nn.Linear(4, 3, { seed: 6 }),
    ),
    inputShape: [6, 6, 2],
    opt: (ps) => new eg.optim.SGD(ps, { lr: 0.1, momentum: 0.9 }),
  },
  {
    name: 'lstm',
    make: () => new nn.Sequential(new nn.LSTM(4, 5, { seed: 7 }), new nn.LayerNorm(5), new nn.Linear(5, 2, { seed: 8 })),
    inputShape: [3, 4],
  },
  {
    name: 'attention',
    make: () => new nn.Sequential(new nn.Embedding(5, 8, { seed: 9 }), new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16 })),
    inputShape: [3],
    dtype: 'int32',
    opt: (ps) => new eg.optim.RMSProp(ps, { lr: 0.01, momentum: 0.5, centered: true }),
  },
];

async function floatModels(): Promise<ModelBase[]> {
  const out: ModelBase[] = [];
  for (const f of FLOAT_MODELS) {
    const model = f.make();
    const twin = f.make();
    const dtype = f.dtype ?? 'float32';
    const x = input(f.inputShape, dtype, 11);
    let optimizer: eg.optim.Optimizer<{ lr: number }> | undefined;
    let saved: eg.optim.Optimizer<{ lr: number }> | undefined;
    if (f.opt) {
      saved = f.opt(model.parameters());
      trainStep(model, saved, x);
      optimizer = f.opt(twin.parameters());
    }
    model.eval();
    const art = await eg.saveModel(model, undefined, saved ? { optimizer: saved } : {});
    // Without its digest, so mutated weight bytes reach the decoders and the model (with it, every such
    // mutation ends at the digest check, which tests/model-integrity.test.ts covers on its own).
    delete art.json.weightsDigest;
    if (optimizer) {
      // The twin's optimizer starts with the full valid state, so a case that loads adds no tensors.
      const { model: loaded } = await eg.loadModel({ json: art.json, weights: art.weights }, { optimizer });
      loaded.dispose();
      // One step, so the twin's parameters hold their gradient wrappers before the first case counts tensors.
      trainStep(twin, optimizer, x);
    }
    const optimizerState = optimizer ? ownCopy(optimizer.stateDict()) : undefined;
    x.dispose();
    const makeOptimizer = f.opt ? () => f.opt!(twin.parameters()) : undefined;
    out.push({ name: f.name, json: art.json, weights: art.weights, inputShape: f.inputShape, inputDtype: dtype, twin: twin.eval(), optimizer, optimizerState, makeOptimizer });
    model.dispose();
    disposeOptimizer(saved);
  }
  return out;
}

function quantizedModels(): CompressedBase[] {
  const mlp = new nn.Sequential(new nn.Linear(6, 8, { seed: 12 }), new nn.BatchNorm1d(8), new nn.ReLU(), new nn.Linear(8, 3, { seed: 13 }));
  const cnn = new nn.Sequential(
    new nn.Conv2d(2, 4, 3, { padding: 'same', seed: 14 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(4, 4, 3, { padding: 'same', seed: 15 }), new nn.ReLU(), new nn.AvgPool2d(3), new nn.Flatten(), new nn.Linear(4, 3, { seed: 16 }),
  );
  const g = nn.graph;
  const x = g.input('image');
  const c1 = g.call(new nn.Conv2d(2, 4, 3, { padding: 'same', seed: 17 }), x, 'conv1');
  const c2 = c1.pipe(new nn.ReLU()).pipe(new nn.Conv2d(4, 4, 3, { padding: 'same', seed: 18 }), 'conv2');
  const both = g.concat([g.add(c2, c1), g.call(new nn.Conv2d(2, 2, 1, { seed: 19 }), x, 'side')]);
  const graph = new nn.Graph({ inputs: x, outputs: both.pipe(new nn.GlobalAvgPool2d()).pipe(new nn.Linear(6, 3, { seed: 20 }), 'head') });
  const specs: [string, eg.nn.Module, number[]][] = [['q-mlp', mlp, [6]], ['q-cnn', cnn, [6, 6, 2]], ['q-graph', graph, [6, 6, 2]]];
  return specs.map(([name, m, shape], i) => {
    m.eval();
    const calib = eg.rand([32, ...shape], -1, 1, { seed: 30 + i });
    const q = C.quantize(m, calib, { method: 'minmax' });
    const bytes = q.serialize();
    q.dispose();
    calib.dispose();
    m.dispose();
    return { name, bytes, inputShape: shape };
  });
}

function binaryModels(): CompressedBase[] {
  const cnn = new nn.Sequential(
    new nn.Conv2d(1, 4, 3, { padding: 'same', seed: 21 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(4, 8, 3, { padding: 'same', seed: 22 }), new nn.BatchNorm2d(8), new nn.ReLU(),
    new nn.Flatten(), new nn.Linear(4 * 4 * 8, 8, { seed: 23 }), new nn.ReLU(), new nn.Linear(8, 3, { seed: 24 }),
  );
  const mlp = new nn.Sequential(new nn.Linear(6, 8, { seed: 25 }), new nn.ReLU(), new nn.Linear(8, 8, { seed: 26 }), new nn.ReLU(), new nn.Linear(8, 3, { seed: 27 }));
  const specs: [string, eg.nn.Module, number[]][] = [['b-cnn', cnn, [8, 8, 1]], ['b-mlp', mlp, [6]]];
  return specs.map(([name, m, shape]) => {
    const bm = C.binarizeModel(m).eval();
    const packed = C.BinaryModel.fromModule(bm, { inputShape: shape });
    const bytes = packed.serialize();
    packed.dispose();
    bm.dispose();
    m.dispose();
    return { name, bytes, inputShape: shape };
  });
}

const OPTIMIZERS: [string, (ps: eg.Tensor[] | { params: eg.Tensor[]; lr?: number }[]) => eg.optim.Optimizer<{ lr: number }>][] = [
  ['sgd', (ps) => new eg.optim.SGD(ps as eg.Tensor[], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-4 })],
  ['adam', (ps) => new eg.optim.Adam(ps as eg.Tensor[], { lr: 0.01 })],
  ['adamw-groups', (ps) => new eg.optim.AdamW(ps as { params: eg.Tensor[] }[], { lr: 0.01, weightDecay: 0.01 })],
  ['rmsprop', (ps) => new eg.optim.RMSProp(ps as eg.Tensor[], { lr: 0.01, momentum: 0.5, centered: true })],
  ['adagrad', (ps) => new eg.optim.Adagrad(ps as eg.Tensor[], { lr: 0.1 })],
];

function optimizers(): OptimizerBase[] {
  return OPTIMIZERS.map(([name, make], i) => {
    const model = new nn.Sequential(new nn.Linear(3, 4, { seed: 40 + i }), new nn.Tanh(), new nn.Linear(4, 2, { seed: 50 + i }));
    const ps = model.parameters();
    const fresh = () => (name.endsWith('groups') ? make([{ params: ps.slice(0, 2) }, { params: ps.slice(2), lr: 0.001 }]) : make(ps));
    const opt = fresh();
    const x = eg.rand([4, 3], -1, 1, { seed: 60 + i });
    trainStep(model, opt, x);
    trainStep(model, opt, x);
    x.dispose();
    return { name, model, optimizer: opt, make: fresh, state: ownCopy(opt.stateDict()) };
  });
}

/** A copy of a state the optimizer cannot change (its own tensors change with every step). */
function ownCopy(st: eg.optim.OptimizerState): eg.optim.OptimizerState {
  return {
    groups: st.groups.map((g) => ({ ...g })),
    params: st.params.map((p) => ({ step: p.step, tensors: Object.fromEntries(Object.entries(p.tensors).map(([k, t]) => [k, eg.keep(t.clone())])) })),
  };
}

function disposeState(st?: eg.optim.OptimizerState): void {
  for (const p of st?.params ?? []) for (const t of Object.values(p.tensors)) t.dispose();
}

function schedules(): ScheduleBase[] {
  const make: [string, (o: eg.optim.Optimizer<{ lr: number }>) => eg.optim.LRScheduler][] = [
    ['step', (o) => new eg.optim.StepLR(o, 3, 0.5)],
    ['exponential', (o) => new eg.optim.ExponentialLR(o, 0.9)],
    ['cosine', (o) => new eg.optim.CosineAnnealingLR(o, 10, 0.001)],
    ['warmup-cosine', (o) => new eg.optim.LinearWarmup(o, 4, new eg.optim.CosineAnnealingLR(o, 10))],
    ['lambda', (o) => new eg.optim.LambdaLR(o, (t) => 1 / (1 + t))],
  ];
  return make.map(([name, f], i) => {
    const w = eg.keep(eg.zeros([2]).requiresGrad_());
    const optimizer = new eg.optim.SGD([w], { lr: 0.1 });
    const schedule = f(optimizer);
    for (let k = 0; k < 3 + i; k++) schedule.step();
    return { name, optimizer, schedule, state: schedule.stateDict(), baseLr: 0.1 };
  });
}

async function checkpoints(): Promise<CheckpointBase[]> {
  const make = () => {
    const model = new nn.Sequential(new nn.Linear(6, 8, { seed: 70 }), new nn.ReLU(), new nn.Dropout(0.2, 71), new nn.BatchNorm1d(8), new nn.Linear(8, 3, { seed: 72 }));
    const optimizer = new eg.optim.Adam(model.parameters(), { lr: 0.01 });
    const schedule = new eg.optim.LinearWarmup(optimizer, 2, new eg.optim.CosineAnnealingLR(optimizer, 10));
    return { model, optimizer, schedule };
  };
  const { model, optimizer, schedule } = make();
  const x = eg.rand([4, 6], -1, 1, { seed: 73 });
  for (let i = 0; i < 3; i++) {
    trainStep(model, optimizer, x);
    schedule.step();
  }
  const art = await eg.train.saveCheckpoint(model, undefined, { optimizer, schedulers: [schedule], epoch: 1, step: 3 });
  const st = optimizer.stateDict();
  const base: CheckpointBase = {
    name: 'mlp-adam-warmup', json: art.json, weights: art.weights, inputShape: [6], make,
    groups: st.groups.map((g) => ({ ...g })), tensorNames: st.params.map((p) => Object.keys(p.tensors)),
  };
  x.dispose();
  disposeOptimizer(optimizer);
  model.dispose();
  return [base];
}

export function disposeOptimizer(opt?: eg.optim.Optimizer<{ lr: number }>): void {
  if (!opt) return;
  for (const p of opt.stateDict().params) for (const t of Object.values(p.tensors)) t.dispose();
}

/** Builds every valid file once. Takes a second or two. */
export async function makeCorpus(): Promise<Corpus> {
  const models = await floatModels();
  const ckpts = await checkpoints();
  const quantized = quantizedModels();
  const binary = binaryModels();
  const opts = optimizers();
  const scheds = schedules();
  return {
    models, checkpoints: ckpts, quantized, binary, optimizers: opts, schedules: scheds,
    dispose() {
      for (const m of models) {
        disposeOptimizer(m.optimizer);
        disposeState(m.optimizerState);
        m.twin.dispose();
      }
      for (const o of opts) {
        disposeOptimizer(o.optimizer);
        disposeState(o.state);
        o.model.dispose();
      }
      for (const s of scheds) for (const g of s.optimizer.groups) for (const p of g.params) p.dispose();
    },
  };
}
