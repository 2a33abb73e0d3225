/**
 * The fuzzed formats. Each turns a case's `Rng` into one mutated input and a `run()` that loads it
 * and, when it loads, uses it (a forward pass, an optimizer step) and checks what a silent
 * acceptance of corruption would break. `run()` throws the loader's error unchanged, or a
 * `Violation` when a loaded result is wrong; the runner classifies both.
 */
import * as fc from 'fast-check';
import * as eg from '../../sdk/index.js';
import { disposeOptimizer, type CheckpointBase, type CompressedBase, type Corpus, type ModelBase, type OptimizerBase, type ScheduleBase } from './corpus.js';
import {
  Dup, Raw, clone, joinSafetensors, mutateBytes, mutateGraph, mutateJson, mutateJsonText, mutateSafetensorsHeader,
  splitSafetensors, toText, type Json,
} from './mutate.js';
import type { Rng } from './prng.js';

/** A loaded input that is wrong: accepted corruption, a lost tensor, state changed by a rejected load. */
export class Violation extends Error {
  override name = 'Violation';
}

export interface FuzzCase {
  mutation: string;
  run(): void | Promise<void>;
}

export interface Format {
  name: string;
  make(rng: Rng, corpus: Corpus, seed: number): FuzzCase;
}

// ------------------------------------------------------------------------------- helpers

/** A short description of any value (String() of a deeply nested array overflows the stack). */
export function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `'${v.slice(0, 20)}'`;
  return `${typeof v} ${String(v).slice(0, 20)}`;
}

function forwardOnce(f: (x: eg.Tensor) => eg.Tensor, shape: number[], dtype: 'float32' | 'int32' = 'float32'): void {
  eg.tidy(() => eg.noGrad(() => {
    const x = dtype === 'int32' ? eg.randint([2, ...shape], 0, 5, { seed: 1 }) : eg.rand([2, ...shape], -1, 1, { seed: 1 });
    f(x).dataSync();
  }));
}

/** A JS value for a tree that may hold `Raw`/`Dup` (what JSON.parse of its text would give, NaN kept). */
export function materialize(v: Json): Json {
  if (v instanceof Raw) {
    if (v.text === 'NaN') return NaN;
    try {
      return JSON.parse(v.text);
    } catch {
      return null; // nesting too deep for this engine's JSON.parse: a plain null instead
    }
  }
  if (v instanceof Dup) {
    const o: Record<string, Json> = {};
    for (const [k, x] of v.entries) Object.defineProperty(o, k, { value: materialize(x), enumerable: true, writable: true, configurable: true });
    return o;
  }
  if (Array.isArray(v)) return v.map(materialize);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, Json> = {};
    for (const k of Object.keys(v)) Object.defineProperty(o, k, { value: materialize((v as Record<string, Json>)[k]), enumerable: true, writable: true, configurable: true });
    return o;
  }
  return v;
}

function mutateSafetensorsFile(bytes: Uint8Array, rng: Rng, other: Uint8Array): { bytes: Uint8Array; mutation: string; header?: Record<string, Json> } {
  if (rng.chance(0.45)) {
    const k = rng.range(1, 3);
    let b = bytes;
    const what: string[] = [];
    for (let i = 0; i < k; i++) {
      const [nb, d] = mutateBytes(b, rng, other);
      b = nb;
      what.push(d);
    }
    return { bytes: b, mutation: `bytes: ${what.join('; ')}` };
  }
  const { header, data } = splitSafetensors(bytes);
  const [h, d] = mutateSafetensorsHeader(header, data.length, rng);
  const text = toText(h);
  let out = joinSafetensors(text, data);
  let mutation = `header: ${d}`;
  if (rng.chance(0.15)) {
    const [nb, d2] = mutateBytes(out, rng, other);
    out = nb;
    mutation += `; ${d2}`;
    return { bytes: out, mutation };
  }
  let parsed: Record<string, Json> | undefined;
  try {
    parsed = JSON.parse(text) as Record<string, Json>;
  } catch {
    parsed = undefined;
  }
  return { bytes: out, mutation, header: parsed };
}

