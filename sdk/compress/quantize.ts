/**
 * Post-training int8 quantization.
 *
 * `quantize(model, calibrationData, options)` traces the model (BatchNorm folded, ReLU fused),
 * runs the float graph over the calibration samples to choose a range for every activation that
 * an int8 op produces (min-max, a percentile, or the MSE-optimal range of a 2048-bin histogram),
 * quantizes weights per output channel (symmetric int8) and returns a `QuantizedModel`.
 *
 * A `QuantizedModel` runs entirely on int8 kernels in the engine: the input is quantized once,
 * every conv/linear is an int8 GEMM with int32 accumulation and a fixed-point requantization
 * (ReLU fused as a clamp; a 2x2 max pool right after a conv runs in that conv's epilogue),
 * pooling/flatten keep their input's quantization, residual adds and
 * concatenations requantize their inputs, and only the last layer dequantizes (its epilogue
 * writes float32 directly). Results are bitwise identical in every runtime and thread count.
 *
 * It saves to one safetensors file: int8 weights, float32 per-channel weight scales and biases,
 * and the graph with every activation's scale and zero point in the `__metadata__`.
 */
import { checkInt, checkOptions, describe } from '../args.js';
import { ArgumentError, FormatError, ShapeError } from '../errors.js';
import { noGrad } from '../autograd.js';
import { keep, tidy } from '../memory.js';
import { Module } from '../nn/module.js';
import { assertTensor, Tensor } from '../tensor.js';
import { readBytes, statPath } from '../io/files.js';
import { decodeTensor, encodeSafetensors, parseSafetensorsHeader, type SafetensorsEntry } from '../io/safetensors.js';
import { parseJson } from '../io/json.js';
import { v } from '../io/validate.js';
import type { DType } from '../tensor.js';
import * as E from './engine.js';
import type { QParams } from './engine.js';
import {
  checkGraphArg, checkGraphTensors, checkSerialGraph, checkTensorRecord, disposeGraph, floatOutput, inputsOf, isQuantPoint, layerWeightShape, predictInBatches, quantSource, rows,
  runFloat, sampleShape, serialLayer, traceModel, type FloatGraph, type GNode, type SerialGraph, type SerialLayer, type SerialNode,
} from './graph.js';

/** How calibration picks each activation's range: `'minmax'` (observed min/max), `'percentile'` (drops outliers) or `'mse'` (minimizes the quantization error over a histogram). */
export type CalibrationMethod = 'minmax' | 'percentile' | 'mse';

/** Options of activation-range calibration (post-training quantization). */
export interface CalibrationOptions {
  /** How activation ranges are chosen (default `'percentile'`). */
  method?: CalibrationMethod;
  /** Percent of the values kept inside the range for `'percentile'` (default 99.99). */
  percentile?: number;
  /** Histogram bins for `'percentile'` and `'mse'` (default 2048). */
  bins?: number;
  /** Samples per calibration batch (default 256). */
  batchSize?: number;
  /** Use at most this many calibration samples (default: all). */
  maxSamples?: number;
}

/** Options of `quantize`: calibration plus the input shape. */
export interface QuantizeOptions extends CalibrationOptions {
  /** Per-sample input shape (default: the calibration data's shape without its first axis). */
  inputShape?: number[];
}

const isNode = typeof process !== 'undefined' && process.versions?.node != null && typeof window === 'undefined';
const FORMAT = 'edgegrad-quantized';

