/**
 * `OnnxModule`: an imported ONNX graph as a runnable edgegrad Module. Float initializers become
 * parameters (named after the initializer, dots and slashes as `_`), so the graph can be
 * fine-tuned and exported again; int8/uint8 initializers (quantized weights) become buffers of
 * their integer values, int32/int64 ones (shapes, axes, int32 biases) host constants. `forward` runs the
 * nodes in file order (ONNX requires topological order) with the operators of `ops.ts`.
 */
import { ArgumentError, FormatError } from '../errors.js';
import { checkOptions, describe } from '../args.js';
import { tidy } from '../memory.js';
import { tensor } from '../creation.js';
import { Tensor, assertTensor } from '../tensor.js';
import { Module } from '../nn/module.js';
import { DataType, encodeModel, tensorProto, tensorValues, type ModelProto, type TensorProto } from './proto.js';
import { Attrs, intKinds, OPS, type Const, type Value } from './ops.js';

/** Opsets of the default domain `importModel` reads (operator signatures it knows). */
export const MIN_OPSET = 13;
/** The newest default-domain opset `importModel` reads. */
export const MAX_OPSET = 21;

/** Checks a decoded model can run: opset, supported ops (all unsupported ones named), names defined before use. */
function check(m: ModelProto): { opset: number } {
  const def = m.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  if (!def) throw new FormatError('ONNX model imports no opset of the default domain');
  const opset = def.version;
  if (!(opset >= MIN_OPSET && opset <= MAX_OPSET)) throw new ArgumentError(`ONNX opset ${opset} is not supported (importModel reads opsets ${MIN_OPSET} to ${MAX_OPSET})`);
  const g = m.graph;
  const bad = new Set<string>();
  for (const n of g.node) {
    const dom = n.domain ?? '';
    if (typeof n.opType !== 'string' || !n.opType) throw new FormatError('ONNX graph has a node without an op type');
    if ((dom !== '' && dom !== 'ai.onnx') || !Object.hasOwn(OPS, n.opType)) bad.add(dom ? `${dom}.${n.opType}` : n.opType);
  }
  if (bad.size) {
    const list = [...bad].map((s) => s.slice(0, 60));
    throw new ArgumentError(`ONNX model uses unsupported operators: ${list.join(', ')} (importModel runs ${Object.keys(OPS).join(', ')})`);
  }
  const defined = new Set<string>(['']);
  for (const t of g.initializer) defined.add(t.name ?? '');
  for (const v of g.input) defined.add(v.name);
  g.node.forEach((n, i) => {
    for (const x of n.input) if (!defined.has(x)) throw new FormatError(`ONNX node ${i} (${n.opType}) reads '${x.slice(0, 60)}' before any node defines it`);
    for (const y of n.output) defined.add(y);
  });
  for (const o of g.output) if (!defined.has(o.name)) throw new FormatError(`ONNX graph output '${o.name.slice(0, 60)}' is never computed`);
  if (g.output.length === 0) throw new FormatError('ONNX graph has no output');
  return { opset };
}

function paramKey(name: string, taken: Set<string>): string {
  const base = name.replace(/[./]/g, '_') || 'initializer';
  let k = base;
  for (let i = 2; taken.has(k); i++) k = `${base}_${i}`;
  taken.add(k);
  return k;
}

/** An ONNX graph run with edgegrad's engine ops. */
export class OnnxModule extends Module {
  /** The decoded model (initializer data is read from the parameters when exporting). */
  readonly proto: ModelProto;
  /** The default-domain opset the model declares. */
  readonly opset: number;
  /** Names of the graph inputs `forward` takes, in order (initializers excluded). */
  readonly inputNames: string[];
  /** Names of the graph outputs; `forward` returns the first, `run` all of them. */
  readonly outputNames: string[];
  readonly #params = new Map<string, string>(); // initializer name -> parameter key
  readonly #buffers = new Map<string, string>(); // int8/uint8 initializer name -> buffer key
  readonly #consts = new Map<string, Const>();

