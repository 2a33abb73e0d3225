/**
 * eg.onnx.exportModel of eg.compress's int8 QuantizedModel (QuantizeLinear, QLinearConv,
 * MatMulInteger, DequantizeLinear...) runs in ONNX Runtime (onnxruntime-node in Node,
 * onnxruntime-web in Chromium). ONNX requantizes with float multiplies rounded half to even,
 * our engine with fixed-point multipliers, so an int8 activation may land one quantization step
 * apart: a graph ending in int8 must agree within one step of its output scale, and one ending
 * in the float32 last layer within one step of that layer's input scale times the largest L1
 * norm of its weight rows (the most one step in every input can move an output). The same bound
 * holds for the imported graph (eg.onnx.importModel) against ONNX Runtime, and the round trip
 * export → import → export is byte-identical.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup } from './helpers.js';
import { checkStructure, maxAbsDiff, runOrt } from './onnx-fixtures.js';

beforeAll(async () => {
  await setup();
});
expectEachTestFreesItsTensors();

const nn = eg.nn;

interface Case {
  name: string;
  make: () => eg.nn.Module;
  shape: number[];
  ops: string[];
}

const CASES: Case[] = [
  { name: 'MLP (MatMulInteger, float last layer)', shape: [8, 6], ops: ['QuantizeLinear', 'MatMulInteger'], make: () => new nn.Sequential(new nn.Linear(6, 16, { seed: 1 }), new nn.ReLU(), new nn.Linear(16, 3, { seed: 2 })) },
  {
    name: 'CNN (QLinearConv, MaxPool, AveragePool, Flatten, Linear)', shape: [4, 8, 8, 1], ops: ['QLinearConv', 'MaxPool', 'AveragePool', 'DequantizeLinear'],
    make: () => new nn.Sequential(new nn.Conv2d(1, 8, 3, { seed: 1, padding: 1 }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(8, 8, 3, { seed: 2, padding: 'same' }), new nn.ReLU(), new nn.AvgPool2d(2), new nn.Flatten(), new nn.Linear(32, 10, { seed: 3 })),
  },
  { name: 'CNN with global pooling and a ReLU after the last layer', shape: [4, 6, 6, 2], ops: ['QLinearConv', 'ReduceMean'], make: () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { seed: 1 }), new nn.ReLU(), new nn.GlobalAvgPool2d(), new nn.Linear(4, 3, { seed: 3 }), new nn.ReLU()) },
  { name: 'CNN ending in a float Conv2d', shape: [4, 7, 7, 2], ops: ['QLinearConv', 'Conv'], make: () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { seed: 1 }), new nn.ReLU(), new nn.Conv2d(4, 3, 3, { seed: 2, stride: 2 })) },
  { name: 'CNN ending in int8 (pooled) activations', shape: [4, 7, 7, 2], ops: ['QLinearConv', 'Clip', 'MaxPool', 'DequantizeLinear'], make: () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { seed: 1 }), new nn.ReLU(), new nn.MaxPool2d(2)) },
];

/** Largest L1 norm of an output's weights in the last layer (0 when the graph ends in int8). */
function lastRowL1(qm: eg.compress.QuantizedModel): number {
  const last = qm.summary().at(-1)!;
  if (last.output !== 'float32') return 0;
  const t = qm.tensors();
  const w = t[`${last.name}.weight`].dataSync() as Int8Array;
  const s = t[`${last.name}.weight_scale`].dataSync() as Float32Array;
  const out = s.length;
  const rows = new Float64Array(out);
  // Linear [out, in] or conv HWIO [.., out]: output channel = row for linear, last axis for conv.
  const linear = t[`${last.name}.weight`].rank === 2;
  const per = w.length / out;
  for (let i = 0; i < w.length; i++) {
    const o = linear ? Math.floor(i / per) : i % out;
    rows[o] += Math.abs(w[i]) * s[o];
  }
  return Math.max(...rows);
}

describe('int8 QuantizedModel → ONNX runs in ONNX Runtime', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const model = c.make();
      const calib = eg.randn([64, ...c.shape.slice(1)], 0, 1, { seed: 5 });
      const qm = eg.compress.quantize(model, calib);
      const bytes = eg.onnx.exportModel(qm, { inputShapes: c.shape });
      const proto = checkStructure(bytes);
      const ops = new Set(proto.graph.node.map((n) => n.opType));
      for (const op of c.ops) expect(ops.has(op), `uses ${op}`).toBe(true);
      expect(proto.graph.node.every((n) => !n.domain), 'default-domain operators only').toBe(true);
      const x = eg.randn([c.shape[0] + 2, ...c.shape.slice(1)], 0, 1, { seed: 3 });
      const ours = qm.forward(x);
      const ort = await runOrt(bytes, x);
      expect(ort.dims).toEqual(ours.shape);
      const err = maxAbsDiff(ours.dataSync(), ort.data);
      const last = qm.summary().at(-1)!;
      const bound = last.output === 'float32' ? last.input.scale * lastRowL1(qm) : qm.qOf(qm.graph.output).scale;
      expect(err, `max error ${err} vs one quantization step ${bound}`).toBeLessThanOrEqual(bound * (1 + 1e-6));
      // importModel runs the int8 graph too (ONNX Runtime's requantization arithmetic, on the host)
      // and writes it back byte for byte.
      const back = eg.onnx.importModel(bytes);
      const y = eg.noGrad(() => back.forward(x));
      expect(maxAbsDiff(y.dataSync(), ort.data), 'imported int8 graph vs ONNX Runtime').toBeLessThanOrEqual(bound * (1 + 1e-6));
      const again = eg.onnx.exportModel(back, { inputShapes: c.shape });
      expect(again.length === bytes.length && again.every((b, i) => b === bytes[i]), 'export → import → export is byte-identical').toBe(true);
      y.dispose();
      back.dispose();
      for (const t of [calib, x, ours]) t.dispose();
      qm.dispose();
      model.dispose();
    });
  }

  it('checks the input shape against the quantized model', () => {
    const model = new nn.Sequential(new nn.Linear(3, 2, { seed: 1 }));
    const calib = eg.randn([8, 3], 0, 1, { seed: 1 });
    const qm = eg.compress.quantize(model, calib);
    expect(() => eg.onnx.exportModel(qm, { inputShapes: [1, 4] })).toThrow(/takes float32 inputs \[N, 3\]/);
    qm.dispose();
    expect(() => eg.onnx.exportModel(qm, { inputShapes: [1, 3] })).toThrow(/disposed/);
    calib.dispose();
    model.dispose();
  });
});
