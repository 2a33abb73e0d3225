/**
 * Training checkpoints: what a resumed run needs to end bitwise where an uninterrupted one would.
 * Weights, buffers and the optimizer's state travel through `saveModel`/`loadModel` as always; the
 * rest — epoch and batch position, the global RNG stream's position (dropout masks), the history and
 * the running means of a partial epoch, LR schedules, callbacks' state, layers' extra state (seeded
 * dropout counters) — is the `training` field of `model.json`, with its tensors stored as
 * `training.<name>` in the same safetensors file. One format: a checkpoint is a loadable model.
 * Data order needs no state: `fit` derives each epoch's shuffle from (seed, epoch).
 */
import { ArgumentError, EdgegradError, FormatError } from '../errors.js';
import { fail, v, validate, type Schema } from '../io/validate.js';
import { getRngState, setRngState, type RngState } from '../creation.js';
import { keep } from '../memory.js';
import { loadModel, saveModel, type ModelArtifacts, type ModelJson, type ModelSource } from '../io/model-io.js';
import { assertModule, type Module } from '../nn/module.js';
import { checkOptions } from '../args.js';
import type { Optimizer } from '../optim/optimizers.js';
import type { LRScheduler } from '../optim/schedules.js';
import type { Tensor } from '../tensor.js';

/** The training state of a checkpoint (non-finite numbers restored from their tags). */
export interface TrainingState {
  /** Format version of the training state (1). */
  version: 1;
  /** The epoch to continue in: epochs completed when `batch` is 0. */
  epoch: number;
  /** Batches of `epoch` already trained (0 at an epoch boundary). */
  batch: number;
  /** Optimizer steps taken by `fit` (or given to `saveCheckpoint`). */
  step: number;
  /** Weighted sums of the partial epoch's logs (when `batch` > 0). */
  meter: {
    /** Each log value summed over the finished batches, weighted by batch size. */
    sums: Record<string, number>;
    /** Samples the sums cover. */
    count: number;
  } | null;
  /** A callback had stopped training. */
  stopped: boolean;
  /** State of the engine's seeded RNG at the save point, restored so a resumed run draws the same numbers. */
  rng: RngState;
  /** The `fit` history up to the save point. */
  history: {
    /** The finished epochs' indices. */
    epoch: number[];
    /** Each logged value, one entry per finished epoch. */
    history: Record<string, number[]>;
  };
  /** How `fit` batched the data (a mid-epoch resume needs the same). */
  data: {
    /** Samples per batch. */
    batchSize: number;
    /** Whether each epoch was shuffled. */
    shuffle: boolean;
    /** Seed of the per-epoch shuffles. */
    seed: number;
  } | null;
  /** Per callback of `fit` (by position): its class and `stateDict()` values. */
  callbacks: ({
    /** The callback's class name, checked on resume. */
    className: string;
    /** Its `stateDict().values`. */
    values: Record<string, unknown>;
  } | null)[];
  /** Schedulers given to `saveCheckpoint` (by position). */
  schedulers: {
    /** Steps the schedule had taken. */
    stepCount: number;
    /** Its groups' initial learning rates. */
    baseLrs?: number[];
  }[];
  /** `getExtraState()` of the model's layers, by module path. */
  modules: Record<string, unknown>;
}

// ------------------------------------------------------------------ JSON with non-finite numbers

// JSON has no NaN or Infinity, yet losses diverge and EarlyStopping starts from NaN: such numbers are
// stored as { "$number": "NaN" } and restored exactly; finite doubles survive JSON exactly.
const NONFINITE = ['NaN', 'Infinity', '-Infinity'] as const;
const MAX_DEPTH = 32;

/** Deep copy with non-finite numbers tagged (so the value survives `JSON.stringify`). */
export function encodeJson(x: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new ArgumentError(`training state nests deeper than ${MAX_DEPTH} levels`);
  if (typeof x === 'number') return Number.isFinite(x) ? x : { $number: String(x) };
  if (Array.isArray(x)) return x.map((y) => encodeJson(y, depth + 1));
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, encodeJson(y, depth + 1)]));
  return x;
}

const isTag = (x: unknown): x is { $number: string } => x !== null && typeof x === 'object' && !Array.isArray(x)
  && Object.keys(x).length === 1 && NONFINITE.includes((x as { $number: never }).$number);

/** Inverse of `encodeJson` on a value already checked by `v.json()` (bounded, acyclic). */
function untag(x: unknown): unknown {
  if (isTag(x)) return Number(x.$number);
  if (Array.isArray(x)) return x.map(untag);
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, untag(y)]));
  return x;
}

// ------------------------------------------------------------------ schema (io/validate.ts)

