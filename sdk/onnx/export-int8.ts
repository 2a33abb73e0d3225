/**
 * The int8 graph of `eg.compress.quantize` as ONNX, in default-domain operators only:
 *
 * - the float input → `QuantizeLinear` (the model's input scale and zero point; int8 activations);
 * - Conv2d → `QLinearConv` (int8 OIHW weights, per-output-channel scales, int32 bias quantized
 *   with `x_scale · w_scale`), its fused ReLU as `Clip` at the output zero point;
 * - Linear → `MatMulInteger` (int32 accumulators, exact) → `Cast` → `Mul` by `x_scale · w_scale`
 *   → `Add` bias (→ `Relu`) → `QuantizeLinear`; a last layer that writes float32 stops before
 *   the `QuantizeLinear`, as ours does (a last Conv2d runs as `DequantizeLinear` + float `Conv`);
 * - MaxPool on int8; average pooling, global pooling, add and concat as `DequantizeLinear` → float
 *   op → `QuantizeLinear` with the same parameters ours uses; an int8 graph output is dequantized.
 *
 * ONNX rounds requantization half to even in float arithmetic, our engine with a fixed-point
 * multiplier: an int8 activation may differ by one quantization step where a value falls within
 * rounding error of a half step (see tests/onnx-int8.test.ts for the measured agreement).
 */
import { ArgumentError } from '../errors.js';
import type { QuantizedModel } from '../compress/quantize.js';
import type { QParams } from '../compress/engine.js';
import { encodeModel, IR_VERSION } from './proto.js';
import { GraphBuilder, valueInfo, PRODUCER_VERSION, finishOutput, type Val } from './builder.js';

/** Options `exportQuantized` takes (the same names as `ExportOptions`). */
export interface QuantizedExportOptions {
  batchSize: number;
  opset: number;
  inputName: string;
  outputName: string;
  docString?: string;
  graphName?: string;
  dynamicBatch: boolean;
}

type Quad = [number, number, number, number];
type Layer = { op: 'linear' | 'conv'; in: number; out: number; name: string; relu: boolean; hasBias: boolean; kernel?: number[]; stride?: [number, number]; padding?: Quad; dilation?: [number, number]; groups?: number };

