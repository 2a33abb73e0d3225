/**
 * PyTorch interop: state dicts stored as PyTorch writes them (tests/fixtures/torch-*.safetensors,
 * made by tests/fixtures/torch-make-fixtures.mjs with PyTorch's names, NCHW/OIHW layouts, gate
 * orders and int64 counters) load into the matching edgegrad modules, and the outputs equal the
 * float64 evaluation of PyTorch's formulas stored beside them. Plus export, name mapping options,
 * errors, and Keras/tfjs recurrent weights.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
  await tf.setBackend('cpu');
});

const { nn } = eg;
const { interop } = nn;

async function fixture(name: string): Promise<Uint8Array> {
  return eg.readAsset(new URL(`./fixtures/${name}`, import.meta.url));
}
async function io(name: string): Promise<Record<string, eg.Tensor>> {
  return eg.decodeSafetensors(await fixture(name)).tensors;
}
function close(a: eg.Tensor, b: eg.Tensor, tol: number, what: string): void {
  expect(a.shape, `${what}: shape`).toEqual(b.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let err = 0;
  for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i] - y[i]));
  expect(err, `${what}: max abs error`).toBeLessThanOrEqual(tol);
}
const nhwc = (t: eg.Tensor) => t.permute([0, 2, 3, 1]);

describe('loading PyTorch weights', () => {
  it('a CNN: OIHW convolutions become HWIO, BatchNorm buffers load, the NCHW flatten is reordered', async () => {
    const model = new nn.Sequential(new nn.Conv2d(2, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.Flatten(), new nn.Linear(100, 3)).eval();
    const r = interop.loadPyTorchWeights(model, await fixture('torch-convnet.safetensors'), { flattenFrom: { 4: [4, 5, 5] } });
    expect(r.loaded).toHaveLength(8);
    expect(r.unused).toEqual(['1.num_batches_tracked']);
    const { input, output } = await io('torch-convnet-io.safetensors');
    eg.tidy(() => close(model.forward(nhwc(input)), output, 2e-5, 'convnet output'));
    model.dispose();
  });

  it('a torchvision ResNet: names, downsample shortcuts, eval-mode BatchNorm', async () => {
    const model = nn.resnet({ layers: [1, 1], width: 4, inChannels: 2, numClasses: 3 }).eval();
    const r = interop.loadPyTorchWeights(model, await fixture('torch-resnet.safetensors'));
    expect(r.missing).toEqual([]);
    expect(r.unused.every((n) => n.endsWith('num_batches_tracked'))).toBe(true);
    expect(r.unused).toHaveLength(6);
    const { input, output } = await io('torch-resnet-io.safetensors');
    eg.tidy(() => close(model.forward(nhwc(input)), output, 2e-5, 'resnet output'));
    model.dispose();
  });

  it('a 2-layer bidirectional LSTM and a GRU: gate orders and both biases as PyTorch stores them', async () => {
    const lstm = new nn.LSTM(3, 4, { numLayers: 2, bidirectional: true });
    expect(interop.loadPyTorchWeights(lstm, await fixture('torch-lstm.safetensors')).loaded).toHaveLength(16);
    const l = await io('torch-lstm-io.safetensors');
    eg.tidy(() => {
      const r = lstm.run(l.input, { initialState: { h: l.h0, c: l.c0 } });
      close(r.output, l.output, 2e-6, 'lstm output');
      close(r.h, l.h_n, 2e-6, 'lstm h_n');
      close(r.c!, l.c_n, 2e-6, 'lstm c_n');
    });
    const gru = new nn.GRU(3, 4);
    interop.loadPyTorchWeights(gru, await fixture('torch-gru.safetensors'));
    const gio = await io('torch-gru-io.safetensors');
    eg.tidy(() => {
      const r = gru.run(gio.input, { initialState: gio.h0 });
      close(r.output, gio.output, 2e-6, 'gru output');
      close(r.h, gio.h_n, 2e-6, 'gru h_n');
    });
    lstm.dispose();
    gru.dispose();
  });

  it('nn.TransformerEncoderLayer with a key padding mask', async () => {
    const layer = new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0 }).eval();
    interop.loadPyTorchWeights(layer, await fixture('torch-transformer.safetensors'));
    const t = await io('torch-transformer-io.safetensors');
    eg.tidy(() => {
      const lengths = Array.from(t.lengths.dataSync());
      close(layer.forward(t.input, { keyMask: nn.keyMaskFromLengths(lengths, 4) }), t.output, 2e-5, 'encoder layer output');
    });
    layer.dispose();
  });
});

describe('name mapping, export and errors', () => {
  it('the CNN needs its flatten mapping: without it the output is wrong', async () => {
    const make = () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.Flatten(), new nn.Linear(100, 3)).eval();
    const m = make();
    interop.loadPyTorchWeights(m, await fixture('torch-convnet.safetensors'));
    const { input, output } = await io('torch-convnet-io.safetensors');
    const err = eg.tidy(() => m.forward(nhwc(input)).sub(output).abs().max().item());
    expect(err).toBeGreaterThan(1e-2);
    const map = interop.pytorchNameMap(m, { flattenFrom: { 4: [4, 5, 5] } });
    expect(map.find((e) => e.ours === '0.weight')).toMatchObject({ transform: 'conv-oihw-to-hwio', shape: [3, 3, 2, 4], theirShape: [4, 2, 3, 3] });
    expect(map.find((e) => e.ours === '4.weight')!.transform).toBe('linear-nchw-flatten');
    expect(() => interop.pytorchNameMap(m, { flattenFrom: { 4: [4, 5, 6] } })).toThrow(/not C·H·W/);
    expect(() => interop.pytorchNameMap(m, { flattenFrom: { 0: [1, 1, 1] } })).toThrow(/not a Linear/);
    m.dispose();
  });

  it('export gives back PyTorch\'s names, layouts and values exactly', async () => {
    const bytes = await fixture('torch-resnet.safetensors');
    const model = nn.resnet({ layers: [1, 1], width: 4, inChannels: 2, numClasses: 3 });
    interop.loadPyTorchWeights(model, bytes);
    const theirs = eg.decodeSafetensors(bytes).tensors;
    const back = eg.decodeSafetensors(interop.toPyTorchSafetensors(model)).tensors;
    const names = Object.keys(theirs).filter((n) => !n.endsWith('num_batches_tracked')).sort();
    expect(Object.keys(back).sort()).toEqual(names);
    for (const n of names) {
      expect(back[n].shape, n).toEqual(theirs[n].shape);
      expect(Array.from(back[n].dataSync()), n).toEqual(Array.from(theirs[n].dataSync()));
    }
    eg.dispose([theirs, back]);
    model.dispose();
  });

  it('prefix and rename map other naming schemes; missing and misshapen tensors are named', async () => {
    const src = eg.decodeSafetensors(await fixture('torch-gru.safetensors')).tensors;
    const prefixed = Object.fromEntries(Object.entries(src).map(([k, v]) => [`module.rnn.${k}`, v]));
    const gru = new nn.GRU(3, 4);
    expect(interop.loadPyTorchWeights(gru, prefixed, { prefix: 'module.rnn.' }).loaded).toHaveLength(4);
    const renamed = { ...src, b_ih: src.bias_ih_l0 };
    delete (renamed as Record<string, eg.Tensor>).bias_ih_l0;
    expect(interop.loadPyTorchWeights(gru, renamed, { rename: { bias_ih_l0: 'b_ih' } }).unused).toEqual([]);
    const partial = { ...src };
    delete (partial as Record<string, eg.Tensor>).bias_hh_l0;
    expect(() => interop.loadPyTorchWeights(gru, partial)).toThrow(eg.FormatError);
    expect(() => interop.loadPyTorchWeights(gru, partial)).toThrow(/'bias_hh_l0'/);
    expect(interop.loadPyTorchWeights(gru, partial, { strict: false }).missing).toEqual(['bias_hh_l0']);
    const big = new nn.GRU(3, 5);
    expect(() => interop.loadPyTorchWeights(big, src)).toThrow(/'weight_ih_l0' has shape \[12, 3\] but 'weight_ih_l0' needs \[15, 3\]/);
    const conv = new nn.Conv2d(2, 4, 3);
    const wrong = { weight: eg.zeros([3, 3, 2, 4]), bias: eg.zeros([4]) };
    expect(() => interop.loadPyTorchWeights(conv, wrong)).toThrow(/\[out, in\/groups, kh, kw\]/);
    eg.dispose([src, wrong]);
    gru.dispose();
    big.dispose();
    conv.dispose();
  });

  it('Keras / tfjs recurrent weights: transposed, GRU gates reordered', () => {
    const [B, T, I, H] = [2, 4, 3, 5];
    const x = vals(B * T * I, 1);
    for (const kind of ['lstm', 'gru', 'simpleRNN'] as const) {
      const tl = kind === 'lstm' ? tf.layers.lstm({ units: H, returnSequences: true, recurrentActivation: 'sigmoid' })
        : kind === 'gru' ? tf.layers.gru({ units: H, returnSequences: true, recurrentActivation: 'sigmoid' })
          : tf.layers.simpleRNN({ units: H, returnSequences: true });
      const xt = tf.tensor3d(x, [B, T, I]);
      const yt = tl.apply(xt) as tf.Tensor;
      const [k, r, b] = tl.getWeights().map((w) => eg.tensor(w.dataSync() as Float32Array, w.shape));
      const ours = kind === 'lstm' ? new nn.LSTM(I, H) : kind === 'gru' ? new nn.GRU(I, H, { resetAfter: false }) : new nn.SimpleRNN(I, H);
      const sd = interop.kerasRecurrentWeights(kind, { kernel: k, recurrentKernel: r, bias: b });
      ours.loadStateDict(sd);
      eg.tidy(() => close(ours.forward(eg.tensor(x, [B, T, I])), eg.tensor(yt.dataSync() as Float32Array, yt.shape), 1e-5, `${kind} from Keras weights`));
      eg.dispose([k, r, b, sd]);
      ours.dispose();
      tf.dispose([xt, yt]);
      tl.dispose();
    }
  });
});
