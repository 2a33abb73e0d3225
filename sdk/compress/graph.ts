/**
 * The compression IR: a model traced into a flat list of inference ops over numbered values
 * (value 0 is the input), with every BatchNorm folded into the conv/linear before it and every
 * ReLU fused into the op before it when nothing else reads that op's raw output.
 *
 * Traceable modules: `Sequential`, `nn.Graph` (one input, one output; `add` and `concat` merges),
 * `Linear`, `Conv2d`, `BatchNorm1d/2d` (after a conv/linear), `ReLU`, `MaxPool2d`, `AvgPool2d`,
 * `GlobalAvgPool2d`, `Flatten`, `Dropout` (identity at inference), and the binary-weight layers.
 * Anything else is refused with an ArgumentError naming it.
 *
 * The graph owns copies of the (folded) weights; `disposeGraph` frees them.
 */
import { ArgumentError, FormatError, ShapeError } from '../errors.js';
import { describe, MAX_ELEMENTS, MAX_RANK } from '../args.js';
import { v, validate, type Schema } from '../io/validate.js';
import { entryDType, shortName, type SafetensorsEntry } from '../io/safetensors.js';
import type { DType } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { tidy, keep } from '../memory.js';
import { concat } from '../ops.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { assertModule, Module } from '../nn/module.js';
import * as nn from '../nn/layers.js';
import * as F from '../nn/functional.js';

export type Pair = [number, number];
export type Quad = [number, number, number, number];

export interface LinearNode {
  op: 'linear';
  in: number;
  out: number;
  name: string;
  weight: Tensor;
  bias: Tensor | null;
  relu: boolean;
  binary: boolean;
}
export interface ConvNode {
  op: 'conv';
  in: number;
  out: number;
  name: string;
  /** HWIO `[kh, kw, cin / groups, cout]`. */
  weight: Tensor;
  bias: Tensor | null;
  kernel: Pair;
  stride: Pair;
  padding: Quad;
  dilation: Pair;
  groups: number;
  relu: boolean;
  binary: boolean;
}
export interface PoolNode {
  op: 'maxpool' | 'avgpool';
  in: number;
  out: number;
  kernel: Pair;
  stride: Pair;
  padding: Quad;
  countIncludePad: boolean;
}
export interface SimpleNode {
  op: 'gap' | 'flatten' | 'relu';
  in: number;
  out: number;
}
export interface MergeNode {
  op: 'add' | 'concat';
  ins: number[];
  out: number;
  relu: boolean;
}
/** One node of a traced float graph: a layer, pooling, a simple op or a merge (add/concat). */
export type GNode = LinearNode | ConvNode | PoolNode | SimpleNode | MergeNode;
export type LayerNode = LinearNode | ConvNode;
/** Nodes as stored in model files: layers name their tensors instead of holding them. */
export type SerialLinear = Omit<LinearNode, 'weight' | 'bias'> & { hasBias: boolean };
export type SerialConv = Omit<ConvNode, 'weight' | 'bias'> & { hasBias: boolean };
export type SerialLayer = SerialLinear | SerialConv;
export type SerialNode = SerialLayer | PoolNode | SimpleNode | MergeNode;

/** A layer node without its tensors. */
export function serialLayer(n: LayerNode): SerialLayer {
  const { weight: _w, bias: _b, ...rest } = n;
  return { ...rest, hasBias: !!n.bias } as SerialLayer;
}

/** A traced float model: its nodes in execution order over numbered values (value 0 is the input). */
export interface FloatGraph {
  /** Nodes in execution order. */
  nodes: GNode[];
  /** Shape of each value without the batch dimension. */
  shapes: number[][];
  /** Index of the value that is the model's output. */
  output: number;
}

export function inputsOf(n: GNode): number[] {
  return 'ins' in n ? n.ins : [n.in];
}

/** The node computing value `v` (traced and checked graphs store it at index v - 1). */
export function producerOf(g: { nodes: { out: number }[] }, v: number): GNode | undefined {
  const n = g.nodes[v - 1];
  return (n?.out === v ? n : g.nodes.find((x) => x.out === v)) as GNode | undefined;
}