/** Activation ranges `[lo, hi]` of every quantization point of `g`, observed on `data`. */
export function calibrateRanges(g: FloatGraph, data: Tensor, o: CalibrationOptions = {}): Map<number, [number, number]> {
  if (g === null || typeof g !== 'object' || !Array.isArray(g.shapes)) throw new ArgumentError(`calibration needs a traced graph (compress.traceModel), got ${describe(g)}`);
  assertTensor(data, 'calibration needs a Tensor of samples');
  if (data.rank === 0) throw new ShapeError('calibration data needs a leading sample dimension');
  o = checkOptions(o, 'calibration options');
  const method = o.method ?? 'percentile';
  if (!['minmax', 'percentile', 'mse'].includes(method)) throw new ArgumentError(`unknown calibration method '${method}' (minmax, percentile or mse)`);
  const bins = o.bins ?? 2048;
  const bs = o.batchSize ?? 256;
  if (!Number.isInteger(bs) || bs < 1) throw new ArgumentError(`batchSize must be a positive integer, got ${bs}`);
  if (!Number.isInteger(bins) || bins < 16) throw new ArgumentError(`bins must be an integer >= 16, got ${bins}`);
  const n = Math.min(data.shape[0], o.maxSamples ?? Infinity);
  if (!(n >= 1)) throw new ArgumentError('calibration needs at least one sample');
  // NaN or ±Infinity in the samples would give garbage scales: x - x is NaN exactly there.
  if (data.dtype === 'float32' && Number.isNaN(tidy(() => data.sub(data).sum().item()))) {
    throw new ArgumentError('the calibration data contains NaN or infinite values');
  }
  const points = g.shapes.map((_, v) => v).filter((v) => isQuantPoint(g, v));
  const lo = new Map<number, number>(points.map((v) => [v, Infinity]));
  const hi = new Map<number, number>(points.map((v) => [v, -Infinity]));
  const pass = (f: (v: number, t: Tensor) => void) => {
    for (let s = 0; s < n; s += bs) {
      tidy(() => noGrad(() => {
        runFloat(g, rows(data, s, Math.min(s + bs, n)), { value: (v, t) => (lo.has(v) ? f(v, t) : undefined) });
      }));
    }
  };
  pass((v, t) => {
    const [a, b] = E.minMax(t);
    if (!Number.isFinite(a) || !Number.isFinite(b)) {
      throw new ArgumentError(`calibration: the observer of graph value ${v} saw non-finite values (range [${a}, ${b}]); check the model and calibration data for overflow`);
    }
    lo.set(v, Math.min(lo.get(v)!, a));
    hi.set(v, Math.max(hi.get(v)!, b));
  });
  const ranges = new Map<number, [number, number]>(points.map((v) => [v, [lo.get(v)!, hi.get(v)!]]));
  if (method !== 'minmax') {
    const hists = new Map<number, Float64Array>(points.map((v) => [v, new Float64Array(bins)]));
    pass((v, t) => {
      const [a, b] = ranges.get(v)!;
      if (!(a < b)) return;
      const h = E.histogram(t, a, b, bins);
      const acc = hists.get(v)!;
      for (let i = 0; i < bins; i++) acc[i] += h[i];
    });
    for (const v of points) {
      const [a, b] = ranges.get(v)!;
      if (a < b) ranges.set(v, E.calibRange(hists.get(v)!, a, b, method, o.percentile ?? 99.99));
    }
  }
  return ranges;
}

/** Quantization of every quantization point of `g`, calibrated on `data`. */
export function calibrate(g: FloatGraph, data: Tensor, o: CalibrationOptions = {}): Map<number, QParams> {
  const r = calibrateRanges(g, data, o);
  return new Map([...r].map(([v, [a, b]]) => [v, E.chooseQParams(a, b)]));
}

/**
 * Post-training quantization: a `QuantizedModel` computing `model` (in evaluation mode) with int8
 * weights and activations, calibrated on `calibrationData` (`[N, ...inputShape]`).
 */
export function quantize(model: Module, calibrationData: Tensor, o: QuantizeOptions = {}): QuantizedModel {
  if (!(model instanceof Module)) throw new ArgumentError(`quantize() needs a Module, got ${describe(model)}`);
  assertTensor(calibrationData, 'quantize() needs a Tensor of calibration data');
  if (calibrationData.rank === 0) throw new ShapeError('quantize(): the calibration data needs a leading sample dimension');
  o = checkOptions(o, 'quantize() options');
  const wasTraining = model.training;
  model.eval();
  const g = traceModel(model, o.inputShape ?? sampleShape(calibrationData));
  try {
    return QuantizedModel.fromFloatGraph(g, calibrate(g, calibrationData, o));
  } finally {
    disposeGraph(g);
    model.train(wasTraining);
  }
}

// ------------------------------------------------------------------------------------ the model


/** The graph part of a quantized model file (JSON in the safetensors metadata). */
export interface QuantizedGraphJson extends SerialGraph {
  /** `[scale, zeroPoint]` of every quantization point, by value index. */
  qparams: Record<string, [number, number]>;
}

const QPARAMS = v.record(v.tuple<[number, number]>([v.number({ gt: 0 }), v.int({ min: -128, max: 127 })]),
  { key: v.string({ pattern: /^(0|[1-9][0-9]{0,5})$/, patternName: 'a value index' }) });

