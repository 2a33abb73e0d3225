/**
 * eg.onnx export parity: every exportable layer family, exported and run in ONNX Runtime
 * (onnxruntime-node in Node, onnxruntime-web in Chromium), matches our forward within 1e-5 (max
 * abs error, float32); the exported bytes pass a structural check, import back to a module whose
 * forward equals ours within 1e-5, and export again byte-identical.
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
const TOL = 1e-5;

interface Case {
  name: string;
  make: () => eg.nn.Module;
  shape: number[];
  dtype?: 'float32' | 'int32';
  opset?: number;
}

const CASES: Case[] = [
  { name: 'MLP (Gemm, Relu, Softmax)', shape: [4, 6], make: () => new nn.Sequential(new nn.Linear(6, 8, { seed: 1 }), new nn.ReLU(), new nn.Linear(8, 3, { seed: 2 }), new nn.Softmax()) },
  {
    name: 'activations', shape: [3, 6],
    make: () => new nn.Sequential(new nn.Linear(6, 8, { seed: 1, activation: 'relu' }), new nn.LeakyReLU(0.2), new nn.ELU(0.7), new nn.Sigmoid(), new nn.Tanh(),
      new nn.Linear(8, 8, { seed: 2 }), new nn.GELU(), new nn.GELU(true), new nn.SiLU(), new nn.Softplus(), new nn.LogSoftmax()),
  },
  {
    name: 'activations at opset 20 (Gelu op)', shape: [3, 6], opset: 20,
    make: () => new nn.Sequential(new nn.Linear(6, 8, { seed: 3 }), new nn.GELU(), new nn.GELU(true)),
  },
  {
    name: 'CNN (Conv, BatchNorm, pools, Flatten, Dropout)', shape: [2, 9, 9, 3],
    make: () => new nn.Sequential(new nn.Conv2d(3, 4, 3, { seed: 1, padding: 'same' }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(4, 6, 3, { seed: 2, stride: 2, padding: 1, groups: 2, activation: 'relu' }), new nn.AvgPool2d(2, { padding: 1 }), new nn.Flatten(),
      new nn.Dropout(0.3), new nn.Linear(24, 5, { seed: 3 })),
  },
  {
    name: 'norms and global pooling (GroupNorm, dilated conv, BatchNorm1d, LayerNorm)', shape: [2, 8, 8, 3], opset: 18,
    make: () => new nn.Sequential(new nn.Conv2d(3, 4, 3, { seed: 1, dilation: 2 }), new nn.GroupNorm(2, 4), new nn.ReLU(),
      new nn.AvgPool2d(3, { stride: 1, padding: 'same', countIncludePad: false }), new nn.GlobalAvgPool2d(), new nn.BatchNorm1d(4), new nn.LayerNorm(4)),
  },
  { name: 'Embedding (Gather)', shape: [2, 5], dtype: 'int32', make: () => new nn.Sequential(new nn.Embedding(10, 4, { seed: 1 }), new nn.LayerNorm(4), new nn.Linear(4, 2, { seed: 2 })) },
  { name: 'LSTM, 2 layers, bidirectional', shape: [2, 4, 3], make: () => new nn.LSTM(3, 5, { seed: 1, numLayers: 2, bidirectional: true }) },
  { name: 'LSTM, last state', shape: [2, 4, 3], make: () => new nn.LSTM(3, 5, { seed: 2, returnSequences: false }) },
  { name: 'GRU, bidirectional', shape: [2, 4, 3], make: () => new nn.GRU(3, 5, { seed: 1, bidirectional: true }) },
  { name: 'GRU, reset before, reversed', shape: [2, 4, 3], make: () => new nn.GRU(3, 5, { seed: 2, resetAfter: false, reverse: true }) },
  { name: 'Bidirectional GRU (concat) and LSTM (ave, last states)', shape: [2, 4, 3], make: () => new nn.Sequential(new nn.Bidirectional(new nn.GRU(3, 4, { seed: 1 })), new nn.Bidirectional(new nn.LSTM(8, 3, { seed: 2, returnSequences: false }), { mergeMode: 'ave' })) },
  { name: 'SimpleRNN relu, 2 layers, no bias', shape: [2, 4, 3], make: () => new nn.SimpleRNN(3, 5, { seed: 1, nonlinearity: 'relu', numLayers: 2, bias: false }) },
  { name: 'MultiHeadAttention', shape: [2, 5, 8], make: () => new nn.MultiHeadAttention(8, 2, { seed: 1 }) },
  {
    name: 'text encoder (Embedding, positional tables, TransformerEncoderLayer, Linear)', shape: [2, 6], dtype: 'int32',
    make: () => new nn.Sequential(new nn.Embedding(10, 8, { seed: 1 }), new nn.SinusoidalPositionalEncoding(8, 16), new nn.LearnedPositionalEmbedding(16, 8, { seed: 2 }),
      new nn.TransformerEncoderLayer(8, 2, { seed: 3, dimFeedforward: 16, normFirst: true }), new nn.Linear(8, 3, { seed: 4 })),
  },
  { name: 'TransformerEncoderLayer (post-LN, relu)', shape: [2, 5, 8], make: () => new nn.TransformerEncoderLayer(8, 2, { seed: 1, dimFeedforward: 16 }) },
  {
    name: 'TransformerEncoder (pre-LN, gelu, final norm)', shape: [2, 5, 8],
    make: () => new nn.TransformerEncoder([new nn.TransformerEncoderLayer(8, 2, { seed: 1, normFirst: true, activation: 'gelu', dimFeedforward: 12 }),
      new nn.TransformerEncoderLayer(8, 2, { seed: 2, normFirst: true, dimFeedforward: 12 })], new nn.LayerNorm(8)),
  },
];

/** Non-trivial BatchNorm statistics, so the exported running mean/var matter. */
function warmBatchNorms(m: eg.nn.Module, shape: number[], dtype: 'float32' | 'int32'): void {
  if (![...m.namedModules()].some(([, c]) => c instanceof nn.BatchNorm)) return;
  m.train();
  const x = dtype === 'int32' ? eg.randint(shape, 0, 10, { seed: 9 }) : eg.randn(shape, 0.5, 2, { seed: 9 });
  eg.tidy(() => eg.noGrad(() => m.forward(x))).dispose(); // tidy: training-mode Dropout makes temporaries
  x.dispose();
}