/** True when the graph ends with a conv/linear, whose int8 form then writes float32 directly. */
export function floatOutput(g: FloatGraph): boolean {
  const n = producerOf(g, g.output);
  return !!n && (n.op === 'linear' || n.op === 'conv');
}

/**
 * True for values whose quantization is chosen by calibration (the rest inherit their input's):
 * the input and the outputs of conv/linear/add/concat, except the final layer's float output.
 */
export function isQuantPoint(g: FloatGraph, v: number): boolean {
  if (v === 0) return true;
  if (v === g.output && floatOutput(g)) return false;
  const n = producerOf(g, v);
  return !!n && (n.op === 'linear' || n.op === 'conv' || n.op === 'add' || n.op === 'concat');
}

/** The value whose quantization `v` shares (itself for quantization points). */
export function quantSource(g: FloatGraph, v: number): number {
  let cur = v;
  for (;;) {
    if (isQuantPoint(g, cur)) return cur;
    if (cur === g.output && floatOutput(g)) throw new ArgumentError(`value ${cur} is the float32 output of the last layer`);
    const n = producerOf(g, cur);
    if (!n) throw new ArgumentError(`value ${cur} has no producer`);
    cur = inputsOf(n)[0];
  }
}

const prod = (a: number[]) => a.reduce((x, y) => x * y, 1);
const shapeStr = (s: number[]) => `[${s.join(', ')}]`;

function pair(v: unknown, what: string): Pair {
  const p = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 1)) throw new ArgumentError(`${what} must be a positive integer or a pair, got ${describe(v)}`);
  return [p[0], p[1]];
}

type Cfg = Record<string, unknown>;

/** A module tree is traced by walking it with a value for its input. */
class Tracer {
  nodes: GNode[] = [];
  shapes: number[][];
  /** Producer node index of each value (-1 for the input). */
  producer: number[] = [-1];
  names = new Set<string>();

  constructor(inputShape: number[]) {
    this.shapes = [inputShape.slice()];
  }

  value(shape: number[]): number {
    this.shapes.push(shape);
    this.producer.push(-1);
    return this.shapes.length - 1;
  }

  push<N extends GNode>(n: Omit<N, 'out'>, shape: number[]): number {
    const out = this.value(shape);
    this.nodes.push({ ...n, out } as unknown as GNode);
    this.producer[out] = this.nodes.length - 1;
    return out;
  }

  layerName(path: string): string {
    let base = path.replace(/[^A-Za-z0-9_.-]/g, '_') || 'layer';
    let i = 1;
    let name = base;
    while (this.names.has(name)) name = `${base}_${++i}`;
    this.names.add(name);
    return name;
  }

  /** The node producing `v` if it is a layer/add whose output nothing else reads. */
  fusable(v: number, exclusive: boolean): GNode | null {
    const p = this.producer[v];
    return exclusive && p >= 0 ? this.nodes[p] : null;
  }