/** Checks a quantized model's graph JSON and that it fits the file's tensors (none decoded yet). */
function checkQuantizedGraph(text: string, entries: Record<string, SafetensorsEntry>): QuantizedGraphJson {
  const src = 'quantized model graph';
  const g = checkSerialGraph<{ qparams: Record<string, [number, number]> }>(parseJson(text, src, { maxDepth: 8 }), src, { qparams: QPARAMS });
  const fo = floatOutput(g as unknown as FloatGraph);
  for (const n of g.nodes) {
    const point = n.op === 'linear' || n.op === 'conv' || n.op === 'add' || n.op === 'concat';
    if (point && !(n.out === g.output && fo) && !Object.hasOwn(g.qparams, String(n.out))) throw new FormatError(`${src}: value ${n.out} (${n.op}) has no qparams`);
  }
  if (!Object.hasOwn(g.qparams, '0')) throw new FormatError(`${src}: the input (value 0) has no qparams`);
  for (const k of Object.keys(g.qparams)) if (Number(k) >= g.shapes.length) throw new FormatError(`${src}: qparams for value ${k}, which does not exist`);
  const want: [string, DType, number[]][] = [];
  for (const n of g.nodes) {
    if (n.op !== 'linear' && n.op !== 'conv') continue;
    if (n.binary) throw new FormatError(`${src}: layer '${n.name}' is marked binary, which an int8 model cannot run`);
    const w = layerWeightShape(g, n);
    want.push([`${n.name}.weight`, 'int8', w], [`${n.name}.weight_scale`, 'float32', [w[w.length === 2 ? 0 : 3]]]);
    if (n.hasBias) want.push([`${n.name}.bias`, 'float32', [w[w.length === 2 ? 0 : 3]]]);
  }
  checkGraphTensors(entries, want, 'quantized model');
  return g;
}

interface Layer {
  wq: Tensor;
  wScales: Tensor;
  bias: Tensor | null;
  packed: Tensor;
  consts: E.LayerConstants;
  out: QParams | null;
}

function layerGroups(n: SerialLayer): number {
  return n.op === 'linear' ? 0 : n.groups;
}

/** A model running on int8 kernels (see the module docs). */
export class QuantizedModel {
  /** The quantized layer graph, as stored in the model file. */
  readonly graph: QuantizedGraphJson;
  readonly #layers = new Map<number, Layer>();
  readonly #q = new Map<number, QParams>();
  readonly #qcache = new Map<number, QParams>();
  /** Conv output value → the 2x2 stride-2 max pool output computed in that conv's epilogue. */
  readonly #fusedPool = new Map<number, number>();
  #disposed = false;

  /** Builds the runtime from the graph and its tensors (`<layer>.weight` int8, `.weight_scale`, `.bias`). */
  constructor(graph: QuantizedGraphJson, tensors: Record<string, Tensor>) {
    checkGraphArg(graph, 'QuantizedModel');
    if (graph.qparams === null || typeof graph.qparams !== 'object') throw new ArgumentError(`QuantizedModel: the graph has no qparams (got ${describe(graph.qparams)})`);
    checkTensorRecord(tensors, 'QuantizedModel');
    this.graph = graph;
    for (const [v, [s, z]] of Object.entries(graph.qparams)) this.#q.set(Number(v), { scale: s, zeroPoint: z });
    // Everything made here until it is owned by #layers: freed if a later layer fails.
    const made: Tensor[] = [];
    try {
      graph.nodes.forEach((n) => {
        if (n.op !== 'linear' && n.op !== 'conv') return;
        const get = (k: string) => {
          const t = tensors[`${n.name}.${k}`];
          if (!t) throw new FormatError(`quantized model: tensor '${n.name}.${k}' is missing`);
          return t;
        };
        const wq = get('weight');
        const wScales = get('weight_scale');
        const bias = n.hasBias ? get('bias') : null;
        if (wq.dtype !== 'int8' || wScales.dtype !== 'float32' || (bias && bias.dtype !== 'float32')) {
          throw new FormatError(`quantized model: layer '${n.name}' needs int8 weights and float32 scales and bias`);
        }
        const groups = layerGroups(n);
        const out = this.#floatOutput(n.out) ? null : this.qOf(n.out);
        const packed = E.packWeights(wq, groups);
        made.push(packed);
        const c = E.layerConstants(wq, wScales, bias, groups, this.qOf(n.in), out);
        for (const t of [c.offsets, c.mult, c.scales]) if (t) made.push(t);
        for (const t of [wq, wScales, bias, ...made]) if (t) keep(t);
        this.#layers.set(n.out, { wq, wScales, bias, packed, consts: c, out });
        made.length = 0;
      });
      this.#planPoolFusion();
    } catch (e) {
      for (const t of made) t.dispose();
      this.dispose();
      throw e;
    }
  }

