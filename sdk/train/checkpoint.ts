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
import { getRngState, setRngState, type RngState } from '../creation.js';
import { keep } from '../memory.js';
import { loadModel, saveModel, type ModelArtifacts, type ModelJson, type ModelSource } from '../io/model-io.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizers.js';
import type { LRScheduler } from '../optim/schedules.js';
import type { Tensor } from '../tensor.js';

/** The training state of a checkpoint, as stored (after `decodeJson`). */
export interface TrainingState {
  version: 1;
  /** The epoch to continue in: epochs completed when `batch` is 0. */
  epoch: number;
  /** Batches of `epoch` already trained (0 at an epoch boundary). */
  batch: number;
  /** Optimizer steps taken by `fit` (or given to `saveCheckpoint`). */
  step: number;
  /** Weighted sums of the partial epoch's logs (when `batch` > 0). */
  meter: { sums: Record<string, number>; count: number } | null;
  /** A callback had stopped training. */
  stopped: boolean;
  rng: RngState;
  history: { epoch: number[]; history: Record<string, number[]> };
  /** How `fit` batched the data (a mid-epoch resume needs the same). */
  data: { batchSize: number; shuffle: boolean; seed: number } | null;
  /** Per callback of `fit` (by position): its class and `stateDict()` values. */
  callbacks: ({ className: string; values: Record<string, unknown> } | null)[];
  /** Schedulers given to `saveCheckpoint` (by position). */
  schedulers: { stepCount: number; baseLrs?: number[] }[];
  /** `getExtraState()` of the model's layers, by module path. */
  modules: Record<string, unknown>;
}

// ------------------------------------------------------------------ JSON with non-finite numbers

// JSON has no NaN or Infinity, yet losses diverge and EarlyStopping starts from NaN: such numbers are
// stored as { "$number": "NaN" } and restored exactly; finite doubles survive JSON exactly.
const NONFINITE = new Set(['NaN', 'Infinity', '-Infinity']);
const MAX_DEPTH = 32;

/** Deep copy with non-finite numbers tagged (so the value survives `JSON.stringify`). */
export function encodeJson(v: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new ArgumentError(`training state nests deeper than ${MAX_DEPTH} levels`);
  if (typeof v === 'number') return Number.isFinite(v) ? v : { $number: String(v) };
  if (Array.isArray(v)) return v.map((x) => encodeJson(x, depth + 1));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encodeJson(x, depth + 1)]));
  return v;
}

/** Inverse of `encodeJson`; throws FormatError on anything JSON cannot hold or nesting beyond the bound. */
export function decodeJson(v: unknown, path = 'training', depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new FormatError(`${path}: nests deeper than ${MAX_DEPTH} levels`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new FormatError(`${path}: non-finite number`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => decodeJson(x, `${path}[${i}]`, depth + 1));
  if (typeof v === 'object') {
    const keys = Object.keys(v);
    const tag = (v as { $number?: unknown }).$number;
    if (keys.length === 1 && keys[0] === '$number') {
      if (typeof tag !== 'string' || !NONFINITE.has(tag)) throw new FormatError(`${path}: $number must be 'NaN', 'Infinity' or '-Infinity'`);
      return Number(tag);
    }
    return Object.fromEntries(keys.map((k) => [k, decodeJson((v as Record<string, unknown>)[k], `${path}.${k.slice(0, 40)}`, depth + 1)]));
  }
  throw new FormatError(`${path}: ${typeof v} is not JSON`);
}

// ------------------------------------------------------------------ field readers

// Bounds that no real run reaches: they reject absurd values before anything is sized by them.
const MAX_COUNT = 2 ** 40;

/** Small typed readers for stored state: each problem is a FormatError naming the field. */
export const read = {
  obj(v: unknown, path: string): Record<string, unknown> {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new FormatError(`${path} must be an object`);
    return v as Record<string, unknown>;
  },
  arr(v: unknown, path: string, max = MAX_COUNT): unknown[] {
    if (!Array.isArray(v)) throw new FormatError(`${path} must be an array`);
    if (v.length > max) throw new FormatError(`${path} has ${v.length} entries, more than ${max}`);
    return v;
  },
  int(v: unknown, path: string, max = MAX_COUNT): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new FormatError(`${path} must be an integer in [0, ${max}], got ${String(v).slice(0, 40)}`);
    return v;
  },
  /** Any number, NaN and infinities included (losses, monitored values). */
  num(v: unknown, path: string): number {
    if (typeof v !== 'number') throw new FormatError(`${path} must be a number`);
    return v;
  },
  finite(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new FormatError(`${path} must be a finite number`);
    return v;
  },
  bool(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') throw new FormatError(`${path} must be true or false`);
    return v;
  },
  str(v: unknown, path: string, max = 200): string {
    if (typeof v !== 'string' || v.length > max) throw new FormatError(`${path} must be a string of at most ${max} characters`);
    return v;
  },
};