  trace(m: Module, v: number, exclusive: boolean, path: string): number {
    const s = this.shapes[v];
    if (m instanceof nn.Sequential) {
      let cur = v;
      m.namedChildren().forEach(([n, c], i) => {
        cur = this.trace(c, cur, i === 0 ? exclusive : true, path ? `${path}.${n}` : n);
      });
      return cur;
    }
    if (m.className === 'Graph') return this.traceGraph(m, v, exclusive, path);
    if (m instanceof nn.Linear || m.className === 'BinaryLinear') {
      const w = (m as unknown as { weight: Tensor }).weight;
      const b = (m as unknown as { bias: Tensor | null }).bias;
      if (s.length !== 1) throw new ShapeError(`${path || m.className}: a Linear layer is traced on per-sample features [F], got ${shapeStr(s)} (add a Flatten)`);
      if (s[0] !== w.shape[1]) throw new ShapeError(`${path || m.className}: expects ${w.shape[1]} features, gets ${s[0]}`);
      return this.push<LinearNode>({ op: 'linear', in: v, name: this.layerName(path), weight: cloneParam(w), bias: b ? cloneParam(b) : null, relu: false,
        binary: m.className === 'BinaryLinear' }, [w.shape[0]]);
    }
    if (m instanceof nn.Conv2d || m.className === 'BinaryConv2d') {
      const c = m.getConfig() as Cfg;
      const w = (m as unknown as { weight: Tensor }).weight;
      const b = (m as unknown as { bias: Tensor | null }).bias;
      if (s.length !== 3 || s[2] !== c.inChannels) throw new ShapeError(`${path || m.className}: expects NHWC input with ${c.inChannels} channels, gets ${shapeStr(s)}`);
      const [kh, kw] = [w.shape[0], w.shape[1]];
      const stride = pair(c.stride ?? 1, 'stride');
      const dilation = pair(c.dilation ?? 1, 'dilation');
      const padding = F.resolvePadding((c.padding ?? 'valid') as F.Padding, s[0], s[1], [kh, kw], stride, dilation);
      const oh = Math.floor((s[0] + padding[0] + padding[1] - dilation[0] * (kh - 1) - 1) / stride[0]) + 1;
      const ow = Math.floor((s[1] + padding[2] + padding[3] - dilation[1] * (kw - 1) - 1) / stride[1]) + 1;
      if (!(oh >= 1 && ow >= 1)) throw new ShapeError(`${path}: the kernel does not fit the input ${shapeStr(s)}`);
      return this.push<ConvNode>({ op: 'conv', in: v, name: this.layerName(path), weight: cloneParam(w), bias: b ? cloneParam(b) : null,
        kernel: [kh, kw], stride, padding, dilation, groups: (c.groups as number | undefined) ?? 1, relu: false, binary: m.className === 'BinaryConv2d' }, [oh, ow, w.shape[3]]);
    }
    if (m instanceof nn.BatchNorm) {
      const p = this.fusable(v, exclusive);
      if (!p || (p.op !== 'linear' && p.op !== 'conv') || p.relu) {
        throw new ArgumentError(`${path || 'BatchNorm'}: a BatchNorm can only be folded right after a Conv2d or Linear whose output nothing else reads`);
      }
      foldBatchNorm(p, m, path);
      return v;
    }
    if (m instanceof nn.ReLU) {
      const p = this.fusable(v, exclusive);
      if (p && (p.op === 'linear' || p.op === 'conv' || p.op === 'add') && !p.relu) {
        p.relu = true;
        return v;
      }
      return this.push<SimpleNode>({ op: 'relu', in: v }, s);
    }
    if (m instanceof nn.MaxPool2d || m instanceof nn.AvgPool2d) {
      const c = m.getConfig() as Cfg;
      if (s.length !== 3) throw new ShapeError(`${path}: pooling expects NHWC input, gets ${shapeStr(s)}`);
      const kernel = pair(c.kernelSize, 'kernel size');
      const stride = pair(c.stride ?? kernel, 'stride');
      const padding = F.resolvePadding((c.padding ?? 'valid') as F.Padding, s[0], s[1], kernel, stride);
      const oh = Math.floor((s[0] + padding[0] + padding[1] - kernel[0]) / stride[0]) + 1;
      const ow = Math.floor((s[1] + padding[2] + padding[3] - kernel[1]) / stride[1]) + 1;
      return this.push<PoolNode>({ op: m instanceof nn.MaxPool2d ? 'maxpool' : 'avgpool', in: v, kernel, stride, padding,
        countIncludePad: !!c.countIncludePad }, [oh, ow, s[2]]);
    }
    if (m instanceof nn.GlobalAvgPool2d) {
      if (s.length !== 3) throw new ShapeError(`${path}: GlobalAvgPool2d expects NHWC input, gets ${shapeStr(s)}`);
      return this.push<SimpleNode>({ op: 'gap', in: v }, [s[2]]);
    }
    if (m instanceof nn.Flatten) return s.length === 1 ? v : this.push<SimpleNode>({ op: 'flatten', in: v }, [prod(s)]);
    if (m instanceof nn.Dropout) return v;
    throw new ArgumentError(`cannot compress a model containing ${m.className}${path ? ` ('${path}')` : ''}: supported are Sequential, Graph, Linear, Conv2d, BatchNorm, ReLU, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Flatten, Dropout and the binary layers`);
  }