  /**
   * A conv with int8 output read only by a 2x2, stride-2, unpadded max pool runs with the pool in
   * its epilogue (max of the accumulators, then one requantization): bitwise the same result,
   * since requantization never decreases, and a quarter of the requantizations and stores.
   */
  #planPoolFusion(): void {
    const reads = new Map<number, number>([[this.graph.output, 1]]);
    for (const n of this.graph.nodes) for (const v of inputsOf(n as GNode)) reads.set(v, (reads.get(v) ?? 0) + 1);
    for (const p of this.graph.nodes) {
      if (p.op !== 'maxpool' || p.kernel.join() !== '2,2' || p.stride.join() !== '2,2' || p.padding.some((x) => x !== 0)) continue;
      const c = this.graph.nodes.find((n) => n.out === p.in);
      if (c?.op === 'conv' && reads.get(c.out) === 1 && this.#layers.get(c.out)!.out !== null) this.#fusedPool.set(c.out, p.out);
    }
  }

  /** Quantizes a traced float graph's weights with the given activation quantizations. */
  static fromFloatGraph(g: FloatGraph, q: Map<number, QParams>): QuantizedModel {
    const tensors: Record<string, Tensor> = {};
    const nodes: SerialNode[] = g.nodes.map((n) => {
      if (n.op !== 'linear' && n.op !== 'conv') return { ...n } as SerialNode;
      if (n.binary) throw new ArgumentError(`layer '${n.name}' has binary weights: export it with BinaryModel, not int8 quantization`);
      const [wq, ws] = E.quantizePerChannel(n.weight, n.op === 'linear' ? 0 : 3);
      tensors[`${n.name}.weight`] = wq;
      tensors[`${n.name}.weight_scale`] = ws;
      if (n.bias) tensors[`${n.name}.bias`] = noGrad(() => n.bias!.clone());
      return serialLayer(n);
    });
    const qparams: Record<string, [number, number]> = {};
    for (const [v, p] of q) qparams[v] = [p.scale, p.zeroPoint];
    try {
      return new QuantizedModel({ version: 1, shapes: g.shapes, output: g.output, nodes, qparams }, tensors);
    } catch (e) {
      for (const t of Object.values(tensors)) t.dispose();
      throw e;
    }
  }