/** A decoded file must hold exactly the header's tensors with the header's shapes. */
function checkDecoded(tensors: Record<string, eg.Tensor>, header: Record<string, Json>): void {
  const want = Object.keys(header).filter((k) => k !== '__metadata__').sort();
  const got = Object.keys(tensors).sort();
  if (want.join('\u0000') !== got.join('\u0000')) {
    throw new Violation(`decoded tensor names differ from the header's: missing [${want.filter((k) => !got.includes(k)).map((k) => k.slice(0, 20)).join(', ')}]`);
  }
  for (const k of want) {
    const shape = (header[k] as { shape: number[] }).shape;
    if (tensors[k].shape.join() !== shape.join()) throw new Violation(`tensor '${k.slice(0, 20)}' decoded as [${tensors[k].shape.join(', ')}], the header says [${shape.join(', ')}]`);
  }
}

/**
 * An optimizer after a load: hyper-parameters of the valid ones' types, finite numbers, lr >= 0,
 * prototype intact; steps non-negative integers; per parameter exactly the valid state's tensor names.
 */
function checkGroups(opt: eg.optim.Optimizer<{ lr: number }>, valid: Record<string, number | boolean>[], names: string[][]): void {
  opt.groups.forEach((g, i) => {
    const o = g.options as unknown as Record<string, unknown>;
    if (Object.getPrototypeOf(o) !== Object.prototype) throw new Violation(`group ${i}: the options' prototype was replaced`);
    for (const [k, v] of Object.entries(valid[i] ?? valid[0])) {
      const got = o[k];
      if (typeof got !== typeof v) throw new Violation(`group ${i}: '${k}' loaded as ${describe(got)}, expected a ${typeof v}`);
      if (typeof got === 'number' && !Number.isFinite(got)) throw new Violation(`group ${i}: '${k}' loaded as ${got}`);
    }
    if (!(g.options.lr >= 0)) throw new Violation(`group ${i}: lr loaded as ${g.options.lr}`);
  });
  for (const [i, p] of opt.stateDict().params.entries()) {
    if (!Number.isSafeInteger(p.step) || p.step < 0) throw new Violation(`parameter ${i}: step loaded as ${describe(p.step)}`);
    const got = Object.keys(p.tensors).sort().join();
    if (got !== [...(names[i] ?? [])].sort().join()) throw new Violation(`parameter ${i}: state tensors [${got.slice(0, 60)}], expected [${(names[i] ?? []).join(',')}]`);
  }
}

function trainStep(model: eg.nn.Module, opt: eg.optim.Optimizer<{ lr: number }>, shape: number[], dtype: 'float32' | 'int32' = 'float32'): void {
  eg.tidy(() => {
    const x = dtype === 'int32' ? eg.randint([2, ...shape], 0, 5, { seed: 2 }) : eg.rand([2, ...shape], -1, 1, { seed: 2 });
    opt.zeroGrad();
    model.train();
    model.forward(x).square().mean().backward();
    opt.step();
    opt.zeroGrad();
    model.eval();
  });
}

/** fast-check's arbitrary JS values (null prototypes, typed arrays, sparse arrays...), seeded. */
function anything(seed: number): unknown {
  return fc.sample(fc.anything({ withNullPrototype: true, withTypedArray: true, withSparseArray: true, withBigInt: true, withBoxedValues: true, withMap: true, maxDepth: 3 }), { seed, numRuns: 1 })[0];
}
function jsonValue(seed: number): unknown {
  return fc.sample(fc.jsonValue({ maxDepth: 3 }), { seed, numRuns: 1 })[0];
}

// ------------------------------------------------------------------------------- formats