describe('eg.onnx.exportModel runs in ONNX Runtime', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const dtype = c.dtype ?? 'float32';
      const model = c.make();
      warmBatchNorms(model, c.shape, dtype);
      model.eval();
      const bytes = eg.onnx.exportModel(model, { inputShapes: [c.shape], inputDType: dtype, opset: c.opset, docString: c.name });
      const proto = checkStructure(bytes);
      expect(proto.docString).toBe(c.name);
      expect(proto.opsetImport).toEqual([{ domain: '', version: c.opset ?? 17 }]);
      // A different batch size than the exported shape: the batch is symbolic.
      const shape = [c.shape[0] + 1, ...c.shape.slice(1)];
      const x = dtype === 'int32' ? eg.randint(shape, 0, 10, { seed: 3 }) : eg.randn(shape, 0, 1, { seed: 3 });
      const ours = eg.noGrad(() => model.forward(x));
      const ort = await runOrt(bytes, x);
      expect(ort.dims, 'output shape').toEqual(ours.shape);
      expect(maxAbsDiff(ours.dataSync(), ort.data), 'ONNX Runtime vs ours').toBeLessThanOrEqual(TOL);

      const back = eg.onnx.importModel(bytes);
      const y = eg.noGrad(() => back.forward(x));
      expect(y.shape).toEqual(ours.shape);
      expect(maxAbsDiff(ours.dataSync(), y.dataSync()), 'imported vs ours').toBeLessThanOrEqual(TOL);
      const again = eg.onnx.exportModel(back, { inputShapes: c.shape });
      expect(again.length, 'round trip length').toBe(bytes.length);
      expect(again.every((b, i) => b === bytes[i]), 'export → import → export is byte-identical').toBe(true);
      for (const t of [x, ours, y]) t.dispose();
      back.dispose();
      model.dispose();
    });
  }
});