  /** `nn.Graph` through its public spec: one input, one output, `add`/`concat` merges. */
  traceGraph(m: Module, v: number, exclusive: boolean, path: string): number {
    const spec = m.getConfig() as unknown as { inputs: string[]; outputs: string[]; nodes: { name: string; kind: string; inputs: string[]; module?: string; op?: string; axis?: number }[] };
    if (spec.inputs.length !== 1 || spec.outputs.length !== 1) throw new ArgumentError(`${path || 'Graph'}: only graphs with one input and one output can be compressed`);
    const uses = new Map<string, number>();
    for (const n of spec.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
    uses.set(spec.outputs[0], (uses.get(spec.outputs[0]) ?? 0) + 1);
    const vals = new Map<string, number>([[spec.inputs[0], v]]);
    const excl = (name: string) => (name === spec.inputs[0] ? exclusive && uses.get(name) === 1 : uses.get(name) === 1);
    for (const n of spec.nodes) {
      if (n.kind === 'input') continue;
      const ins = n.inputs.map((i) => vals.get(i)!);
      if (n.kind === 'call') {
        if (ins.length !== 1) throw new ArgumentError(`${path}: node '${n.name}' calls a module with ${ins.length} inputs`);
        vals.set(n.name, this.trace(m.getModule(n.module!), ins[0], excl(n.inputs[0]), path ? `${path}.${n.module}` : n.module!));
      } else if (n.op === 'add') {
        for (const i of ins.slice(1)) {
          if (this.shapes[i].join() !== this.shapes[ins[0]].join()) throw new ShapeError(`${path}: add of ${shapeStr(this.shapes[ins[0]])} and ${shapeStr(this.shapes[i])} (no broadcasting in compressed models)`);
        }
        let acc = ins[0];
        for (let i = 1; i < ins.length; i++) acc = this.push<MergeNode>({ op: 'add', ins: [acc, ins[i]], relu: false }, this.shapes[ins[0]]);
        vals.set(n.name, acc);
      } else if (n.op === 'concat') {
        const r = this.shapes[ins[0]].length;
        const axis = n.axis ?? -1;
        if (!(axis === -1 || axis === r)) throw new ArgumentError(`${path}: only concatenation along the last (channel) axis can be compressed, got axis ${axis}`);
        for (const i of ins) {
          if (this.shapes[i].length !== r || this.shapes[i].slice(0, -1).join() !== this.shapes[ins[0]].slice(0, -1).join()) {
            throw new ShapeError(`${path}: concat of ${ins.map((x) => shapeStr(this.shapes[x])).join(' and ')}`);
          }
        }
        const shape = [...this.shapes[ins[0]].slice(0, -1), ins.reduce((a, i) => a + this.shapes[i][r - 1], 0)];
        vals.set(n.name, this.push<MergeNode>({ op: 'concat', ins, relu: false }, shape));
      } else {
        throw new ArgumentError(`${path}: graph merge '${n.op}' cannot be compressed (only add and concat)`);
      }
    }
    return vals.get(spec.outputs[0])!;
  }
}

function cloneParam(t: Tensor): Tensor {
  return keep(noGrad(() => t.clone()));
}

/** Folds an eval-mode BatchNorm into the layer before it: w·s, (b - mean)·s + beta, s = gamma/√(var+eps). */
function foldBatchNorm(p: LayerNode, bn: nn.BatchNorm, path: string): void {
  const c = bn.getConfig() as Cfg;
  if (c.trackRunningStats === false) throw new ArgumentError(`${path}: a BatchNorm without running statistics cannot be folded`);
  const sd = bn.stateDict();
  const cout = p.op === 'linear' ? p.weight.shape[0] : p.weight.shape[3];
  if (bn.numFeatures !== cout) throw new ShapeError(`${path}: BatchNorm over ${bn.numFeatures} features after a layer with ${cout} outputs`);
  const [w, b] = tidy(() => noGrad(() => {
    const scale = sd.running_var.add(c.eps as number).sqrt().pow(-1).mul(sd.weight ?? 1);
    const w2 = p.op === 'linear' ? p.weight.mul(scale.reshape([cout, 1])) : p.weight.mul(scale);
    const b0 = p.bias ? p.bias.sub(sd.running_mean) : sd.running_mean.neg();
    let b2 = b0.mul(scale);
    if (sd.bias) b2 = b2.add(sd.bias);
    return [w2, b2];
  }));
  p.weight.dispose();
  p.bias?.dispose();
  p.weight = keep(w);
  p.bias = keep(b);
}

/**
 * Traces a model (in evaluation mode) for inputs of `inputShape` (one sample, no batch
 * dimension) into a folded float graph owning copies of its weights.
 */
export function traceModel(model: Module, inputShape: number[]): FloatGraph {
  assertModule(model, 'traceModel');
  if (!Array.isArray(inputShape) || !inputShape.every((d) => Number.isInteger(d) && d >= 1)) throw new ShapeError(`inputShape must be positive sizes, got ${describe(inputShape)}`);
  const t = new Tracer(inputShape);
  try {
    const out = t.trace(model, 0, true, '');
    if (out === 0) throw new ArgumentError('the model computes nothing that can be compressed (its output is its input)');
    return { nodes: t.nodes, shapes: t.shapes, output: out };
  } catch (e) {
    disposeGraph({ nodes: t.nodes, shapes: t.shapes, output: 0 });
    throw e;
  }
}

/** Frees the tensors a traced graph holds. */
export function disposeGraph(g: FloatGraph): void {
  checkGraphArg(g, 'disposeGraph');
  for (const n of g.nodes) {
    if (n.op === 'linear' || n.op === 'conv') {
      n.weight.dispose();
      n.bias?.dispose();
    }
  }
}

/** `g` must look like a traced graph (from traceModel) before anything reads its nodes. */
export function checkGraphArg(g: unknown, who: string): asserts g is { nodes: unknown[]; shapes: unknown[] } {
  const o = g as { nodes?: unknown; shapes?: unknown } | null;
  if (o === null || typeof o !== 'object' || !Array.isArray(o.nodes) || !Array.isArray(o.shapes)) {
    throw new ArgumentError(`${who} needs a graph (from compress.traceModel), got ${describe(g)}`);
  }
}

/** A `{ name: Tensor }` record given to a model constructor. */
export function checkTensorRecord(t: unknown, who: string): asserts t is Record<string, Tensor> {
  if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new ArgumentError(`${who} needs its tensors as { name: Tensor }, got ${describe(t)}`);
  for (const [k, x] of Object.entries(t)) assertTensor(x, `${who}: tensor '${shortName(k)}' must be a Tensor`);
}

/** Index of the last node reading each value (the output counts as read at the end). */
export function lastUses(g: FloatGraph): number[] {
  const last = new Array<number>(g.shapes.length).fill(-1);
  g.nodes.forEach((n, i) => {
    for (const v of inputsOf(n)) last[v] = i;
  });
  last[g.output] = g.nodes.length;
  return last;
}

export interface FloatHooks {
  /** Replaces a layer's weight for this pass (fake quantization, binarization). */
  weight?: (n: LayerNode) => Tensor;
  /** Called with each value's tensor right after it is computed (and with the input). May return a replacement. */
  value?: (v: number, t: Tensor) => Tensor | void;
}

/** Runs the float graph on a batch `x` (autograd records as usual). Frees intermediates it owns. */
export function runFloat(g: FloatGraph, x: Tensor, hooks: FloatHooks = {}): Tensor {
  const want = g.shapes[0];
  if (x.rank !== want.length + 1 || x.shape.slice(1).join() !== want.join()) {
    throw new ShapeError(`this model takes inputs [N, ${want.join(', ')}], got [${x.shape.join(', ')}]`);
  }
  const vals: (Tensor | undefined)[] = new Array(g.shapes.length);
  const owned = new Set<Tensor>();
  const last = lastUses(g);
  const set = (v: number, t: Tensor) => {
    const r = hooks.value?.(v, t);
    if (r && r !== t) {
      if (owned.has(t)) {
        t.dispose();
        owned.delete(t);
      }
      owned.add(r);
      vals[v] = r;
    } else {
      if (t !== x) owned.add(t);
      vals[v] = t;
    }
  };
  try {
    set(0, x);
    g.nodes.forEach((n, i) => {
      const a = vals[inputsOf(n)[0]]!;
      let y: Tensor;
      switch (n.op) {
        case 'linear':
        case 'conv': {
          const w = hooks.weight ? hooks.weight(n) : n.weight;
          const z = n.op === 'linear' ? F.linear(a, w, n.bias)
            : F.conv2d(a, w, n.bias, { stride: n.stride, padding: n.padding, dilation: n.dilation, groups: n.groups });
          if (w !== n.weight) w.dispose();
          y = n.relu ? z.relu() : z;
          if (y !== z) z.dispose();
          break;
        }
        case 'maxpool':
          y = F.maxPool2d(a, n.kernel, { stride: n.stride, padding: n.padding });
          break;
        case 'avgpool':
          y = F.avgPool2d(a, n.kernel, { stride: n.stride, padding: n.padding, countIncludePad: n.countIncludePad });
          break;
        case 'gap':
          y = a.mean([1, 2]);
          break;
        case 'flatten':
          y = a.reshape([a.shape[0], -1]);
          break;
        case 'relu':
          y = a.relu();
          break;
        case 'add': {
          const z = a.add(vals[n.ins[1]]!);
          y = n.relu ? z.relu() : z;
          if (y !== z) z.dispose();
          break;
        }
        case 'concat':
          y = concat(n.ins.map((v) => vals[v]!), -1);
          break;
      }
      set(n.out, y);
      for (const v of inputsOf(n)) {
        const t = vals[v];
        if (last[v] === i && t && owned.has(t)) {
          t.dispose();
          owned.delete(t);
          vals[v] = undefined;
        }
      }
    });
    const out = vals[g.output]!;
    owned.delete(out);
    return out;
  } finally {
    for (const t of owned) t.dispose();
  }
}

// ------------------------------------------------------------------ graphs read from files

/** The graph part of a compressed model file (quantized or binary). */
export interface SerialGraph {
  /** Graph format version (1). */
  version: 1;
  /** Shape of each value without the batch dimension. */
  shapes: number[][];
  /** Index of the value that is the model's output. */
  output: number;
  /** Nodes in execution order, layers naming their tensors in the file. */
  nodes: SerialNode[];
}

/** Most values (and nodes) a stored graph may have. */
const MAX_VALUES = 10_000;
const VALUE = v.int({ min: 0, max: MAX_VALUES });
const POS = v.int({ min: 1, max: 65_536 });
const PAIR = v.tuple<Pair>([POS, POS]);
const QUAD = v.tuple<Quad>([v.int({ min: 0, max: 65_536 }), v.int({ min: 0, max: 65_536 }), v.int({ min: 0, max: 65_536 }), v.int({ min: 0, max: 65_536 })]);
const LAYER_NAME = v.string({ pattern: /^[A-Za-z0-9_.-]{1,256}$/, patternName: 'a layer name of 1 to 256 letters, digits, _ . -' });
const BOOL = v.boolean();
const layer = { in: VALUE, out: VALUE, name: LAYER_NAME, relu: BOOL, binary: BOOL, hasBias: BOOL };
const pool = { in: VALUE, out: VALUE, kernel: PAIR, stride: PAIR, padding: QUAD, countIncludePad: BOOL };
const NODE = v.tagged<SerialNode>('op', {
  linear: v.object({ op: v.literal('linear'), ...layer }),
  conv: v.object({ op: v.literal('conv'), ...layer, kernel: PAIR, stride: PAIR, padding: QUAD, dilation: PAIR, groups: POS }),
  maxpool: v.object({ op: v.literal('maxpool'), ...pool }),
  avgpool: v.object({ op: v.literal('avgpool'), ...pool }),
  gap: v.object({ op: v.literal('gap'), in: VALUE, out: VALUE }),
  flatten: v.object({ op: v.literal('flatten'), in: VALUE, out: VALUE }),
  relu: v.object({ op: v.literal('relu'), in: VALUE, out: VALUE }),
  add: v.object({ op: v.literal('add'), ins: v.array(VALUE, { length: 2 }), out: VALUE, relu: BOOL }),
  concat: v.object({ op: v.literal('concat'), ins: v.array(VALUE, { min: 1, max: 1024 }), out: VALUE, relu: BOOL }),
} as Record<string, Schema<SerialNode>>);
const SHAPE = v.refine(v.array(v.int({ min: 1, max: MAX_ELEMENTS }), { min: 1, max: MAX_RANK }),
  (s) => (s.reduce((a, d) => a * d, 1) <= MAX_ELEMENTS ? null : `has more than ${MAX_ELEMENTS} elements`));
const GRAPH_FIELDS = { version: v.literal(1 as const), shapes: v.array(SHAPE, { min: 2, max: MAX_VALUES + 1 }), output: VALUE, nodes: v.array(NODE, { min: 1, max: MAX_VALUES }) };

/**
 * Checks a stored graph (`extra`: the format's own fields, such as a quantized model's qparams):
 * its schema, then that node `i` produces value `i + 1` from values before it (a topological
 * order, so no cycle or dangling reference), and that every stored shape is what the node
 * computes from its input shapes. FormatError naming `source` and the node otherwise.
 */
export function checkSerialGraph<X extends Record<string, unknown>>(raw: unknown, source: string, extra: { [K in keyof X]: Schema<X[K]> }): SerialGraph & X {
  const g = validate(v.object<SerialGraph & X>({ ...GRAPH_FIELDS, ...extra } as never), raw, source);
  const bad = (i: number, msg: string): never => {
    throw new FormatError(`${source}: nodes[${i}] (${g.nodes[i].op}) ${msg}`);
  };
  if (g.shapes.length !== g.nodes.length + 1) throw new FormatError(`${source}: ${g.nodes.length} nodes need ${g.nodes.length + 1} value shapes, got ${g.shapes.length}`);
  if (!(g.output >= 1 && g.output <= g.nodes.length)) throw new FormatError(`${source}: output ${g.output} is not a value a node produces (1 to ${g.nodes.length})`);
  const names = new Set<string>();
  g.nodes.forEach((n, i) => {
    if (n.out !== i + 1) bad(i, `must produce value ${i + 1}, not ${n.out} (nodes are stored in evaluation order)`);
    const ins = inputsOf(n as GNode);
    for (const x of ins) if (x > i) bad(i, `reads value ${x}, which is not computed before it (a cycle or a forward reference)`);
    const s = ins.map((x) => g.shapes[x]);
    const a = s[0];
    const want = g.shapes[n.out];
    let got: number[] | null = null;
    const spatial = (k: Pair, st: Pair, p: Quad, d: Pair) => [0, 1].map((j) => Math.floor((a[j] + p[2 * j] + p[2 * j + 1] - d[j] * (k[j] - 1) - 1) / st[j]) + 1);
    switch (n.op) {
      case 'linear':
        if (a.length !== 1) bad(i, `needs per-sample features [F], its input is [${a.join(', ')}]`);
        got = [want[0]];
        break;
      case 'conv': {
        if (a.length !== 3 || a[2] % n.groups !== 0 || want[want.length - 1] % n.groups !== 0) bad(i, `needs [H, W, C] input and channels divisible by groups ${n.groups}, its input is [${a.join(', ')}]`);
        const [oh, ow] = spatial(n.kernel, n.stride, n.padding, n.dilation);
        got = [oh, ow, want[2]];
        break;
      }
      case 'maxpool':
      case 'avgpool': {
        if (a.length !== 3) bad(i, `needs [H, W, C] input, its input is [${a.join(', ')}]`);
        if (n.padding[0] >= n.kernel[0] || n.padding[1] >= n.kernel[0] || n.padding[2] >= n.kernel[1] || n.padding[3] >= n.kernel[1]) bad(i, 'pads by the kernel size or more');
        const [oh, ow] = spatial(n.kernel, n.stride, n.padding, [1, 1]);
        got = [oh, ow, a[2]];
        break;
      }
      case 'gap':
        if (a.length !== 3) bad(i, `needs [H, W, C] input, its input is [${a.join(', ')}]`);
        got = [a[2]];
        break;
      case 'flatten':
        got = [prod(a)];
        break;
      case 'relu':
        got = a;
        break;
      case 'add':
        if (s[1].join() !== a.join()) bad(i, `adds [${a.join(', ')}] and [${s[1].join(', ')}]`);
        got = a;
        break;
      case 'concat':
        if (s.some((x) => x.length !== a.length || x.slice(0, -1).join() !== a.slice(0, -1).join())) bad(i, 'concatenates values whose shapes differ before the last axis');
        got = [...a.slice(0, -1), s.reduce((t, x) => t + x[x.length - 1], 0)];
        break;
    }
    if (got!.join() !== want.join()) bad(i, `computes [${got!.join(', ')}] but value ${n.out} is stored as [${want.join(', ')}]`);
    if (n.op === 'linear' || n.op === 'conv') {
      if (names.has(n.name)) bad(i, `reuses the layer name '${n.name}'`);
      names.add(n.name);
    }
  });
  return g;
}

/** The weight shape a stored layer needs: linear `[out, in]`, conv HWIO `[kh, kw, cin / groups, cout]`. */
export function layerWeightShape(g: SerialGraph, n: SerialLayer): number[] {
  const cout = g.shapes[n.out][g.shapes[n.out].length - 1];
  return n.op === 'linear' ? [cout, g.shapes[n.in][0]] : [n.kernel[0], n.kernel[1], g.shapes[n.in][2] / n.groups, cout];
}

/**
 * Checks that a file's tensor entries are exactly `want` (name, dtype, shape), before any tensor
 * is decoded. FormatError naming `source` and the first problem otherwise.
 */
export function checkGraphTensors(entries: Record<string, SafetensorsEntry>, want: [string, DType, number[]][], source: string): void {
  const names = new Set(want.map(([n]) => n));
  const extra = Object.keys(entries).filter((k) => !names.has(k));
  if (extra.length) throw new FormatError(`${source}: unexpected tensors ${extra.slice(0, 5).map((k) => `'${shortName(k)}'`).join(', ')}${extra.length > 5 ? ` and ${extra.length - 5} more` : ''}`);
  for (const [n, dtype, shape] of want) {
    if (!Object.hasOwn(entries, n)) throw new FormatError(`${source}: tensor '${n}' is missing`);
    const e = entries[n];
    if (entryDType(e) !== dtype || e.shape.join() !== shape.join()) {
      throw new FormatError(`${source}: tensor '${n}' is ${entryDType(e)} [${e.shape.join(', ')}], the graph needs ${dtype} [${shape.join(', ')}]`);
    }
  }
}

/** Per-sample input shape of a data tensor `[N, ...]`. */
export function sampleShape(x: Tensor): number[] {
  assertTensor(x, 'expected a batch of samples (a Tensor)');
  if (x.rank < 2) throw new ShapeError(`expected a batch of samples [N, ...], got [${x.shape.join(', ')}]`);
  return x.shape.slice(1);
}

/** Rows `[s, e)` of a batch tensor (a view). */
/** `forward` over `x` in batches of `batchSize` rows (default 256), the outputs concatenated. */
export function predictInBatches(forward: (x: Tensor) => Tensor, x: Tensor, batchSize = 256): Tensor {
  assertTensor(x, 'predict needs a Tensor of inputs');
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ArgumentError(`batchSize must be a positive integer, got ${describe(batchSize)}`);
  const n = x.shape[0];
  if (n <= batchSize) return forward(x);
  return tidy(() => {
    const outs: Tensor[] = [];
    for (let s = 0; s < n; s += batchSize) outs.push(forward(rows(x, s, Math.min(s + batchSize, n))));
    return concat(outs, 0);
  });
}

export function rows(x: Tensor, s: number, e: number): Tensor {
  return x.slice([s, ...x.shape.slice(1).map(() => 0)], [e, ...x.shape.slice(1)]);
}
