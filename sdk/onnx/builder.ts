/**
 * The graph under construction, shared by the float and int8 exporters: unique names, nodes,
 * initializers, value infos, and the NCHW/NHWC bookkeeping of values.
 */
import { InternalError } from '../errors.js';
import { AttrType, tensorProto, type AttributeProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';
import { elemType } from './types.js';

/** A value in the graph: its name, edgegrad-layout shape, and whether it is stored NCHW. */
export interface Val {
  name: string;
  shape: number[];
  nchw?: boolean;
  /** int32 for token ids (the graph input of an Embedding); float32 when absent. */
  dtype?: 'float32' | 'int32';
}

/** An attribute value: int, ints, string, strings, float or floats. */
export type Attr = number | number[] | string | string[] | { floats: number[] } | { float: number };

/** The graph being built: unique names, nodes, initializers and value infos. */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly valueInfo: ValueInfoProto[] = [];
  readonly #names = new Set<string>();
  readonly #scalars = new Map<string, string>();
  /** The key mask graph input `[batch, keys]` (1 = keep), when exported with one. */
  keyMask: string | null = null;
  #maskBias: string | null = null;
  constructor(readonly opset: number, readonly dynamicBatch: boolean) {}

  /** `(mask − 1) · 1e9` as `[batch, 1, 1, keys]`, added to attention scores (built once, shared by every layer). */
  maskBias(): string {
    if (this.keyMask === null) throw new InternalError('onnx export: maskBias() without a key mask input');
    if (this.#maskBias === null) {
      const m = this.op('key_mask', 'Cast', [this.op('key_mask', 'Reshape', [this.keyMask, this.constant([0, 1, 1, -1], true)])], { to: 1 });
      this.#maskBias = this.op('key_mask', 'Mul', [this.op('key_mask', 'Sub', [m, this.constant(1)]), this.constant(1e9)]);
    }
    return this.#maskBias;
  }

  /** `base`, or `base_2`, `base_3`… if taken. */
  unique(base: string): string {
    let n = base;
    for (let i = 2; this.#names.has(n); i++) n = `${base}_${i}`;
    this.#names.add(n);
    return n;
  }
  /** Adds an initializer; returns its name. */
  init(base: string, dims: number[], data: Float32Array | Int32Array | Int8Array | Uint8Array | BigInt64Array): string {
    const name = this.unique(base);
    this.initializers.push(tensorProto(name, dims, data));
    return name;
  }
  /** A shared scalar (or 1-D int64 list, for shapes and axes) initializer. */
  constant(v: number | number[], int64 = false): string {
    const key = `${int64 ? 'i' : 'f'}:${JSON.stringify(v)}`;
    let name = this.#scalars.get(key);
    if (!name) {
      const list = Array.isArray(v) ? v : [v];
      const data = int64 ? BigInt64Array.from(list.map((x) => BigInt(x))) : Float32Array.from(list);
      name = this.init(int64 ? `const_i64_${list.join('_').replace(/-/g, 'm')}` : 'const_f32', Array.isArray(v) ? [v.length] : [], data);
      this.#scalars.set(key, name);
    }
    return name;
  }
  /** Adds a node `op(inputs)` with `outputs` fresh outputs; returns their names. */
  node(scope: string, op: string, inputs: string[], attrs: Record<string, Attr> = {}, o: { outputs?: number; doc?: string; domain?: string } = {}): string[] {
    const name = this.unique(`/${scope}/${op}`);
    const outs = Array.from({ length: o.outputs ?? 1 }, (_, i) => this.unique(`${name}_output_${i}`));
    const attribute = Object.entries(attrs).map(([k, v]) => attribute_(k, v));
    this.nodes.push({ input: inputs, output: outs, name, opType: op, attribute, ...(o.domain ? { domain: o.domain } : {}), ...(o.doc ? { docString: o.doc } : {}) });
    return outs;
  }
  /** One-output node. */
  op(scope: string, op: string, inputs: string[], attrs: Record<string, Attr> = {}, doc?: string): string {
    return this.node(scope, op, inputs, attrs, { doc })[0];
  }
  /** Records the shape of a value (batch symbolic when asked). */
  info(v: Val, dtype: 'float32' | 'int32' = 'float32'): void {
    this.valueInfo.push(valueInfo(v.name, physical(v), dtype, this.dynamicBatch));
  }
  /** The value in NCHW (a Transpose unless it already is). */
  nchw(v: Val, scope: string): Val {
    if (v.nchw || v.shape.length !== 4) return v;
    return { name: this.op(scope, 'Transpose', [v.name], { perm: [0, 3, 1, 2] }), shape: v.shape, nchw: true };
  }
  /** The value in edgegrad's layout. */
  nhwc(v: Val, scope: string): Val {
    if (!v.nchw) return v;
    return { name: this.op(scope, 'Transpose', [v.name], { perm: [0, 2, 3, 1] }), shape: v.shape };
  }
  /** ReduceMean over `axes` (an attribute before opset 18, an input from 18 on). */
  reduceMean(scope: string, x: string, axes: number[], keepdims: boolean, doc?: string): string {
    if (this.opset < 18) return this.op(scope, 'ReduceMean', [x], { axes, keepdims: keepdims ? 1 : 0 }, doc);
    return this.op(scope, 'ReduceMean', [x, this.constant(axes, true)], { keepdims: keepdims ? 1 : 0 }, doc);
  }
}

function attribute_(name: string, v: Attr): AttributeProto {
  if (typeof v === 'number') return { name, type: AttrType.INT, i: v };
  if (typeof v === 'string') return { name, type: AttrType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    if (v.length && typeof v[0] === 'string') return { name, type: AttrType.STRINGS, strings: (v as string[]).map((s) => new TextEncoder().encode(s)) };
    return { name, type: AttrType.INTS, ints: v as number[] };
  }
  if ('float' in v) return { name, type: AttrType.FLOAT, f: v.float };
  return { name, type: AttrType.FLOATS, floats: v.floats };
}

function physical(v: Val): number[] {
  const s = v.shape;
  return v.nchw ? [s[0], s[3], s[1], s[2]] : s;
}

/** A value info for a tensor of `shape` (dim 0 named `N` when the batch is dynamic). */
export function valueInfo(name: string, shape: number[], dtype: 'float32' | 'int32' | 'int8' | 'uint8', dynamicBatch: boolean): ValueInfoProto {
  const dim = shape.map((d, i) => (i === 0 && dynamicBatch ? { dimParam: 'N' } : { dimValue: d }));
  return { name, type: { tensorType: { elemType: elemType(dtype), shape: { dim } } } };
}

/** The version recorded as `producer_version`. */
export const PRODUCER_VERSION = '0.1.0';

/** Names the final value `out`: renames the producing node's output, or adds an Identity when the value is the input or used elsewhere. */
export function finishOutput(g: GraphBuilder, value: string, out: string): void {
  const producer = g.nodes.find((n) => n.output.includes(value));
  const used = g.nodes.some((n) => n.input.includes(value));
  if (!producer || used) {
    g.nodes.push({ input: [value], output: [out], name: g.unique('/output/Identity'), opType: 'Identity', attribute: [] });
    return;
  }
  producer.output = producer.output.map((o) => (o === value ? out : o));
  // The graph output carries its own value info.
  const i = g.valueInfo.findIndex((v) => v.name === value);
  if (i >= 0) g.valueInfo.splice(i, 1);
}