  /** Whether value v is the output of the last layer, which then writes float32 directly. */
  #floatOutput(v: number): boolean {
    return v === this.graph.output;
  }

  /** The quantization of value `v`. */
  qOf(v: number): QParams {
    checkInt(v, 'QuantizedModel.qOf: value index', 0);
    let q = this.#qcache.get(v);
    if (q) return q;
    const src = quantSource(this.graph as unknown as FloatGraph, v);
    q = this.#q.get(src);
    if (!q) throw new FormatError(`quantized model: no quantization for value ${src}`);
    this.#qcache.set(v, q);
    return q;
  }

  /** Per-sample input shape. */
  get inputShape(): number[] {
    return this.graph.shapes[0].slice();
  }
  /** Quantization (scale, zero point) of the model's input: the float input is quantized with it. */
  get inputQuantization(): QParams {
    return this.qOf(0);
  }

  /** Weight elements (int8) plus biases and per-channel scales. */
  numParameters(): number {
    let n = 0;
    for (const l of this.#layers.values()) n += l.wq.size + (l.bias?.size ?? 0);
    return n;
  }

  /** The layers: name, kind, weight shape, input/output quantization. */
  summary(): {
    /** The layer's name in the graph. */
    name: string;
    /** `'linear'` or `'conv'`. */
    op: string;
    /** Shape of the int8 weight. */
    weightShape: number[];
    /** Quantization of the layer's input. */
    input: QParams;
    /** Quantization of its output, or `'float32'` for a float output. */
    output: QParams | 'float32';
    /** Whether a ReLU is fused into the layer. */
    relu: boolean;
  }[] {
    return this.graph.nodes.filter((n): n is SerialLayer => n.op === 'linear' || n.op === 'conv').map((n) => ({
      name: n.name, op: n.op, weightShape: this.#layers.get(n.out)!.wq.shape, input: this.qOf(n.in),
      output: this.#layers.get(n.out)!.out ?? 'float32', relu: n.relu,
    }));
  }

  #check(): void {
    if (this.#disposed) throw new ArgumentError('this QuantizedModel was disposed');
  }

  /** Output (float32) for one batch `[N, ...inputShape]`. */
  forward(x: Tensor): Tensor {
    this.#check();
    assertTensor(x, 'QuantizedModel.forward needs a Tensor');
    const want = this.graph.shapes[0];
    if (x.dtype !== 'float32') throw new ArgumentError(`a QuantizedModel takes float32 input, got ${x.dtype}`);
    if (x.rank !== want.length + 1 || x.shape.slice(1).join() !== want.join()) {
      throw new ShapeError(`this quantized model takes inputs [N, ${want.join(', ')}], got [${x.shape.join(', ')}]`);
    }
    return tidy(() => {
      const vals: Tensor[] = [];
      vals[0] = E.quantizeTensor(x, this.qOf(0));
      for (const n of this.graph.nodes) {
        const pooled = this.#fusedPool.get(n.out);
        if (pooled !== undefined) vals[pooled] = this.#run(n, vals, true);
        else if (vals[n.out] === undefined) vals[n.out] = this.#run(n, vals); // a fused pool is already there
      }
      const y = vals[this.graph.output];
      return y.dtype === 'float32' ? y : E.dequantizeTensor(y, this.qOf(this.graph.output));
    });
  }

  /** `maxPool2`: a conv also applies the 2x2 max pool that follows it (see `#planPoolFusion`). */
  #run(n: SerialNode, vals: Tensor[], maxPool2 = false): Tensor {
    const a = vals[inputsOf(n as GNode)[0]];
    switch (n.op) {
      case 'linear':
      case 'conv': {
        const l = this.#layers.get(n.out)!;
        const o: E.LayerOutput = { c: l.consts, out: l.out, relu: n.relu };
        const y = n.op === 'linear'
          ? E.qlinear(a, l.packed, l.wq.shape[1], o)
          : E.qconv2d(a, this.qOf(n.in).zeroPoint, l.packed, {
            kernel: [l.wq.shape[0], l.wq.shape[1], l.wq.shape[2]], stride: n.stride, padding: n.padding, dilation: n.dilation, groups: n.groups,
          }, o, maxPool2);
        // A float-output layer cannot clamp in its epilogue; apply its ReLU here.
        return l.out === null && n.relu ? y.relu() : y;
      }
      case 'maxpool':
        return E.qmaxPool2d(a, n.kernel, n.stride, n.padding);
      case 'avgpool':
        return E.qavgPool2d(a, n.kernel, n.stride, n.padding, n.countIncludePad, this.qOf(n.in).zeroPoint);
      case 'gap': {
        const [, h, w, c] = a.shape;
        return E.qavgPool2d(a, [h, w], [h, w], [0, 0, 0, 0], false, this.qOf(n.in).zeroPoint).reshape([a.shape[0], c]);
      }
      case 'flatten':
        return a.reshape([a.shape[0], -1]);
      case 'relu': {
        const q = this.qOf(n.in);
        return E.qrequantize(a, q, q, true);
      }
      case 'add':
        return E.qadd(a, this.qOf(n.ins[0]), vals[n.ins[1]], this.qOf(n.ins[1]), this.qOf(n.out), n.relu);
      case 'concat':
        return E.qconcat(n.ins.map((v) => vals[v]), n.ins.map((v) => this.qOf(v)), -1, this.qOf(n.out));
    }
  }

  /** Outputs for `x` in batches (float32). */
  predict(x: Tensor, o: { batchSize?: number } = {}): Tensor {
    return predictInBatches((b) => this.forward(b), x, checkOptions(o, 'predict options').batchSize);
  }

  /** The tensors a file stores (owned by this model: do not dispose them). */
  tensors(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const n of this.graph.nodes) {
      if (n.op !== 'linear' && n.op !== 'conv') continue;
      const l = this.#layers.get(n.out)!;
      out[`${n.name}.weight`] = l.wq;
      out[`${n.name}.weight_scale`] = l.wScales;
      if (l.bias) out[`${n.name}.bias`] = l.bias;
    }
    return out;
  }

  /** The model as safetensors bytes (int8 weights; the graph and activation quantization as metadata). */
  serialize(): Uint8Array {
    this.#check();
    return encodeSafetensors(this.tensors(), { format: FORMAT, graph: JSON.stringify(this.graph) });
  }

  /** Rebuilds a model from `serialize()`'s bytes; FormatError when they are not one. */
  static deserialize(bytes: Uint8Array | ArrayBuffer): QuantizedModel {
    const buf = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
    // Header, graph and tensor list are checked before any tensor exists.
    const parsed = parseSafetensorsHeader(buf);
    const { metadata } = parsed;
    if (metadata.format !== FORMAT) throw new FormatError(`not an edgegrad quantized model (format ${JSON.stringify(String(metadata.format).slice(0, 40))}, expected '${FORMAT}')`);
    if (typeof metadata.graph !== 'string') throw new FormatError('quantized model: the file has no graph metadata');
    const graph = checkQuantizedGraph(metadata.graph, parsed.entries);
    const tensors: Record<string, Tensor> = Object.create(null);
    try {
      for (const name of Object.keys(parsed.entries)) tensors[name] = decodeTensor(buf, parsed, name);
      return new QuantizedModel(graph, tensors);
    } catch (e) {
      for (const t of Object.values(tensors)) t.dispose();
      throw e;
    }
  }

  /** Size of the serialized model in bytes. */
  byteSize(): number {
    return this.serialize().length;
  }

  /** Frees the int8 weights and constants; idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const l of this.#layers.values()) {
      for (const t of [l.wq, l.wScales, l.bias, l.packed, l.consts.offsets, l.consts.mult, l.consts.scales]) t?.dispose();
    }
    this.#layers.clear();
  }
  /** True once {@link QuantizedModel.dispose} ran. */
  get isDisposed(): boolean {
    return this.#disposed;
  }
}