/** model.json + model.safetensors through `loadModel` on in-memory artifacts (optionally with an optimizer). */
const model: Format = {
  name: 'model',
  make(rng, corpus) {
    const base = rng.pick(corpus.models);
    let jsonTree: Json = clone(base.json);
    let weights = base.weights;
    const what: string[] = [];
    const strategy = rng.int(6);
    if (strategy <= 1) {
      for (let k = rng.range(1, 3); k > 0; k--) {
        const [t, d] = mutateJson(jsonTree, rng);
        jsonTree = t;
        what.push(d);
      }
    } else if (strategy === 2 && (jsonTree as eg.ModelJson).optimizer) {
      const [t, d] = mutateJson((jsonTree as eg.ModelJson).optimizer, rng);
      (jsonTree as Record<string, Json>).optimizer = t;
      what.push(`optimizer: ${d}`);
    } else if (strategy === 3) {
      const other = rng.pick(corpus.models);
      weights = other.weights;
      what.push(`weights of ${other.name}`);
    } else {
      const m = mutateSafetensorsFile(weights, rng, rng.pick(corpus.models).weights);
      weights = m.bytes;
      what.push(`weights ${m.mutation}`);
    }
    let json: string | eg.ModelJson = toText(jsonTree);
    if (rng.chance(0.2)) {
      const [t, d] = mutateJsonText(json, rng);
      json = t;
      what.push(d);
    } else if (rng.chance(0.2)) {
      json = materialize(jsonTree) as eg.ModelJson;
      what.push('as an object');
    }
    const withOpt = base.makeOptimizer && rng.chance(0.5);
    return {
      mutation: `${base.name}${withOpt ? '+optimizer' : ''}: ${what.join('; ') || 'unchanged'}`,
      async run() {
        if (!withOpt) {
          const { model: m } = await eg.loadModel({ json, weights });
          try {
            forwardOnce((x) => m.eval().forward(x), base.inputShape, base.inputDtype);
          } finally {
            m.dispose();
          }
          return;
        }
        // A fresh optimizer per case (disposed at the end), starting from the valid state.
        const opt = base.makeOptimizer!();
        try {
          opt.loadStateDict(base.optimizerState!);
          const before = snapshot(opt);
          let m: eg.nn.Module;
          try {
            ({ model: m } = await eg.loadModel({ json, weights }, { optimizer: opt }));
          } catch (e) {
            if (snapshot(opt) !== before) throw new Violation(`a rejected file changed the optimizer (${(e as Error).name}: ${(e as Error).message.slice(0, 80)})`);
            throw e;
          }
          try {
            forwardOnce((x) => m.eval().forward(x), base.inputShape, base.inputDtype);
            checkGroups(opt, base.json.optimizer!.groups, base.json.optimizer!.tensorNames);
            trainStep(base.twin, opt, base.inputShape, base.inputDtype);
          } finally {
            m.dispose();
          }
        } finally {
          disposeOptimizer(opt);
        }
      },
    };
  },
};

function safetensorsBases(corpus: Corpus): { name: string; bytes: Uint8Array; target?: ModelBase }[] {
  return [
    ...corpus.models.map((m) => ({ name: m.name, bytes: m.weights, target: m })),
    ...corpus.quantized.map((q) => ({ name: q.name, bytes: q.bytes })),
  ];
}

/** Bare safetensors: `decodeSafetensors` and `loadWeights` into a model of the right architecture. */
const safetensors: Format = {
  name: 'safetensors',
  make(rng, corpus) {
    const bases = safetensorsBases(corpus);
    const base = rng.pick(bases);
    const m = mutateSafetensorsFile(base.bytes, rng, rng.pick(bases).bytes);
    return {
      mutation: `${base.name}: ${m.mutation}`,
      run() {
        const { tensors } = eg.decodeSafetensors(m.bytes);
        try {
          if (m.header) checkDecoded(tensors, m.header);
        } finally {
          for (const t of Object.values(tensors)) t.dispose();
        }
        if (base.target) eg.loadWeights(base.target.twin, m.bytes, { strict: false });
      },
    };
  },
};

function compressedCase(
  rng: Rng, bases: CompressedBase[], load: (b: Uint8Array) => { forward(x: eg.Tensor): eg.Tensor; dispose(): void },
): FuzzCase {
  const base = rng.pick(bases);
  let mutation: string;
  let bytes: Uint8Array;
  if (rng.chance(0.45)) {
    // The graph JSON inside the metadata: cycles, references out of range, bad params.
    const { header, data } = splitSafetensors(base.bytes);
    const meta = header.__metadata__ as Record<string, string>;
    let g: Json = JSON.parse(meta.graph);
    const what: string[] = [];
    for (let k = rng.range(1, 2); k > 0; k--) {
      const [t, d] = rng.chance(0.6) ? mutateGraph(g, rng) : mutateJson(g, rng);
      g = t;
      what.push(d);
    }
    meta.graph = toText(g);
    if (rng.chance(0.1)) {
      const [t, d] = mutateJsonText(meta.graph, rng);
      meta.graph = t;
      what.push(d);
    }
    bytes = joinSafetensors(JSON.stringify(header), data);
    mutation = `graph: ${what.join('; ')}`;
  } else {
    const m = mutateSafetensorsFile(base.bytes, rng, rng.pick(bases).bytes);
    bytes = m.bytes;
    mutation = m.mutation;
  }
  return {
    mutation: `${base.name}: ${mutation}`,
    run() {
      const q = load(bytes);
      try {
        forwardOnce((x) => q.forward(x), base.inputShape);
      } finally {
        q.dispose();
      }
    },
  };
}

const quantized: Format = {
  name: 'quantized',
  make: (rng, corpus) => compressedCase(rng, corpus.quantized, (b) => eg.compress.QuantizedModel.deserialize(b)),
};