describe('eg.onnx.exportModel graph details', () => {
  it('names nodes after module paths, documents them, declares value infos with a symbolic batch, and keeps NCHW between convolutions', () => {
    const model = new nn.Sequential(new nn.Conv2d(1, 2, 3, { seed: 1 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Conv2d(2, 2, 1, { seed: 2 }), new nn.Flatten(), new nn.Linear(18, 2, { seed: 3 }));
    const bytes = eg.onnx.exportModel(model, { inputShapes: [1, 8, 8, 1], names: { input: 'image', output: 'logits' }, graphName: 'tiny', dynamicBatch: false });
    const m = checkStructure(bytes);
    const g = m.graph;
    expect(g.name).toBe('tiny');
    expect(g.input.map((v) => v.name)).toEqual(['image']);
    expect(g.output.map((v) => v.name)).toEqual(['logits']);
    expect(g.output[0].type?.tensorType?.shape?.dim).toEqual([{ dimValue: 1 }, { dimValue: 2 }]);
    // One Transpose into NCHW before the first conv, one back before Flatten: not one pair per layer.
    expect(g.node.filter((n) => n.opType === 'Transpose').length).toBe(2);
    expect(g.node.map((n) => n.opType)).toEqual(['Transpose', 'Conv', 'Relu', 'MaxPool', 'Conv', 'Transpose', 'Flatten', 'Gemm']);
    const conv = g.node.find((n) => n.opType === 'Conv')!;
    expect(conv.name).toBe('/0/Conv');
    expect(conv.docString).toBe('Conv2d 0');
    expect(g.initializer.map((t) => t.name)).toContain('0.weight');
    expect(g.initializer.find((t) => t.name === '0.weight')!.dims).toEqual([2, 1, 3, 3]); // OIHW
    const pool = g.valueInfo!.find((v) => v.name === g.node[3].output[0])!;
    expect(pool.type?.tensorType?.shape?.dim).toEqual([{ dimValue: 1 }, { dimValue: 2 }, { dimValue: 3 }, { dimValue: 3 }]); // NCHW
    model.dispose();
  });

  it('exports a key padding mask input that every attention layer uses (masked keys get weight 0)', async () => {
    const model = new nn.TransformerEncoder([new nn.TransformerEncoderLayer(8, 2, { seed: 1, dimFeedforward: 12 }), new nn.TransformerEncoderLayer(8, 2, { seed: 2, dimFeedforward: 12, normFirst: true })]);
    model.eval();
    const bytes = eg.onnx.exportModel(model, { inputShapes: [2, 5, 8], keyMask: true, names: { keyMask: 'attention_mask' } });
    const proto = checkStructure(bytes);
    expect(proto.graph.input.map((v) => v.name)).toEqual(['input', 'attention_mask']);
    const x = eg.randn([3, 5, 8], 0, 1, { seed: 4 });
    const keyMask = eg.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], [3, 5], 'int32');
    const ours = eg.noGrad(() => model.forward(x, { keyMask }));
    const ort = await runOrt(bytes, x, 'input', { attention_mask: keyMask });
    expect(maxAbsDiff(ours.dataSync(), ort.data), 'ONNX Runtime vs ours, masked').toBeLessThanOrEqual(TOL);
    // The mask matters: without it the outputs are different.
    const unmasked = eg.noGrad(() => model.forward(x));
    expect(maxAbsDiff(unmasked.dataSync(), ort.data)).toBeGreaterThan(1e-3);
    const back = eg.onnx.importModel(bytes);
    const y = eg.noGrad(() => back.forward(x, keyMask));
    expect(maxAbsDiff(ours.dataSync(), y.dataSync()), 'imported vs ours, masked').toBeLessThanOrEqual(TOL);
    const lin = new nn.Linear(8, 8);
    expect(() => eg.onnx.exportModel(lin, { inputShapes: [2, 5, 8], keyMask: true })).toThrow(/takes no key mask/);
    for (const t of [x, keyMask, ours, unmasked, y]) t.dispose();
    for (const m of [model, back, lin]) m.dispose();
  });

  it('restores train mode after exporting', () => {
    const model = new nn.Sequential(new nn.Linear(2, 2, { seed: 1 }), new nn.Dropout(0.5));
    model.train();
    eg.onnx.exportModel(model, { inputShapes: [1, 2] });
    expect([...model.namedModules()].every(([, m]) => m.training)).toBe(true);
    model.dispose();
  });

  it('names every layer without an export in one ArgumentError, and checks its options', () => {
    class Custom extends nn.Module {
      forward(x: eg.Tensor) {
        return x.clone();
      }
    }
    const model = new nn.Sequential(new nn.Linear(2, 2), new Custom(), new nn.Conv2d(2, 2, 1), new Custom(), new nn.ModuleList([new nn.ReLU()]));
    expect(() => eg.onnx.exportModel(model, { inputShapes: [1, 2] })).toThrow(/no ONNX export for Custom, ModuleList \(exportable: Linear, /);
    const lin = new nn.Linear(2, 2);
    expect(() => eg.onnx.exportModel(lin, { inputShapes: [1, 2], opset: 12 })).toThrow(eg.ArgumentError);
    expect(() => eg.onnx.exportModel(lin, { inputShapes: [] })).toThrow(eg.ArgumentError);
    expect(() => eg.onnx.exportModel(lin, { inputShapes: [1, 2], names: { input: 'x', output: 'x' } })).toThrow(/must differ/);
    expect(() => eg.onnx.exportModel(lin, undefined as never)).toThrow(eg.ArgumentError);
    expect(() => eg.onnx.exportModel({} as never, { inputShapes: [1, 2] })).toThrow(eg.ArgumentError);
    const emb = new nn.Sequential(new nn.Embedding(5, 2), new nn.Linear(2, 2));
    expect(() => eg.onnx.exportModel(emb, { inputShapes: [1, 3] })).toThrow(/Embedding \(0\) takes int32 token ids/);
    expect(() => eg.onnx.exportModel(lin, { inputShapes: [1, 2], inputDType: 'int32' })).toThrow(/takes float32 input/);
    expect(() => eg.onnx.exportModel(lin, { inputShapes: [1, 2], dynamicBatch: 'yes' as never })).toThrow(eg.ArgumentError);
    emb.dispose();
    const bi = new nn.LSTM(2, 2, { bidirectional: true, reverse: true });
    expect(() => eg.onnx.exportModel(bi, { inputShapes: [1, 3, 2] })).toThrow(/swaps its directions/);
    for (const m of [model, lin, bi]) m.dispose();
  });

  it('refuses a model whose forward hooks (e.g. unmerged LoRA adapters) the graph would drop; merged it exports', () => {
    const model = new nn.Sequential(new nn.Linear(4, 3, { seed: 1 }), new nn.ReLU(), new nn.Linear(3, 2, { seed: 2 }));
    const h = model.children()[2].registerForwardHook((_m, _i, out) => (out as eg.Tensor).mul(2));
    expect(() => eg.onnx.exportModel(model, { inputShapes: [1, 4] })).toThrow(/forward hooks on 2 would be left out/);
    h.remove();
    const lora = eg.nn.lora.apply(model, { targets: ['0'], rank: 2 });
    expect(() => eg.onnx.exportModel(model, { inputShapes: [1, 4] })).toThrow(/handle\.merge\(\)/);
    lora.merge();
    expect(eg.onnx.exportModel(model, { inputShapes: [1, 4] }).length).toBeGreaterThan(0);
    lora.dispose();
    model.dispose();
  });

  it('leaves no tensor behind over 100 exports and 100 imported forwards', () => {
    const model = new nn.Sequential(new nn.Conv2d(1, 2, 3, { seed: 1 }), new nn.BatchNorm2d(2), new nn.ReLU(), new nn.Flatten(), new nn.Linear(8, 2, { seed: 2 }));
    model.eval();
    const x = eg.randn([2, 4, 4, 1], 0, 1, { seed: 1 });
    const bytes = eg.onnx.exportModel(model, { inputShapes: [2, 4, 4, 1] });
    const back = eg.onnx.importModel(bytes);
    const before = eg.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      eg.onnx.exportModel(model, { inputShapes: [2, 4, 4, 1] });
      eg.noGrad(() => back.forward(x)).dispose();
    }
    expect(eg.memory().numTensors).toBe(before);
    back.dispose();
    model.dispose();
    x.dispose();
  });
});
