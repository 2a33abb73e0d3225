/** safetensors and model save/load: round trips, and clear errors for every kind of bad file. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { isBrowser, setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { nn } = eg;

describe('safetensors', () => {
  it('round-trips float32, int32 and int8 tensors with metadata', () => {
    const t = { a: eg.tensor([[1.5, -2], [3, 4]]), b: eg.tensor([7, -8], undefined, 'int32'), c: eg.tensor([-128, 127], undefined, 'int8'), empty: eg.zeros([0, 3]) };
    const bytes = eg.encodeSafetensors(t, { note: 'hi' });
    const hlen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + hlen) % 8).toBe(0);
    const back = eg.decodeSafetensors(bytes);
    expect(back.metadata).toEqual({ note: 'hi' });
    expect(back.tensors.a.arraySync()).toEqual([[1.5, -2], [3, 4]]);
    expect(back.tensors.b.dtype).toBe('int32');
    expect(Array.from(back.tensors.c.dataSync())).toEqual([-128, 127]);
    expect(back.tensors.empty.shape).toEqual([0, 3]);
  });
  it('reads F16, BF16, F64 and I64 written by other tools', () => {
    const header = JSON.stringify({
      h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] },
      d: { dtype: 'F64', shape: [1], data_offsets: [6, 14] },
      i: { dtype: 'I64', shape: [1], data_offsets: [14, 22] },
    });
    const hb = new TextEncoder().encode(header);
    const buf = new Uint8Array(8 + hb.length + 22);
    const dv = new DataView(buf.buffer);
    dv.setBigUint64(0, BigInt(hb.length), true);
    buf.set(hb, 8);
    const d0 = 8 + hb.length;
    dv.setUint16(d0, 0x3c00, true); // 1.0
    dv.setUint16(d0 + 2, 0xc000, true); // -2.0
    dv.setUint16(d0 + 4, 0x3fc0, true); // bf16 1.5
    dv.setFloat64(d0 + 6, 0.25, true);
    dv.setBigInt64(d0 + 14, -5n, true);
    const { tensors } = eg.decodeSafetensors(buf);
    expect(Array.from(tensors.h.dataSync())).toEqual([1, -2]);
    expect(tensors.b.item()).toBe(1.5);
    expect(tensors.d.item()).toBe(0.25);
    expect(tensors.i.dtype).toBe('int32');
    expect(tensors.i.item()).toBe(-5);
  });
  it('rejects corrupt files with FormatError naming the problem', () => {
    const good = eg.encodeSafetensors({ w: eg.tensor([1, 2, 3]) });
    const hlen = Number(new DataView(good.buffer).getBigUint64(0, true));
    const withHeader = (h: unknown, data = new Uint8Array(12)) => {
      const hb = new TextEncoder().encode(JSON.stringify(h));
      const b = new Uint8Array(8 + hb.length + data.length);
      new DataView(b.buffer).setBigUint64(0, BigInt(hb.length), true);
      b.set(hb, 8);
      b.set(data, 8 + hb.length);
      return b;
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ['too short', good.subarray(0, 5), /shorter than/],
      ['header length past the end', (() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; })(), /claims/],
      ['truncated data', good.subarray(0, good.length - 4), /outside|span|trailing/],
      ['bad JSON', (() => { const b = good.slice(); b[8] = 0x7b; b[9] = 0x7b; return b; })(), /JSON/],
      ['unknown dtype', withHeader({ w: { dtype: 'Q7', shape: [3], data_offsets: [0, 12] } }), /dtype must be one of/],
      ['shape/bytes mismatch', withHeader({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 12] } }), /needs 16 bytes/],
      ['overlap', withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), /contiguous/],
      ['trailing bytes', withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), /trailing/],
      ['not an object', withHeader([1, 2]), /object/],
    ];
    expect(hlen).toBeGreaterThan(0);
    for (const [name, bytes, msg] of cases) {
      expect(() => eg.decodeSafetensors(bytes), name).toThrow(eg.FormatError);
      expect(() => eg.decodeSafetensors(bytes), name).toThrow(msg);
    }
  });
});

function tinyModel(seed = 1) {
  return new nn.Sequential(
    new nn.Conv2d(1, 3, 3, { padding: 'same', seed }),
    new nn.BatchNorm2d(3),
    new nn.ReLU(),
    new nn.GlobalAvgPool2d(),
    new nn.Dropout(0.2, 4),
    new nn.Linear(3, 2, { seed: seed + 1 }),
  );
}

describe('model save/load', () => {
  it('rebuilds architecture and weights from artifacts (both runtimes), optimizer state included', async () => {
    const m = tinyModel();
    const x = eg.rand([2, 5, 5, 1], 0, 1, { seed: 9 });
    const opt = new eg.optim.Adam(m.parameters(), { lr: 0.01 });
    eg.tidy(() => {
      m.forward(x).sum().backward();
      opt.step();
    });
    m.eval();
    const want = m.forward(x).dataSync();
    const art = await eg.saveModel(m, undefined, { optimizer: opt, userData: { note: 'x' } });
    const opt2Model = tinyModel(5);
    const opt2 = new eg.optim.Adam(opt2Model.parameters(), { lr: 0.5 });
    const { model, json } = await eg.loadModel({ json: JSON.stringify(art.json), weights: art.weights.slice().buffer }, { optimizer: opt2 });
    expect(json.userData).toEqual({ note: 'x' });
    model.eval();
    expect(Array.from(model.forward(x).dataSync())).toEqual(Array.from(want));
    expect(opt2.lr).toBe(0.01);
    expect(opt2.stateDict().params[0].step).toBe(1);
  });
  it.skipIf(isBrowser)('writes and reads a model directory in Node', async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'edgegrad-'));
    const m = tinyModel(3).eval();
    await eg.saveModel(m, join(dir, 'm'));
    const { model } = await eg.loadModel(join(dir, 'm'));
    const x = eg.rand([1, 4, 4, 1], 0, 1, { seed: 2 });
    expect(Array.from(model.eval().forward(x).dataSync())).toEqual(Array.from(m.forward(x).dataSync()));
    await expect(eg.loadModel(join(dir, 'missing'))).rejects.toThrow(eg.FormatError);
  });
  it('rejects mismatched or corrupt model files', async () => {
    const m = tinyModel();
    const art = await eg.saveModel(m);
    // a file whose tensors belong to another architecture
    const other = await eg.saveModel(new nn.Sequential(new nn.Linear(3, 2)));
    await expect(eg.loadModel({ json: art.json, weights: other.weights })).rejects.toThrow(/weights do not match the model: .*missing/);
    // wrong shape
    const sd = { ...m.stateDict(), '5.weight': eg.zeros([2, 4]) };
    await expect(eg.loadModel({ json: art.json, weights: eg.saveWeights(sd) })).rejects.toThrow(/shape/);
    // extra tensor
    await expect(eg.loadModel({ json: art.json, weights: eg.saveWeights({ ...m.stateDict(), extra: eg.zeros([1]) }) })).rejects.toThrow(/unexpected extra/);
    // wrong dtype
    await expect(eg.loadModel({ json: art.json, weights: eg.saveWeights({ ...m.stateDict(), '5.bias': eg.zeros([2], 'int32') }) })).rejects.toThrow(/int32/);
    // not a model
    await expect(eg.loadModel({ json: { ...art.json, format: 'other' } as never, weights: art.weights })).rejects.toThrow(eg.FormatError);
    await expect(eg.loadModel({ json: { ...art.json, model: { className: 'Nope', config: {} } }, weights: art.weights })).rejects.toThrow(/cannot be built/);
    // corrupt weights
    await expect(eg.loadModel({ json: art.json, weights: art.weights.slice(0, 30) })).rejects.toThrow(eg.FormatError);
  });
  it.skipIf(!isBrowser)('loads from a URL in the browser', async () => {
    const m = tinyModel(2).eval();
    const art = await eg.saveModel(m);
    const wUrl = URL.createObjectURL(new Blob([art.weights as BlobPart]));
    const jUrl = URL.createObjectURL(new Blob([JSON.stringify({ ...art.json, weightsFile: wUrl })], { type: 'application/json' }));
    const { model } = await eg.loadModel(jUrl, { allowOutsideDir: true }); // blob: URLs have no folder
    const x = eg.rand([1, 4, 4, 1], 0, 1, { seed: 3 });
    expect(Array.from(model.eval().forward(x).dataSync())).toEqual(Array.from(m.forward(x).dataSync()));
  });
});