const binary: Format = {
  name: 'binary',
  make: (rng, corpus) => compressedCase(rng, corpus.binary, (b) => eg.compress.BinaryModel.deserialize(b)),
};

/** Tensor placeholders in an optimizer state tree: `{ $t: 'paramIndex/name' }`. */
function stateTree(st: eg.optim.OptimizerState): Json {
  return {
    groups: clone(st.groups),
    params: st.params.map((p, i) => ({ step: p.step, tensors: Object.fromEntries(Object.keys(p.tensors).map((n) => [n, { $t: `${i}/${n}` }])) })),
  };
}

/** Builds the state object: placeholders become fresh tensors (owned by `made`), or hostile stand-ins. */
function reviveState(tree: Json, base: OptimizerBase, made: eg.Tensor[], rng: Rng, subst: boolean): unknown {
  const tensorFor = (ref: string): unknown => {
    const [i, n] = ref.split('/');
    const src = base.state.params[Number(i)]?.tensors[n];
    if (!src) return { $t: ref };
    if (subst && rng.chance(0.3)) {
      const c = rng.int(6);
      const t = c === 0 ? eg.zeros([src.size + 1]) : c === 1 ? src.cast('int32') : c === 2 ? eg.scalar(1) : c === 3 ? eg.tidy(() => src.reshape([-1]).clone()) : null;
      if (t) {
        made.push(t);
        return t;
      }
      if (c === 4) {
        const d = src.clone();
        d.dispose();
        return d;
      }
      return { shape: src.shape, dtype: 'float32', dataSync: () => new Float32Array(src.size) };
    }
    const t = src.clone();
    made.push(t);
    return t;
  };
  // Placeholders sit a few levels deep; below that, values (deep nesting included) pass unchanged.
  const walk = (v: unknown, depth = 0): unknown => {
    if (depth > 8) return v;
    if (v instanceof Raw) return materialize(v);
    if (v instanceof Dup) return walk(materialize(v), depth);
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.$t === 'string' && Object.keys(o).length === 1) return tensorFor(o.$t);
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o)) Object.defineProperty(out, k, { value: walk(o[k], depth + 1), enumerable: true, writable: true, configurable: true });
      return out;
    }
    return v;
  };
  return walk(tree);
}

function snapshot(opt: eg.optim.Optimizer<{ lr: number }>): string {
  const st = opt.stateDict();
  return JSON.stringify({ g: st.groups, s: st.params.map((p) => [p.step, Object.keys(p.tensors)]) });
}

/** Optimizer state through `optimizer.loadStateDict` (structure-aware mutation and fast-check values). */
const optimizer: Format = {
  name: 'optimizer',
  make(rng, corpus, seed) {
    const base = rng.pick(corpus.optimizers);
    let tree = stateTree(base.state);
    let mutation: string;
    let subst = false;
    const c = rng.int(8);
    if (c <= 3) {
      const what: string[] = [];
      for (let k = rng.range(1, 2); k > 0; k--) {
        const [t, d] = mutateJson(tree, rng);
        tree = t;
        what.push(d);
      }
      mutation = what.join('; ');
    } else if (c === 4) {
      subst = true;
      mutation = 'tensors replaced by wrong shapes/dtypes/disposed/fakes';
    } else if (c === 5) {
      const t = tree as { groups: Json[] };
      const g = rng.int(t.groups.length);
      const keys = Object.keys(t.groups[g] as object);
      const k = rng.pick(keys);
      (t.groups[g] as Record<string, unknown>)[k] = jsonValue(seed);
      mutation = `fast-check JSON value as groups[${g}].${k}`;
    } else if (c === 6) {
      (tree as Record<string, unknown>)[rng.pick(['groups', 'params'])] = anything(seed);
      mutation = 'fast-check value as groups or params';
    } else {
      tree = anything(seed) as Json;
      mutation = 'fast-check value as the whole state';
    }
    return {
      mutation: `${base.name}: ${mutation}`,
      run() {
        // A fresh optimizer per case (disposed at the end), starting from the valid state.
        const opt = base.make();
        const made: eg.Tensor[] = [];
        try {
          opt.loadStateDict(base.state);
          const before = snapshot(opt);
          const st = reviveState(tree, base, made, rng, subst);
          try {
            opt.loadStateDict(st as eg.optim.OptimizerState);
          } catch (e) {
            if (snapshot(opt) !== before) throw new Violation(`a rejected state changed the optimizer (${(e as Error).name}: ${(e as Error).message.slice(0, 80)})`);
            throw e;
          }
          checkGroups(opt, base.state.groups, base.state.params.map((p) => Object.keys(p.tensors)));
          trainStep(base.model, opt, [3]);
        } finally {
          for (const t of made) if (!t.isDisposed) t.dispose();
          disposeOptimizer(opt);
        }
      },
    };
  },
};