  constructor(proto: ModelProto) {
    const g0 = (proto as Partial<ModelProto> | null)?.graph;
    if (proto === null || typeof proto !== 'object' || !Array.isArray(proto.opsetImport) || g0 === null || typeof g0 !== 'object'
      || !(['node', 'initializer', 'input', 'output'] as const).every((k) => Array.isArray(g0[k]))) {
      throw new ArgumentError(`OnnxModule needs a decoded ModelProto (use eg.onnx.importModel(bytes)), got ${describe(proto)}`);
    }
    super();
    this.opset = check(proto).opset;
    this.proto = proto;
    const g = proto.graph;
    const inits = new Set(g.initializer.map((t) => t.name ?? ''));
    this.inputNames = g.input.map((v) => v.name).filter((n) => !inits.has(n));
    this.outputNames = g.output.map((v) => v.name);
    const taken = new Set<string>();
    try {
      g.initializer.forEach((t, i) => {
        const v = tensorValues(t, `ONNX initializer ${i} '${(t.name ?? '').slice(0, 60)}'`);
        if (v.dataType === DataType.FLOAT) {
          const key = paramKey(t.name ?? '', taken);
          this.registerParameter(key, tensor(v.data as Float32Array, v.dims));
          this.#params.set(t.name ?? '', key);
        } else if (v.dataType === DataType.INT64 || v.dataType === DataType.INT32) {
          this.#consts.set(t.name ?? '', { dims: v.dims, data: Array.from(v.data as ArrayLike<number>) });
        } else {
          // int8/uint8 (quantized weights, zero points): integer-valued float32 buffers, not trained.
          const key = paramKey(t.name ?? '', taken);
          const b = this.registerBuffer(key, tensor(Float32Array.from(v.data as ArrayLike<number>), v.dims));
          intKinds.set(b, v.dataType === DataType.INT8 ? 'int8' : 'uint8');
          this.#buffers.set(t.name ?? '', key);
        }
      });
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Runs the graph; returns every output by name. `inputs` follow `inputNames`. */
  run(...inputs: Tensor[]): Record<string, Tensor> {
    if (inputs.length !== this.inputNames.length) {
      throw new ArgumentError(`this ONNX graph takes ${this.inputNames.length} input(s) (${this.inputNames.join(', ')}), got ${inputs.length}`);
    }
    inputs.forEach((x) => assertTensor(x, 'ONNX graph inputs must be Tensors'));
    const sd = this.stateDict();
    return tidy(() => {
      const env = new Map<string, Value>(this.#consts);
      for (const [name, key] of [...this.#params, ...this.#buffers]) env.set(name, sd[key]);
      this.inputNames.forEach((n, i) => env.set(n, inputs[i]));
      this.proto.graph.node.forEach((n, i) => {
        const where = `ONNX node ${i} '${(n.name ?? '').slice(0, 60)}' (${n.opType})`;
        const ins = n.input.map((x) => (x === '' ? undefined : env.get(x)));
        const outs = OPS[n.opType](ins, new Attrs(n, where));
        n.output.forEach((o, k) => {
          const v = outs[k];
          if (o !== '' && v !== undefined) env.set(o, v);
        });
      });
      const out: Record<string, Tensor> = {};
      for (const o of this.outputNames) {
        const v = env.get(o);
        out[o] = v instanceof Tensor ? v : tensor(Int32Array.from((v as Const).data), (v as Const).dims, 'int32');
        // An output that is an input or a parameter is returned as a copy the caller may free.
        if (inputs.includes(out[o]) || Object.values(sd).includes(out[o])) out[o] = out[o].clone();
      }
      return out;
    });
  }

  /** The first graph output for `inputs` (in `inputNames` order). */
  forward(x: Tensor, ...rest: unknown[]): Tensor {
    const r = this.run(x, ...(rest as Tensor[]));
    const [first, ...others] = this.outputNames;
    for (const o of others) if (r[o] !== r[first]) r[o].dispose();
    return r[first];
  }

  /**
   * The model as ONNX bytes again: the same graph, attributes, names and doc strings, with each
   * float initializer holding its parameter's current values. Unchanged weights give the bytes
   * `importModel` read (for files written with raw data, as edgegrad and PyTorch write them).
   */
  toBytes(o: { opset?: number; docString?: string } = {}): Uint8Array {
    o = checkOptions(o, 'OnnxModule.toBytes options');
    if (o.docString !== undefined && typeof o.docString !== 'string') throw new ArgumentError(`OnnxModule.toBytes docString must be a string, got ${describe(o.docString)}`);
    if (o.opset !== undefined && o.opset !== this.opset) {
      throw new ArgumentError(`an imported ONNX graph exports at its own opset (${this.opset}), not ${describe(o.opset)}`);
    }
    const sd = this.stateDict();
    const initializer: TensorProto[] = this.proto.graph.initializer.map((t) => {
      const key = this.#params.get(t.name ?? '');
      if (key === undefined) return t;
      const p = tensorProto(t.name ?? '', t.dims ?? [], sd[key].dataSync() as Float32Array);
      return t.docString ? { ...p, docString: t.docString } : p;
    });
    return encodeModel({ ...this.proto, ...(o.docString !== undefined ? { docString: o.docString } : {}), graph: { ...this.proto.graph, initializer } });
  }

  /** Imported graphs have no module config (they are data, not a registered class): always throws ArgumentError. */
  override getConfig(): Record<string, unknown> {
    throw new ArgumentError('an imported ONNX graph has no module config: save it with eg.onnx.exportModel (or its weights with saveWeights)');
  }
}