/** `data` (row-major, `shape`) with its axes permuted. */
function permute<A extends Int8Array | Float32Array>(data: A, shape: number[], perm: number[]): A {
  const out = new (data.constructor as new (n: number) => A)(data.length);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const outShape = perm.map((p) => shape[p]);
  const idx = new Array(shape.length).fill(0);
  for (let o = 0; o < data.length; o++) {
    let src = 0;
    for (let k = 0; k < perm.length; k++) src += idx[k] * strides[perm[k]];
    out[o] = data[src];
    for (let k = perm.length - 1; k >= 0; k--) {
      if (++idx[k] < outShape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

const onnxPads = (p: Quad): number[] => [p[0], p[2], p[1], p[3]];

/** Serialises a QuantizedModel (see the file comment for the operator mapping). */
export function exportQuantized(qm: QuantizedModel, o: QuantizedExportOptions): Uint8Array {
  if (qm.isDisposed) throw new ArgumentError('exportModel: this QuantizedModel was disposed');
  const graph = qm.graph;
  const tensors = qm.tensors();
  const g = new GraphBuilder(o.opset, o.dynamicBatch);
  g.unique(o.inputName);
  g.unique(o.outputName);
  const shapeOf = (v: number) => [o.batchSize, ...graph.shapes[v]];
  const scale = (q: QParams) => g.constant(q.scale);
  const zp = (q: QParams, scope: string) => g.init(`${scope}.zero_point`, [], Int8Array.of(q.zeroPoint));
  const vals = new Map<number, Val>();
  const quantized = new Set<number>(); // values held as int8
  const q0 = qm.qOf(0);
  vals.set(0, { name: g.op('input', 'QuantizeLinear', [o.inputName, scale(q0), zp(q0, 'input')]), shape: shapeOf(0) });
  quantized.add(0);
  const dq = (v: number, scope: string, layout: 'nchw' | 'nhwc' | 'any' = 'any'): Val => {
    let x = vals.get(v)!;
    if (layout === 'nchw') x = g.nchw(x, scope);
    if (layout === 'nhwc') x = g.nhwc(x, scope);
    const q = qm.qOf(v);
    return { ...x, name: g.op(scope, 'DequantizeLinear', [x.name, scale(q), zp(q, scope)]) };
  };
  const requant = (x: Val, v: number, scope: string): Val => {
    const q = qm.qOf(v);
    return { ...x, name: g.op(scope, 'QuantizeLinear', [x.name, scale(q), zp(q, scope)]) };
  };
  for (const n of graph.nodes) {
    const scope = 'name' in n ? (n as Layer).name : `${n.op}_${n.out}`;
    const floatOut = n.out === graph.output && (n.op === 'linear' || n.op === 'conv');
    let y: Val;
    switch (n.op) {
      case 'linear': {
        const l = n as Layer;
        const x = g.nhwc(vals.get(l.in)!, scope);
        const wq = tensors[`${l.name}.weight`].dataSync() as Int8Array;
        const [out, inF] = tensors[`${l.name}.weight`].shape;
        const ws = tensors[`${l.name}.weight_scale`].dataSync() as Float32Array;
        const qx = qm.qOf(l.in);
        const acc = g.op(scope, 'MatMulInteger', [x.name, g.init(`${scope}.weight_t`, [inF, out], permute(wq, [out, inF], [1, 0])), zp(qx, scope)], {}, `int8 Linear ${scope}`);
        let f = g.op(scope, 'Mul', [g.op(scope, 'Cast', [acc], { to: 1 }), g.init(`${scope}.scale`, [out], ws.map((s) => qx.scale * s))]);
        if (l.hasBias) f = g.op(scope, 'Add', [f, g.init(`${scope}.bias`, [out], tensors[`${l.name}.bias`].dataSync() as Float32Array)]);
        if (l.relu) f = g.op(scope, 'Relu', [f]);
        y = { name: f, shape: shapeOf(l.out) };
        if (!floatOut) y = requant(y, l.out, scope);
        break;
      }
      case 'conv': {
        const l = n as Layer & { kernel: number[]; stride: [number, number]; padding: Quad; dilation: [number, number]; groups: number };
        const w = tensors[`${l.name}.weight`];
        const [kh, kw, cin, cout] = w.shape;
        const oihw = permute(w.dataSync() as Int8Array, w.shape, [3, 2, 0, 1]);
        const ws = tensors[`${l.name}.weight_scale`].dataSync() as Float32Array;
        const bias = l.hasBias ? (tensors[`${l.name}.bias`].dataSync() as Float32Array) : new Float32Array(cout);
        const attrs = { kernel_shape: [kh, kw], strides: l.stride, pads: onnxPads(l.padding), dilations: l.dilation, group: l.groups };
        const qx = qm.qOf(l.in);
        if (floatOut) {
          const x = dq(l.in, scope, 'nchw');
          const wf = Float32Array.from(oihw, (v, i) => v * ws[Math.floor(i / (cin * kh * kw))]);
          let f = g.op(scope, 'Conv', [x.name, g.init(`${scope}.weight`, [cout, cin, kh, kw], wf), g.init(`${scope}.bias`, [cout], bias)], attrs, `int8 Conv2d ${scope} (float output)`);
          if (l.relu) f = g.op(scope, 'Relu', [f]);
          y = { name: f, shape: shapeOf(l.out), nchw: true };
          break;
        }
        const x = g.nchw(vals.get(l.in)!, scope);
        const qy = qm.qOf(l.out);
        const b32 = Int32Array.from(bias, (b, c) => Math.round(b / (qx.scale * ws[c])));
        const ins = [x.name, scale(qx), zp(qx, scope), g.init(`${scope}.weight`, [cout, cin, kh, kw], oihw), g.init(`${scope}.weight_scale`, [cout], ws),
          g.init(`${scope}.weight_zero_point`, [cout], new Int8Array(cout)), scale(qy), zp(qy, scope), g.init(`${scope}.bias`, [cout], b32)];
        let c = g.op(scope, 'QLinearConv', ins, attrs, `int8 Conv2d ${scope}`);
        if (l.relu) c = g.op(scope, 'Clip', [c, zp(qy, scope)]);
        y = { name: c, shape: shapeOf(l.out), nchw: true };
        break;
      }
      case 'maxpool': {
        const x = g.nchw(vals.get(n.in)!, scope);
        y = { name: g.op(scope, 'MaxPool', [x.name], { kernel_shape: n.kernel, strides: n.stride, pads: onnxPads(n.padding) }), shape: shapeOf(n.out), nchw: true };
        break;
      }
      case 'avgpool': {
        const x = dq(n.in, scope, 'nchw');
        const p = g.op(scope, 'AveragePool', [x.name], { kernel_shape: n.kernel, strides: n.stride, pads: onnxPads(n.padding), count_include_pad: n.countIncludePad ? 1 : 0 });
        y = requant({ name: p, shape: shapeOf(n.out), nchw: true }, n.out, scope);
        break;
      }
      case 'gap': {
        const x = dq(n.in, scope);
        const m = g.reduceMean(scope, x.name, x.nchw ? [2, 3] : [1, 2], false);
        y = requant({ name: m, shape: shapeOf(n.out) }, n.out, scope);
        break;
      }
      case 'flatten': {
        const x = g.nhwc(vals.get(n.in)!, scope);
        y = { name: g.op(scope, 'Flatten', [x.name], { axis: 1 }), shape: shapeOf(n.out) };
        break;
      }
      case 'relu': {
        const x = vals.get(n.in)!;
        y = { ...x, name: g.op(scope, 'Clip', [x.name, zp(qm.qOf(n.in), scope)]) };
        break;
      }
      case 'add':
      case 'concat': {
        const xs = n.ins.map((v) => dq(v, scope, 'nhwc').name);
        let f = n.op === 'add' ? g.op(scope, 'Add', xs) : g.op(scope, 'Concat', xs, { axis: -1 });
        if (n.relu) f = g.op(scope, 'Relu', [f]);
        y = requant({ name: f, shape: shapeOf(n.out) }, n.out, scope);
        break;
      }
    }
    vals.set(n.out, y);
    if (!floatOut) quantized.add(n.out);
  }
  let out = vals.get(graph.output)!;
  if (quantized.has(graph.output)) out = { ...out, name: dq(graph.output, 'output').name };
  out = g.nhwc(out, 'output');
  finishOutput(g, out.name, o.outputName);
  return encodeModel({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: o.opset }],
    producerName: 'edgegrad',
    producerVersion: PRODUCER_VERSION,
    docString: o.docString ?? 'int8 QuantizedModel exported by edgegrad',
    graph: {
      name: o.graphName ?? 'QuantizedModel',
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(o.inputName, shapeOf(0), 'float32', o.dynamicBatch)],
      output: [valueInfo(o.outputName, out.shape, 'float32', o.dynamicBatch)],
    },
  });
}
