/**
 * The functional (graph) model style, for architectures that are not a chain: skip connections,
 * branches, several inputs or outputs, shared layers.
 *
 * ```ts
 * const { graph: g } = eg.nn;
 * const x = g.input('image');
 * const c1 = g.call(new nn.Conv2d(1, 8, 3, { padding: 'same' }), x, 'conv1');
 * const r1 = g.call(new nn.ReLU(), c1);
 * const c2 = g.call(new nn.Conv2d(8, 8, 3, { padding: 'same' }), r1, 'conv2');
 * const skip = g.add(c2, c1);                                     // residual
 * const both = g.concat([skip, g.call(new nn.Conv2d(1, 4, 1), x, 'side')], -1);   // branch
 * const model = new nn.Graph({ inputs: x, outputs: g.call(new nn.GlobalAvgPool2d(), both) });
 * model.forward(images);
 * ```
 *
 * A `Graph` is a Module: its layers are submodules under their names (`conv1.weight`...), so it
 * trains, freezes, saves (`getConfig` stores the wiring and every layer's config) and loads like
 * any other model. Intermediate results are freed as soon as no later node needs them.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { describe } from '../args.js';
import { concat as concatOp } from '../ops.js';
import type { Tensor } from '../tensor.js';
import { Module, moduleFromConfig, registerModule, type ModuleConfig } from './module.js';

/** How a merge node combines its inputs (see `add`, `sub`, `mul`, `average`, `concat`). */
export type MergeOp = 'add' | 'sub' | 'mul' | 'average' | 'concat';

let nextId = 1;

/** A value in a graph under construction (no data: it records how it is computed). */
export class SymbolicTensor {
  /** Unique, increasing id (creation order). */
  readonly id = nextId++;
  /**
   * Built by `input`, `call` and the merges, not directly.
   * @param kind - A graph input, a module call, or a merge.
   * @param inputs - The values this one is computed from (none for an input).
   * @param label - The input's or the called module's name, if given.
   * @param module - The called module (`kind: 'call'`).
   * @param op - The merge operation (`kind: 'merge'`).
   * @param axis - The concat axis (`op: 'concat'`).
   */
  constructor(
    readonly kind: 'input' | 'call' | 'merge',
    readonly inputs: SymbolicTensor[],
    readonly label: string | undefined,
    readonly module?: Module,
    readonly op?: MergeOp,
    readonly axis?: number,
  ) {}
  /** `module` applied to this value (fluent form of `call`). */
  pipe(module: Module, name?: string): SymbolicTensor {
    return call(module, this, name);
  }
}

function symbols(xs: SymbolicTensor | SymbolicTensor[], what: string): SymbolicTensor[] {
  const a = Array.isArray(xs) ? xs : [xs];
  if (a.length === 0) throw new ArgumentError(`${what} needs at least one input`);
  for (const x of a) if (!(x instanceof SymbolicTensor)) throw new ArgumentError(`${what}: inputs must be graph values (from input(), call() or a merge), got ${describe(x)}`);
  return a;
}

/** A graph input (a placeholder for a tensor passed to `forward`). */
export function input(name?: string): SymbolicTensor {
  return new SymbolicTensor('input', [], name);
}

/** `module.forward(...inputs)` as a graph node; `name` becomes the module's name in the model. */
export function call(module: Module, inputs: SymbolicTensor | SymbolicTensor[], name?: string): SymbolicTensor {
  if (!(module instanceof Module)) throw new ArgumentError('graph call() needs a Module');
  return new SymbolicTensor('call', symbols(inputs, 'call'), name, module);
}