/**
 * Saves a quantized model: Node writes `<dir>/model.int8.safetensors`; everywhere the bytes are
 * returned.
 */
export async function saveQuantizedModel(qm: QuantizedModel, dir?: string): Promise<Uint8Array> {
  if (!(qm instanceof QuantizedModel)) throw new ArgumentError(`saveQuantizedModel needs a QuantizedModel, got ${describe(qm)}`);
  if (dir !== undefined && typeof dir !== 'string') throw new ArgumentError(`saveQuantizedModel: dir must be a path string, got ${describe(dir)}`);
  const bytes = qm.serialize();
  if (dir !== undefined) {
    if (!isNode) throw new ArgumentError('saveQuantizedModel(model, dir) writes files in Node only; in browsers keep the returned bytes');
    const fs = (await import(/* @vite-ignore */ 'node:fs/promises' as string)) as typeof import('node:fs/promises');
    const path = (await import(/* @vite-ignore */ 'node:path' as string)) as typeof import('node:path');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'model.int8.safetensors'), bytes);
  }
  return bytes;
}

/**
 * Loads a quantized model from bytes, a URL, or (Node) a file or the directory `saveQuantizedModel`
 * wrote. Files are read only if regular and at most `maxBytes` (default 2 GiB).
 */
export async function loadQuantizedModel(src: Uint8Array | ArrayBuffer | string | URL, o: { maxBytes?: number } = {}): Promise<QuantizedModel> {
  o = checkOptions(o, 'loadQuantizedModel options');
  if (src instanceof Uint8Array || src instanceof ArrayBuffer) return QuantizedModel.deserialize(src);
  let url: URL;
  if (src instanceof URL) url = src;
  else if (typeof src !== 'string') throw new ArgumentError(`loadQuantizedModel takes bytes, a URL or a path, got ${describe(src)}`);
  else if (isNode && !/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) {
    const path = (await import(/* @vite-ignore */ 'node:path' as string)) as typeof import('node:path');
    const { pathToFileURL } = (await import(/* @vite-ignore */ 'node:url' as string)) as typeof import('node:url');
    const st = await statPath(src, 'quantized model');
    url = pathToFileURL(st.isDirectory() ? path.join(src, 'model.int8.safetensors') : path.resolve(src));
  } else {
    try {
      url = new URL(src, isNode ? undefined : globalThis.location?.href);
    } catch {
      throw new FormatError(`no quantized model at ${src.slice(0, 200)}: not a valid URL`);
    }
  }
  return QuantizedModel.deserialize(await readBytes(url, { maxBytes: o.maxBytes, what: 'quantized model' }));
}