/** Any number, NaN and infinities included (losses, monitored values), stored or tagged. */
export const anyNumber: Schema<number> = {
  expect: `a number or { $number: ${NONFINITE.map((n) => `'${n}'`).join(' | ')} }`,
  check(x, path) {
    if (typeof x === 'number') return x;
    if (isTag(x)) return Number(x.$number);
    return fail(path, `must be ${this.expect}`);
  },
};
// Bounds that no real run reaches: they reject absurd values before anything is sized by them.
const count = v.int({ min: 0, max: 2 ** 40 });
const epochs = v.int({ min: 0, max: 1e9 });
const word = v.int({ min: 0, max: 0xffff_ffff });
const freeJson = v.json({ maxDepth: MAX_DEPTH });

const trainingStateSchema: Schema<TrainingState> = v.refine(v.object({
  version: v.literal(1 as const),
  epoch: epochs,
  batch: v.int({ min: 0, max: 2 ** 40 }),
  step: count,
  meter: v.union<TrainingState['meter']>(v.literal(null), v.object({ sums: v.record(anyNumber, { maxKeys: 1000 }), count })),
  stopped: v.boolean(),
  rng: v.object({ key: v.tuple<[number, number]>([word, word]), counter: v.tuple<[number, number]>([word, word]) }),
  history: v.refine(
    v.object({ epoch: v.array(epochs, { max: 1e9 }), history: v.record(v.array(anyNumber, { max: 1e9 }), { maxKeys: 1000 }) }),
    (h) => (Object.values(h.history).every((series) => series.length <= h.epoch.length) ? null : `has a series longer than its ${h.epoch.length} epochs`),
  ),
  data: v.union<TrainingState['data']>(v.literal(null), v.object({ batchSize: v.int({ min: 1, max: 2 ** 31 }), shuffle: v.boolean(), seed: v.int({ min: 0 }) })),
  callbacks: v.array(v.union<TrainingState['callbacks'][number]>(v.literal(null), v.object({
    className: v.string({ minLength: 1, maxLength: 200 }),
    values: v.record(freeJson, { maxKeys: 1000 }),
  })), { max: 10_000 }),
  schedulers: v.array(v.object({ stepCount: count }, { optional: { baseLrs: v.array(v.number(), { max: 4096 }) } }), { max: 10_000 }),
  modules: v.record(freeJson, { maxKeys: 1_000_000 }),
}), (st) => (st.batch > 0 && !st.meter ? 'needs its meter inside an epoch (batch > 0)' : null)) as Schema<TrainingState>;

/** Validates a stored `training` field; every problem is a FormatError naming the field. */
export function readTrainingState(raw: unknown): TrainingState {
  const st = validate(trainingStateSchema, raw, 'training state');
  for (const c of st.callbacks) if (c) c.values = untag(c.values) as Record<string, unknown>;
  st.modules = untag(st.modules) as Record<string, unknown>;
  return st;
}

// ------------------------------------------------------------------ capture and restore

/** `getExtraState()` of every layer that has some, by module path. */
export function moduleStates(model: Module): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [path, m] of model.namedModules()) {
    const s = m.getExtraState();
    if (s !== undefined) out[path] = s;
  }
  return out;
}

function restoreModuleStates(model: Module, states: Record<string, unknown>): void {
  const byPath = new Map(model.namedModules());
  for (const [path, s] of Object.entries(states)) {
    const m = byPath.get(path);
    if (!m) throw new FormatError(`the checkpoint holds state for layer '${path.slice(0, 80)}', which the model does not have`);
    try {
      m.setExtraState(s);
    } catch (e) {
      throw new FormatError(`checkpoint state of layer '${path.slice(0, 80)}': ${(e as Error).message}`);
    }
  }
}

function schedulerState(s: LRScheduler): { stepCount: number; baseLrs?: number[] } {
  return { ...s.stateDict() };
}

/** The parts of a training state that `fit` fills in; `saveCheckpoint` leaves them at their defaults. */
export type FitPart = Partial<Pick<TrainingState, 'epoch' | 'batch' | 'step' | 'meter' | 'stopped' | 'history' | 'data' | 'callbacks'>>;

/** The training state now: global RNG position, layers' extra state, schedulers, plus `fit`'s part. */
export function captureTrainingState(model: Module, o: { schedulers?: LRScheduler[] } & FitPart = {}): Record<string, unknown> {
  const state: TrainingState = {
    version: 1, epoch: o.epoch ?? 0, batch: o.batch ?? 0, step: o.step ?? 0, meter: o.meter ?? null, stopped: o.stopped ?? false,
    rng: getRngState(), history: o.history ?? { epoch: [], history: {} }, data: o.data ?? null, callbacks: o.callbacks ?? [],
    schedulers: (o.schedulers ?? []).map(schedulerState), modules: moduleStates(model),
  };
  return encodeJson(state) as Record<string, unknown>;
}

/** Options of `saveCheckpoint`. */
export interface CheckpointOptions {
  /** Also save this optimizer's state (restored by `loadCheckpoint`). */
  optimizer?: Optimizer;
  /** LR schedules to restore with `loadCheckpoint` (same order). */
  schedulers?: LRScheduler[];
  /** Your loop's position (stored as the state's epoch and step). */
  epoch?: number;
  /** Optimizer steps completed at the save point (default 0). */
  step?: number;
  /** Anything the caller wants stored in model.json. */
  userData?: Record<string, unknown>;
}