/** LR schedule state through `scheduler.loadStateDict`. */
const schedule: Format = {
  name: 'schedule',
  make(rng, corpus, seed) {
    const base: ScheduleBase = rng.pick(corpus.schedules);
    let tree: Json = clone(base.state);
    let mutation: string;
    if (rng.chance(0.6)) {
      const [t, d] = mutateJson(tree, rng);
      tree = t;
      mutation = d;
    } else if (rng.chance(0.5)) {
      (tree as Record<string, unknown>).stepCount = jsonValue(seed);
      mutation = 'fast-check JSON value as stepCount';
    } else {
      tree = anything(seed) as Json;
      mutation = 'fast-check value as the state';
    }
    const st = materialize(tree);
    return {
      mutation: `${base.name}: ${mutation}`,
      run() {
        const s = base.schedule;
        s.loadStateDict(base.state);
        const before = [s.stepCount, s.lr];
        try {
          s.loadStateDict(st as { stepCount: number });
        } catch (e) {
          if (!Object.is(s.stepCount, before[0]) || !Object.is(s.lr, before[1])) throw new Violation(`a rejected state changed the schedule (stepCount ${describe(s.stepCount)}, lr ${describe(s.lr)})`);
          throw e;
        }
        if (!Number.isSafeInteger(s.stepCount) || s.stepCount < 0) throw new Violation(`stepCount loaded as ${describe(s.stepCount)}`);
        for (const g of base.optimizer.groups) if (!(Number.isFinite(g.options.lr) && g.options.lr >= 0)) throw new Violation(`lr after loading is ${g.options.lr}`);
      },
    };
  },
};

/** Training checkpoints (`saveCheckpoint` → `loadCheckpoint` into fresh model, optimizer and schedule). */
const checkpoint: Format = {
  name: 'checkpoint',
  make(rng, corpus) {
    const base: CheckpointBase = rng.pick(corpus.checkpoints);
    let jsonTree: Json = clone(base.json);
    let weights = base.weights;
    const what: string[] = [];
    const c = rng.int(10);
    if (c <= 5 && (jsonTree as { training?: Json }).training) {
      // The training state: RNG position, epoch/step, history, schedulers, callbacks, layers' state.
      for (let k = rng.range(1, 2); k > 0; k--) {
        const [t, d] = mutateJson((jsonTree as { training: Json }).training, rng);
        (jsonTree as { training: Json }).training = t;
        what.push(`training: ${d}`);
      }
    } else if (c <= 7) {
      const [t, d] = mutateJson(jsonTree, rng);
      jsonTree = t;
      what.push(d);
    } else {
      const m = mutateSafetensorsFile(weights, rng, rng.pick(corpus.models).weights);
      weights = m.bytes;
      what.push(`weights ${m.mutation}`);
    }
    const json = rng.chance(0.1) ? mutateJsonText(toText(jsonTree), rng) : [toText(jsonTree), ''];
    if (json[1]) what.push(json[1]);
    return {
      mutation: `${base.name}: ${what.join('; ')}`,
      async run() {
        const { model: m, optimizer: opt, schedule: sched } = base.make();
        try {
          await eg.train.loadCheckpoint({ json: json[0], weights }, { model: m, optimizer: opt, schedulers: [sched] });
          checkGroups(opt, base.groups, base.tensorNames);
          if (!Number.isSafeInteger(sched.stepCount) || sched.stepCount < 0) throw new Violation(`schedule stepCount loaded as ${describe(sched.stepCount)}`);
          for (const g of opt.groups) if (!(Number.isFinite(g.options.lr) && g.options.lr >= 0)) throw new Violation(`lr after loading is ${g.options.lr}`);
          forwardOnce((x) => m.eval().forward(x), base.inputShape);
          trainStep(m, opt, base.inputShape);
        } finally {
          disposeOptimizer(opt);
          m.dispose();
        }
      },
    };
  },
};

export const FORMATS: Format[] = [model, safetensors, quantized, binary, optimizer, schedule, checkpoint];
export const FORMAT_NAMES = FORMATS.map((f) => f.name);