function merge(op: MergeOp, xs: SymbolicTensor[], min: number, axis?: number): SymbolicTensor {
  const a = symbols(xs, op);
  if (a.length < min) throw new ArgumentError(`${op} needs at least ${min} inputs, got ${a.length}`);
  return new SymbolicTensor('merge', a, undefined, undefined, op, axis);
}
/** Elementwise sum (broadcasting). */
export const add = (...xs: SymbolicTensor[]): SymbolicTensor => merge('add', xs, 2);
/** Elementwise difference a − b (broadcasting). */
export const sub = (a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor => merge('sub', [a, b], 2);
/** Elementwise product. */
export const mul = (...xs: SymbolicTensor[]): SymbolicTensor => merge('mul', xs, 2);
/** Elementwise mean. */
export const average = (...xs: SymbolicTensor[]): SymbolicTensor => merge('average', xs, 2);
/** Joins along `axis` (default: the last, i.e. channels in NHWC). */
export const concat = (xs: SymbolicTensor[], axis = -1): SymbolicTensor => merge('concat', xs, 1, axis);

function applyMerge(op: MergeOp, xs: Tensor[], axis: number | undefined): Tensor {
  if (op === 'concat') return concatOp(xs, axis ?? -1);
  if (op === 'sub') return xs[0].sub(xs[1]);
  let acc = op === 'mul' ? xs[0].mul(xs[1]) : xs[0].add(xs[1]);
  for (let i = 2; i < xs.length; i++) {
    const next = op === 'mul' ? acc.mul(xs[i]) : acc.add(xs[i]);
    acc.dispose();
    acc = next;
  }
  if (op === 'average') {
    const m = acc.mul(1 / xs.length);
    acc.dispose();
    return m;
  }
  return acc;
}

/** The serialisable description of one node. */
interface NodeSpec {
  name: string;
  kind: 'input' | 'call' | 'merge';
  inputs: string[];
  module?: string;
  op?: MergeOp;
  axis?: number;
}

/** A graph's serialisable wiring, as stored in its config. */
export interface GraphSpec {
  /** Node names of the graph inputs, in `forward` argument order. */
  inputs: string[];
  /** Node names of the outputs (`forward` returns the first). */
  outputs: string[];
  /** Every node in topological order. */
  nodes: NodeSpec[];
  /** The config of each called module, by its name. */
  modules: Record<string, ModuleConfig>;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * A model defined by a graph of layer calls and merges. `forward(...inputs)` takes one tensor per
 * graph input (in order) and returns the first output; `forwardAll` returns every output.
 */
export class Graph extends Module {
  readonly #nodes: NodeSpec[];
  readonly #inputs: string[];
  readonly #outputs: string[];
  /** For each node, how many later nodes (and outputs) read it. */
  readonly #uses = new Map<string, number>();

  constructor(def: { inputs: SymbolicTensor | SymbolicTensor[]; outputs: SymbolicTensor | SymbolicTensor[] } | { spec: GraphSpec; modules: Record<string, Module> }) {
    super();
    if (def === null || typeof def !== 'object') throw new ArgumentError(`Graph needs { inputs, outputs }, got ${describe(def)}`);
    if ('spec' in def) {
      for (const [n, m] of Object.entries(def.modules)) this.registerModule(n, m);
      this.#nodes = def.spec.nodes;
      this.#inputs = def.spec.inputs;
      this.#outputs = def.spec.outputs;
    } else {
      const ins = symbols(def.inputs, 'Graph inputs');
      const outs = symbols(def.outputs, 'Graph outputs');
      for (const x of ins) if (x.kind !== 'input') throw new ArgumentError('Graph inputs must come from input()');
      // Topological order from the outputs back (iterative DFS, so deep graphs are fine).
      const order: SymbolicTensor[] = [];
      const state = new Map<number, 1 | 2>();
      for (const root of outs) {
        const stack: [SymbolicTensor, number][] = [[root, 0]];
        while (stack.length) {
          const top = stack[stack.length - 1];
          const [node, i] = top;
          if (i === 0) {
            if (state.get(node.id) === 2) {
              stack.pop();
              continue;
            }
            state.set(node.id, 1);
          }
          if (i < node.inputs.length) {
            top[1]++;
            const child = node.inputs[i];
            if (state.get(child.id) === 1) throw new ArgumentError('the graph has a cycle');
            if (state.get(child.id) !== 2) stack.push([child, 0]);
            continue;
          }
          state.set(node.id, 2);
          order.push(node);
          stack.pop();
        }
      }
      for (const n of order) {
        if (n.kind === 'input' && !ins.includes(n)) {
          throw new ArgumentError(`a graph output depends on input ${n.label ? `'${n.label}'` : '(unnamed)'} that is not among the Graph's inputs`);
        }
      }
      // Names: modules keep the name given at their first call, else class name + counter.
      const names = new Map<SymbolicTensor, string>();
      const moduleNames = new Map<Module, string>();
      const taken = new Set<string>();
      const counters = new Map<string, number>();
      const fresh = (base: string) => {
        const b = base.replace(/[^A-Za-z0-9_]/g, '_').toLowerCase();
        let k = counters.get(b) ?? 0;
        let n: string;
        do n = `${b}_${++k}`; while (taken.has(n));
        counters.set(b, k);
        return n;
      };
      const claim = (n: string, what: string) => {
        if (!NAME.test(n)) throw new ArgumentError(`graph name '${n}' is not valid (letters, digits, _ and -; no dots)`);
        if (taken.has(n)) throw new ArgumentError(`graph name '${n}' is used twice (${what})`);
        taken.add(n);
        return n;
      };
      ins.forEach((x, i) => names.set(x, claim(x.label ?? `input_${i + 1}`, 'input')));
      for (const n of order) {
        if (n.kind !== 'call') continue;
        const m = n.module!;
        if (!moduleNames.has(m)) {
          const mn = claim(n.label ?? fresh(m.className), 'module');
          moduleNames.set(m, mn);
          this.registerModule(mn, m);
        } else if (n.label && n.label !== moduleNames.get(m)) {
          throw new ArgumentError(`module '${moduleNames.get(m)}' is called again under another name '${n.label}'`);
        }
      }
      const nodeName = (n: SymbolicTensor): string => {
        let s = names.get(n);
        if (!s) {
          s = n.kind === 'call' ? fresh(`${moduleNames.get(n.module!)!}_out`) : fresh(n.op!);
          taken.add(s);
          names.set(n, s);
        }
        return s;
      };
      this.#nodes = order.map((n) => ({
        name: nodeName(n), kind: n.kind, inputs: n.inputs.map(nodeName),
        ...(n.kind === 'call' ? { module: moduleNames.get(n.module!) } : {}),
        ...(n.kind === 'merge' ? { op: n.op, ...(n.axis !== undefined ? { axis: n.axis } : {}) } : {}),
      }));
      this.#inputs = ins.map(nodeName);
      this.#outputs = outs.map(nodeName);
      // Inputs that no output needs are still inputs (forward takes them), but warn loudly by error.
      for (const x of this.#inputs) {
        if (!this.#nodes.some((n) => n.name === x)) throw new ArgumentError(`graph input '${x}' is not used by any output`);
      }
    }
    for (const n of this.#nodes) for (const i of n.inputs) this.#uses.set(i, (this.#uses.get(i) ?? 0) + 1);
    for (const o of this.#outputs) this.#uses.set(o, (this.#uses.get(o) ?? 0) + 1);
  }

  /** Names of the graph inputs, in `forward` argument order. */
  get inputNames(): string[] {
    return this.#inputs.slice();
  }
  /** Names of the outputs, in `forwardAll` order. */
  get outputNames(): string[] {
    return this.#outputs.slice();
  }

  /** Every output, in order. */
  forwardAll(...xs: Tensor[]): Tensor[] {
    if (xs.length !== this.#inputs.length) {
      throw new ArgumentError(`this Graph takes ${this.#inputs.length} input(s) (${this.#inputs.join(', ')}), got ${xs.length}`);
    }
    const values = new Map<string, Tensor>();
    const left = new Map(this.#uses);
    this.#inputs.forEach((n, i) => values.set(n, xs[i]));
    const given = new Set(xs);
    const release = (name: string) => {
      const k = (left.get(name) ?? 0) - 1;
      left.set(name, k);
      const t = values.get(name);
      if (k <= 0 && t && !given.has(t)) {
        t.dispose();
        values.delete(name);
      }
    };
    try {
      for (const n of this.#nodes) {
        if (n.kind === 'input') continue;
        const args = n.inputs.map((i) => values.get(i)!);
        let out: Tensor;
        if (n.kind === 'call') {
          const m = this.getModule(n.module!);
          try {
            out = m.forward(args[0], ...args.slice(1));
          } catch (e) {
            if (e instanceof ShapeError) throw new ShapeError(`graph node '${n.name}' (module '${n.module}'): ${e.message}`);
            throw e;
          }
        } else out = applyMerge(n.op!, args, n.axis);
        // A module may return its input unchanged: keep one owner per tensor.
        values.set(n.name, given.has(out) || [...values.values()].includes(out) ? out.clone() : out);
        for (const i of n.inputs) release(i);
      }
      return this.#outputs.map((o) => {
        const t = values.get(o)!;
        return given.has(t) ? t.clone() : t;
      });
    } catch (e) {
      for (const [, t] of values) if (!given.has(t)) t.dispose();
      throw e;
    }
  }

  /** The first output. */
  forward(...xs: Tensor[]): Tensor {
    const outs = this.forwardAll(...xs);
    for (const o of outs.slice(1)) o.dispose();
    return outs[0];
  }

  /** One line per node: name, what it computes, inputs, parameters. */
  summary(): string {
    const lines = this.#nodes.map((n) => {
      const what = n.kind === 'input' ? 'input' : n.kind === 'call' ? `${this.getModule(n.module!).className} '${n.module}'` : `${n.op}${n.axis !== undefined ? `(axis ${n.axis})` : ''}`;
      const params = n.kind === 'call' ? this.getModule(n.module!).numParameters() : 0;
      return `${n.name.padEnd(22)} ${what.padEnd(34)} ${n.inputs.join(', ').padEnd(30)} ${params || ''}`;
    });
    return [`${'node'.padEnd(22)} ${'computes'.padEnd(34)} ${'from'.padEnd(30)} parameters`, ...lines,
      `inputs: ${this.#inputs.join(', ')} · outputs: ${this.#outputs.join(', ')} · ${this.numParameters()} parameters`].join('\n');
  }

  override getConfig(): Record<string, unknown> {
    const spec: GraphSpec = {
      inputs: this.#inputs, outputs: this.#outputs, nodes: this.#nodes,
      modules: Object.fromEntries(this.namedChildren().map(([n, m]) => [n, m.toConfig()])),
    };
    return spec as unknown as Record<string, unknown>;
  }
}

registerModule('Graph', (c) => {
  const spec = c as unknown as GraphSpec;
  const modules = Object.fromEntries(Object.entries(spec.modules).map(([n, mc]) => [n, moduleFromConfig(mc)]));
  return new Graph({ spec, modules });
});