/**
 * Saves a checkpoint for a hand-written training loop: the model (and optimizer) as `saveModel`
 * does, plus the RNG position, schedulers and layers' extra state. Node: writes `dir`; anywhere:
 * returns the artifacts. (Inside `fit`, use `ModelCheckpoint({ saveTrainingState: true })`.)
 */
export async function saveCheckpoint(model: Module, dir?: string, o: CheckpointOptions = {}): Promise<ModelArtifacts> {
  assertModule(model, 'saveCheckpoint');
  o = checkOptions(o, 'saveCheckpoint options');
  for (const [v, n] of [[o.epoch, 'epoch'], [o.step, 'step']] as const) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new ArgumentError(`saveCheckpoint: ${n} must be a non-negative integer, got ${v}`);
  }
  const state = captureTrainingState(model, { schedulers: o.schedulers, epoch: o.epoch, step: o.step });
  return saveModel(model, dir, { optimizer: o.optimizer, userData: o.userData, training: { state } });
}

/** What `readCheckpoint` hands back: the validated state and copies of its tensors (the caller frees them). */
export interface ReadCheckpoint {
  model: Module;
  json: ModelJson;
  state: TrainingState;
  tensors: Record<string, Tensor>;
}

/**
 * Reads a checkpoint into `o.model` (or a model built from it) and `o.optimizer`, validates the
 * training state and restores the layers' extra state. Applies nothing global (RNG, schedulers):
 * callers do that when their run is about to continue.
 */
export async function readCheckpoint(src: ModelSource, o: { model?: Module; optimizer?: Optimizer }): Promise<ReadCheckpoint> {
  let raw: unknown;
  const tensors: Record<string, Tensor> = {};
  const freeTensors = () => { for (const t of Object.values(tensors)) t.dispose(); };
  let loaded: Module;
  let json: ModelJson;
  try {
    ({ model: loaded, json } = await loadModel(src, {
      optimizer: o.optimizer,
      training: (s, ts) => {
        raw = s;
        for (const [k, t] of Object.entries(ts)) tensors[k] = keep(t.clone());
      },
    }));
  } catch (e) {
    freeTensors();
    if (e instanceof EdgegradError) throw e;
    throw new FormatError(`cannot load the checkpoint: ${(e as Error).message}`);
  }
  let ownLoaded = true; // until handed to the caller or freed
  try {
    if (raw === undefined) throw new FormatError('this model file holds no training state (save it with ModelCheckpoint({ saveTrainingState: true }) or saveCheckpoint)');
    const state = readTrainingState(raw);
    let model = loaded;
    if (o.model) {
      try {
        o.model.loadStateDict(loaded.stateDict(), { strict: true });
      } catch (e) {
        throw new ArgumentError(`the checkpoint does not match this model: ${(e as Error).message}`);
      } finally {
        loaded.dispose();
        ownLoaded = false;
      }
      model = o.model;
    }
    restoreModuleStates(model, state.modules);
    ownLoaded = false;
    return { model, json, state, tensors };
  } catch (e) {
    if (ownLoaded) loaded.dispose();
    freeTensors();
    throw e;
  }
}

/** Restores the schedulers' states (same count and order as saved). */
export function restoreSchedulers(schedulers: LRScheduler[], states: TrainingState['schedulers'], what = 'checkpoint'): void {
  if (states.length !== schedulers.length) throw new ArgumentError(`the ${what} holds ${states.length} scheduler states, ${schedulers.length} schedulers were given`);
  schedulers.forEach((s, i) => s.loadStateDict(states[i]));
}

/**
 * Loads a checkpoint written by `saveCheckpoint`: the weights into `model` (or a new model built
 * from the file when none is given), the optimizer's and schedulers' states, the layers' extra state
 * and the global RNG position. Returns the model and the saved epoch, step and userData.
 */
export async function loadCheckpoint(src: ModelSource, o: { model?: Module; optimizer?: Optimizer; schedulers?: LRScheduler[] } = {}): Promise<{
  /** The model with the checkpoint's weights (`o.model`, or one built from the file). */
  model: Module;
  /** The saved epoch. */
  epoch: number;
  /** The saved optimizer step count. */
  step: number;
  /** The parsed model.json (its `userData` included). */
  json: ModelJson;
}> {
  const r = await readCheckpoint(src, o);
  try {
    restoreSchedulers(o.schedulers ?? [], r.state.schedulers);
    setRngState(r.state.rng);
  } catch (e) {
    if (!o.model) r.model.dispose();
    throw e;
  } finally {
    for (const t of Object.values(r.tensors)) t.dispose();
  }
  return { model: r.model, epoch: r.state.epoch, step: r.state.step, json: r.json };
}
