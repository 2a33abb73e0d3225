/**
 * eg.onnx.importModel on graphs edgegrad did not write (built here with the protobuf library:
 * Constant/int64 shapes, Gemm alpha/beta/transA, asymmetric pads, LSTM with an initial state...)
 * against ONNX Runtime; unsupported operators named all at once; hostile, truncated and mutated
 * bytes rejected with FormatError (never a trap, a hang or a raw error); imported graphs train.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup, vals } from './helpers.js';
import { maxAbsDiff, runOrt } from './onnx-fixtures.js';
import { AttrType, encodeModel, tensorProto, type AttributeProto, type NodeProto, type TensorProto } from '../sdk/onnx/proto.js';

beforeAll(async () => {
  await setup();
});
expectEachTestFreesItsTensors();

const f32 = (name: string, dims: number[], seed: number) => tensorProto(name, dims, vals(dims.reduce((a, b) => a * b, 1), seed));
const i64 = (name: string, v: number[]) => tensorProto(name, [v.length], BigInt64Array.from(v.map(BigInt)));
const ints = (name: string, v: number[]): AttributeProto => ({ name, type: AttrType.INTS, ints: v });
const int = (name: string, v: number): AttributeProto => ({ name, type: AttrType.INT, i: v });
const float = (name: string, v: number): AttributeProto => ({ name, type: AttrType.FLOAT, f: v });
const str = (name: string, v: string): AttributeProto => ({ name, type: AttrType.STRING, s: new TextEncoder().encode(v) });
const node = (opType: string, input: string[], output: string[], attribute: AttributeProto[] = []): NodeProto => ({ opType, input, output, attribute, name: output[0] });
const vi = (name: string, shape: (number | string)[]) => ({
  name, type: { tensorType: { elemType: 1, shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});

function model(nodes: NodeProto[], inits: TensorProto[], inShape: (number | string)[], outShape: (number | string)[], opset = 17): Uint8Array {
  return encodeModel({
    irVersion: 8, opsetImport: [{ domain: '', version: opset }], producerName: 'test',
    graph: { name: 'g', node: nodes, initializer: inits, input: [vi('input', inShape)], output: [vi('output', outShape)] },
  });
}

async function expectMatchesOrt(bytes: Uint8Array, shape: number[], seed = 1): Promise<number> {
  const x = eg.tensor(vals(shape.reduce((a, b) => a * b, 1), seed), shape);
  const m = eg.onnx.importModel(bytes);
  const y = eg.noGrad(() => m.forward(x));
  const ref = await runOrt(bytes, x);
  expect(y.shape).toEqual(ref.dims);
  const err = maxAbsDiff(y.dataSync(), ref.data);
  y.dispose();
  x.dispose();
  m.dispose();
  expect(err, 'imported vs ONNX Runtime').toBeLessThanOrEqual(1e-5);
  return err;
}

describe('importModel runs graphs from other writers like ONNX Runtime does', () => {
  it('Constant shapes, Reshape, Transpose, Gemm (alpha, beta, transA), Concat, arithmetic', async () => {
    const bytes = model([
      node('Constant', [], ['shape'], [{ name: 'value', type: AttrType.TENSOR, t: i64('', [4, 3]) }]),
      node('Reshape', ['input', 'shape'], ['r']),
      node('Transpose', ['r'], ['rt']), // default: reverse the axes
      node('Gemm', ['rt', 'w', 'c'], ['g'], [int('transA', 1), float('alpha', 0.5), float('beta', 2)]),
      node('Sqrt', ['sq'], ['s']),
      node('Mul', ['g', 's'], ['gm']),
      node('Exp', ['gm'], ['e']),
      node('Sub', ['e', 'c'], ['d']),
      node('Concat', ['d', 'gm'], ['cat'], [int('axis', 1)]),
      node('Softmax', ['cat'], ['output'], [int('axis', 0)]),
    ], [f32('w', [3, 5], 2), f32('c', [5], 3), tensorProto('sq', [], new Float32Array([2.25]))], [2, 6], [4, 10]);
    await expectMatchesOrt(bytes, [2, 6]);
  });

  it('Conv with asymmetric pads and groups, MaxPool, AveragePool, BatchNormalization, GlobalAveragePool, Flatten', async () => {
    const bytes = model([
      node('Conv', ['input', 'w', 'b'], ['c'], [ints('pads', [1, 0, 2, 1]), ints('strides', [1, 2]), int('group', 2), ints('kernel_shape', [3, 2])]),
      node('BatchNormalization', ['c', 'scale', 'bias', 'mean', 'var'], ['bn'], [float('epsilon', 1e-3)]),
      node('LeakyRelu', ['bn'], ['lr']),
      node('MaxPool', ['lr'], ['mp'], [ints('kernel_shape', [2, 2]), ints('pads', [0, 0, 1, 1])]),
      node('AveragePool', ['mp'], ['ap'], [ints('kernel_shape', [2, 2]), ints('strides', [1, 1]), ints('pads', [1, 1, 0, 0]), int('count_include_pad', 0)]),
      node('GlobalAveragePool', ['ap'], ['gap']),
      node('Flatten', ['gap'], ['output']),
    ], [f32('w', [4, 1, 3, 2], 4), f32('b', [4], 5), f32('scale', [4], 6), f32('bias', [4], 7), f32('mean', [4], 8),
      tensorProto('var', [4], Float32Array.from([0.5, 1, 2, 3]))], ['N', 2, 7, 8], ['N', 4]);
    await expectMatchesOrt(bytes, [3, 2, 7, 8]);
  });

  it('LSTM with an initial state, then ReduceMean (opset 18 axes input) and LayerNormalization', async () => {
    const H = 3;
    const bytes = model([
      node('LSTM', ['input', 'W', 'R', 'B', '', 'h0'], ['y', 'yh'], [int('hidden_size', H), str('direction', 'bidirectional')]),
      node('ReduceMean', ['y', 'axes'], ['m'], [int('keepdims', 0)]),
      node('LayerNormalization', ['m', 'ln_w', 'ln_b'], ['output'], [int('axis', -1), float('epsilon', 1e-4)]),
    ], [f32('W', [2, 4 * H, 2], 1), f32('R', [2, 4 * H, H], 2), f32('B', [2, 8 * H], 3), f32('h0', [2, 2, H], 4), i64('axes', [1]),
      f32('ln_w', [H], 5), f32('ln_b', [H], 6)], [5, 2, 2], [5, 2, H], 18);
    await expectMatchesOrt(bytes, [5, 2, 2]);
  });
});

describe('importModel refuses what it cannot run', () => {
  it('names every unsupported operator in one ArgumentError', () => {
    const bytes = model([node('Foo', ['input'], ['a']), node('Relu', ['a'], ['b']), node('Bar', ['b'], ['c']),
      { ...node('QLinearAdd', ['c'], ['output']), domain: 'com.microsoft' }], [], [1], [1]);
    expect(() => eg.onnx.importModel(bytes)).toThrow(eg.ArgumentError);
    expect(() => eg.onnx.importModel(bytes)).toThrow(/unsupported operators: Foo, Bar, com\.microsoft\.QLinearAdd/);
  });

  it('checks the opset, node order and initializer data', () => {
    const relu = [node('Relu', ['input'], ['output'])];
    expect(() => eg.onnx.importModel(model(relu, [], [1], [1], 9))).toThrow(/opset 9 is not supported/);
    expect(() => eg.onnx.importModel(model([node('Relu', ['later'], ['output']), node('Relu', ['input'], ['later'])], [], [1], [1]))).toThrow(eg.FormatError);
    const short = { ...f32('w', [2, 2], 1), dims: [3, 2] };
    expect(() => eg.onnx.importModel(model([node('Add', ['input', 'w'], ['output'])], [short], [2], [2]))).toThrow(/raw data has 16 bytes/);
    const negative = { ...f32('w', [2, 2], 1), dims: [-1, -4] };
    expect(() => eg.onnx.importModel(model([node('Add', ['input', 'w'], ['output'])], [negative], [2], [2]))).toThrow(eg.FormatError);
    const huge = { ...f32('w', [2, 2], 1), dims: [1 << 20, 1 << 20] };
    expect(() => eg.onnx.importModel(model([node('Add', ['input', 'w'], ['output'])], [huge], [2], [2]))).toThrow(/over the limit/);
    expect(() => eg.onnx.importModel(model(relu, [], [1], [1]), { maxBytes: 10 })).toThrow(/over the limit of 10/);
    expect(() => eg.onnx.importModel('abc' as never)).toThrow(eg.ArgumentError);
    expect(() => eg.onnx.importModel(model(relu, [], [1], [1]), { maxBytes: -1 })).toThrow(eg.ArgumentError);
  });

  it('turns empty, random, truncated and mutated bytes into FormatError (or a typed error), never anything else', () => {
    expect(() => eg.onnx.importModel(new Uint8Array(0))).toThrow(eg.FormatError);
    expect(() => eg.onnx.importModel(Uint8Array.of(0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f))).toThrow(eg.FormatError); // graph length past the end
    expect(() => eg.onnx.importModel(Uint8Array.of(0x08, 0x08))).toThrow(/no graph/);
    // Deep nesting (graph attribute inside graph attribute ...) exhausts no stack silently.
    let deep = new Uint8Array(0);
    for (let i = 0; i < 3000; i++) deep = Uint8Array.of(0x32, ...varint(deep.length), ...deep).slice(); // AttributeProto.g / GraphProto.node ...
    expect(() => eg.onnx.importModel(Uint8Array.of(0x3a, ...varint(deep.length), ...deep))).toThrow(eg.EdgegradError);

    const mlp = new eg.nn.Sequential(new eg.nn.Linear(3, 4, { seed: 1 }), new eg.nn.ReLU(), new eg.nn.Linear(4, 2, { seed: 2 }));
    const good = eg.onnx.exportModel(mlp, { inputShapes: [1, 3] });
    mlp.dispose();
    const x = eg.ones([1, 3]);
    let rng = 12345;
    const next = () => (rng = (rng * 1103515245 + 12345) >>> 0);
    const outcomes = { ok: 0, rejected: 0 };
    const attempt = (bytes: Uint8Array) => {
      try {
        const m = eg.onnx.importModel(bytes);
        try {
          eg.noGrad(() => m.forward(x)).dispose();
          outcomes.ok++;
        } finally {
          m.dispose();
        }
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(eg.EdgegradError);
        outcomes.rejected++;
      }
    };
    for (let cut = 0; cut < good.length; cut += 7) attempt(good.slice(0, cut));
    for (let i = 0; i < 300; i++) {
      const b = good.slice();
      for (let k = 0; k < 1 + (i % 3); k++) b[next() % b.length] = next() & 0xff;
      attempt(b);
    }
    for (let i = 0; i < 50; i++) attempt(Uint8Array.from({ length: 1 + (next() % 200) }, () => next() & 0xff));
    expect(outcomes.rejected).toBeGreaterThan(50);
    x.dispose();
  });

  it('takes exactly its graph inputs', () => {
    const bytes = model([node('Relu', ['input'], ['output'])], [], [2], [2]);
    const m = eg.onnx.importModel(bytes);
    expect(m.inputNames).toEqual(['input']);
    const x = eg.ones([2]);
    expect(() => m.run()).toThrow(/takes 1 input/);
    expect(() => m.forward('x' as never)).toThrow(eg.ArgumentError);
    expect(() => m.getConfig()).toThrow(eg.ArgumentError);
    expect(() => m.toBytes({ opset: 18 })).toThrow(/own opset/);
    // An output that is the input itself comes back as a copy the caller owns.
    const id = eg.onnx.importModel(model([node('Identity', ['input'], ['output'])], [], [2], [2]));
    const y = id.forward(x);
    expect(y).not.toBe(x);
    y.dispose();
    x.dispose();
    m.dispose();
    id.dispose();
  });
});

describe('an imported graph is a Module', () => {
  it('trains: its float initializers are parameters with gradients, and export carries the new weights', async () => {
    const src = new eg.nn.Sequential(new eg.nn.Linear(3, 4, { seed: 1 }), new eg.nn.Tanh(), new eg.nn.Linear(4, 1, { seed: 2 }));
    const bytes = eg.onnx.exportModel(src, { inputShapes: [2, 3] });
    src.dispose();
    const m = eg.onnx.importModel(bytes);
    expect(Object.keys(m.stateDict()).sort()).toEqual(['0_bias', '0_weight', '2_bias', '2_weight']);
    const x = eg.tensor(vals(6, 1), [2, 3]);
    const opt = new eg.optim.SGD(m.parameters(), { lr: 0.1 });
    const loss = eg.tidy(() => m.forward(x).square().mean());
    loss.backward();
    expect(m.parameters().every((p) => p.grad !== null)).toBe(true);
    opt.step();
    const after = eg.onnx.exportModel(m, { inputShapes: [2, 3] });
    expect(after.length).toBe(bytes.length);
    expect(after.some((b, i) => b !== bytes[i]), 'new weights exported').toBe(true);
    const y = eg.noGrad(() => m.forward(x));
    const ref = await runOrt(after, x);
    expect(maxAbsDiff(y.dataSync(), ref.data)).toBeLessThanOrEqual(1e-5);
    opt.zeroGrad();
    for (const t of [x, loss, y]) t.dispose();
    m.dispose();
  });
});

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