function readRng(v: unknown): RngState {
  const o = read.obj(v, 'training.rng');
  const pair = (x: unknown, n: string): [number, number] => {
    const a = read.arr(x, `training.rng.${n}`, 2);
    if (a.length !== 2) throw new FormatError(`training.rng.${n} must be two 32-bit words`);
    return [read.int(a[0], `training.rng.${n}[0]`, 0xffff_ffff), read.int(a[1], `training.rng.${n}[1]`, 0xffff_ffff)];
  };
  return { key: pair(o.key, 'key'), counter: pair(o.counter, 'counter') };
}

function readSums(v: unknown, path: string): Record<string, number> {
  const o = read.obj(v, path);
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [read.str(k, `${path} key`), read.num(x, `${path}.${k.slice(0, 40)}`)]));
}

/** Validates a decoded `training` field; every problem is a FormatError naming the field. */
export function readTrainingState(raw: unknown): TrainingState {
  const o = read.obj(decodeJson(raw), 'training');
  if (o.version !== 1) throw new FormatError(`training.version ${String(o.version).slice(0, 20)} is not supported (expected 1)`);
  const epoch = read.int(o.epoch, 'training.epoch', 1e9);
  const batch = read.int(o.batch, 'training.batch', 1e12);
  const h = read.obj(o.history, 'training.history');
  const epochs = read.arr(h.epoch, 'training.history.epoch', 1e9).map((e, i) => read.int(e, `training.history.epoch[${i}]`, 1e9));
  const series = read.obj(h.history, 'training.history.history');
  const history = {
    epoch: epochs,
    history: Object.fromEntries(Object.entries(series).map(([k, s]) => {
      const vals = read.arr(s, `training.history.history.${k.slice(0, 40)}`, epochs.length).map((x, i) => read.num(x, `training.history.history.${k.slice(0, 40)}[${i}]`));
      return [read.str(k, 'training.history key'), vals];
    })),
  };
  let meter: TrainingState['meter'] = null;
  if (o.meter !== null && o.meter !== undefined) {
    const m = read.obj(o.meter, 'training.meter');
    meter = { sums: readSums(m.sums, 'training.meter.sums'), count: read.int(m.count, 'training.meter.count') };
  }
  if (batch > 0 && !meter) throw new FormatError('training.meter is missing for a checkpoint inside an epoch (batch > 0)');
  let data: TrainingState['data'] = null;
  if (o.data !== null && o.data !== undefined) {
    const d = read.obj(o.data, 'training.data');
    data = { batchSize: read.int(d.batchSize, 'training.data.batchSize', 2 ** 31), shuffle: read.bool(d.shuffle, 'training.data.shuffle'), seed: read.int(d.seed, 'training.data.seed', Number.MAX_SAFE_INTEGER) };
  }
  const callbacks = read.arr(o.callbacks ?? [], 'training.callbacks', 10_000).map((c, i) => {
    if (c === null) return null;
    const co = read.obj(c, `training.callbacks[${i}]`);
    return { className: read.str(co.className, `training.callbacks[${i}].className`), values: read.obj(co.values, `training.callbacks[${i}].values`) };
  });
  const schedulers = read.arr(o.schedulers ?? [], 'training.schedulers', 10_000).map((s, i) => {
    const so = read.obj(s, `training.schedulers[${i}]`);
    const stepCount = read.int(so.stepCount, `training.schedulers[${i}].stepCount`);
    if (so.baseLrs === undefined) return { stepCount };
    return { stepCount, baseLrs: read.arr(so.baseLrs, `training.schedulers[${i}].baseLrs`, 10_000).map((x, j) => read.finite(x, `training.schedulers[${i}].baseLrs[${j}]`)) };
  });
  return {
    version: 1, epoch, batch, step: read.int(o.step, 'training.step'), meter, stopped: read.bool(o.stopped, 'training.stopped'),
    rng: readRng(o.rng), history, data, callbacks, schedulers, modules: read.obj(o.modules ?? {}, 'training.modules'),
  };
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

export interface CheckpointOptions {
  optimizer?: Optimizer<{ lr: number }>;
  /** LR schedules to restore with `loadCheckpoint` (same order). */
  schedulers?: LRScheduler[];
  /** Your loop's position (stored as the state's epoch and step). */
  epoch?: number;
  step?: number;
  userData?: Record<string, unknown>;
}

/**
 * Saves a checkpoint for a hand-written training loop: the model (and optimizer) as `saveModel`
 * does, plus the RNG position, schedulers and layers' extra state. Node: writes `dir`; anywhere:
 * returns the artifacts. (Inside `fit`, use `ModelCheckpoint({ saveTrainingState: true })`.)
 */
export async function saveCheckpoint(model: Module, dir?: string, o: CheckpointOptions = {}): Promise<ModelArtifacts> {
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
export async function readCheckpoint(src: ModelSource, o: { model?: Module; optimizer?: Optimizer<{ lr: number }> }): Promise<ReadCheckpoint> {
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
export async function loadCheckpoint(src: ModelSource, o: { model?: Module; optimizer?: Optimizer<{ lr: number }>; schedulers?: LRScheduler[] } = {}): Promise<{ model: Module; epoch: number; step: number; json: ModelJson }> {
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
