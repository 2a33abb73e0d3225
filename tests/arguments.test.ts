/**
 * Issue 13, bad arguments: every defect is a test that failed on the old code. A bad argument is
 * a typed EdgegradError naming it, checked before the engine (no panic, no wrapped size, no raw
 * TypeError), and the engine keeps working afterwards.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { nn, optim } = eg;

/** After a refused call the engine still allocates and computes, on every thread. */
function engineWorks(): void {
  const s = eg.tidy(() => eg.ones([64, 64]).matmul(eg.ones([64, 64])).sum().item());
  expect(s).toBe(64 * 64 * 64);
}

describe('defect 5: arguments that panicked the engine are refused first', () => {
  it('arange(0, 1e10) names the count and allocates nothing', () => {
    const before = eg.memory();
    expect(() => eg.arange(0, 1e10)).toThrow(eg.ArgumentError);
    expect(() => eg.arange(0, 1e10)).toThrow(/10000000000 elements/);
    expect(() => eg.arange(0, 1, 0)).toThrow(eg.ArgumentError);
    expect(() => eg.arange(0, Infinity)).toThrow(eg.ArgumentError);
    expect(() => eg.arange(3e9, 3e9 + 2, 1, 'int32')).toThrow(eg.ArgumentError);
    expect(eg.memory().numBytes).toBe(before.numBytes);
    engineWorks();
  });
  it('scalar(1).sum(0) and other axes of a rank-0 tensor are ShapeErrors', () => {
    const s = eg.scalar(1);
    for (const f of [() => s.sum(0), () => s.mean(-1), () => s.max(0), () => s.argMax(0), () => s.transpose(0, 0),
      () => s.indexSelect(0, eg.tensor([0], undefined, 'int32')), () => s.gather(0, eg.scalar(0, 'int32'))]) {
      expect(() => eg.tidy(f)).toThrow(eg.ShapeError);
    }
    expect(s.sum().item()).toBe(1);
    s.dispose();
    engineWorks();
  });
  it('broadcasting against an empty tensor gives an empty result', () => {
    const y = eg.tidy(() => eg.ones([3]).add(eg.ones([0, 3])));
    expect(y.shape).toEqual([0, 3]);
    y.dispose();
    engineWorks();
  });
  it('results past the element limit are refused before allocating', () => {
    const tall = eg.ones([1]).expand([65536, 1]);
    const wide = eg.ones([1]).expand([1, 65536]);
    expect(() => tall.add(wide)).toThrow(eg.ShapeError);
    expect(() => tall.matmul(wide)).toThrow(eg.ShapeError);
    expect(() => eg.ones([1]).expand([65536, 65536])).toThrow(eg.ShapeError);
    eg.dispose([tall, wide]);
    engineWorks();
  });
});

describe('defect 9: sizes that wrapped at 2^32 and silently wrong results', () => {
  const big = 2 ** 32 + 1;
  it('sizes that wrap at 2^32 are typed errors naming the size', () => {
    expect(() => eg.zeros([big])).toThrow(eg.ShapeError);
    expect(() => eg.zeros([big])).toThrow(/4294967297/);
    expect(() => eg.zeros([big, 0])).toThrow(eg.ShapeError);
    expect(() => eg.zeros([65536, 65536])).toThrow(eg.ShapeError);
    expect(() => eg.randint([big], 0, 2)).toThrow(eg.ShapeError);
    expect(() => eg.randint([2], 0, big)).toThrow(eg.ArgumentError);
    expect(() => eg.randperm(big)).toThrow(eg.ArgumentError);
    expect(() => eg.tidy(() => eg.ones([2]).reshape([big, 0]))).toThrow(eg.ShapeError);
    expect(() => new nn.Linear(big, 1)).toThrow(eg.ArgumentError);
    expect(() => new nn.Linear(big, 1)).toThrow(/4294967297/);
    // A slice bound past int32 keeps its meaning (to the end) instead of wrapping.
    const s = eg.tidy(() => eg.arange(5).slice([2], [big]));
    expect(Array.from(s.dataSync())).toEqual([2, 3, 4]);
    const st = eg.tidy(() => eg.arange(5).slice([1], [5], [big]));
    expect(Array.from(st.dataSync())).toEqual([1]);
    eg.dispose([s, st]);
    engineWorks();
  });
  it('layer counts are bounded and a failed constructor frees what it built', () => {
    const before = eg.memory().numTensors;
    // Used to build convolutions until the handle table was full (seconds, a million tensors).
    expect(() => new nn.VGGBlock(2, 2, 2 ** 32 + 1)).toThrow(eg.ArgumentError);
    expect(() => new nn.GPT({ vocabSize: 4, blockSize: 4, nEmbd: 4, nHead: 2, nLayer: 2 ** 32 + 1 })).toThrow(eg.ArgumentError);
    // nHead that does not divide nEmbd is found after the first LayerNorm was built.
    expect(() => new nn.GPTBlock(4, 3)).toThrow(eg.EdgegradError);
    expect(() => new nn.GPT({ vocabSize: 4, blockSize: 4, nEmbd: 4, nHead: 3, nLayer: 2 })).toThrow(eg.EdgegradError);
    expect(eg.memory().numTensors).toBe(before);
  });
  it('an optimizer refuses a parameter listed twice, also across groups', () => {
    const w = eg.zeros([2]).requiresGrad_();
    expect(() => new optim.SGD([w, w], { lr: 0.1 })).toThrow(eg.ArgumentError);
    expect(() => new optim.SGD([w, w], { lr: 0.1 })).toThrow(/parameter 1 is the same tensor as parameter 0/);
    expect(() => new optim.Adam([{ params: [w] }, { params: [w], lr: 0.01 }])).toThrow(/group 1.*same tensor.*group 0/);
    expect(() => new optim.SGD([w, 3 as unknown as eg.Tensor], { lr: 0.1 })).toThrow(eg.ArgumentError);
    w.dispose();
  });
  it('compile() refuses an optimizer holding none of the model\'s parameters', () => {
    const a = new nn.Linear(2, 1, { seed: 1 });
    const b = new nn.Linear(2, 1, { seed: 2 });
    const seq = new nn.Sequential(a, new nn.ReLU(), new nn.Linear(1, 1, { seed: 3 }));
    expect(() => b.compile({ optimizer: new optim.SGD(a.parameters(), { lr: 0.1 }), loss: 'mse' })).toThrow(eg.ArgumentError);
    expect(() => b.compile({ optimizer: new optim.SGD(a.parameters(), { lr: 0.1 }), loss: 'mse' })).toThrow(/none of this model/);
    // Part of the model (the rest frozen) is legitimate.
    expect(() => seq.compile({ optimizer: new optim.SGD(a.parameters(), { lr: 0.1 }), loss: 'mse' })).not.toThrow();
  });
  it('LambdaLR refuses NaN, Infinity and non-numbers at the step that produced them', () => {
    const w = eg.zeros([1]).requiresGrad_();
    const opt = new optim.SGD([w], { lr: 0.1 });
    const sched = new optim.LambdaLR(opt, (t) => (t < 2 ? 1 : NaN));
    sched.step();
    expect(() => sched.step()).toThrow(eg.ArgumentError);
    expect(() => sched.step()).toThrow(/NaN at step/);
    const inf = new optim.LambdaLR(opt, () => Infinity);
    expect(() => inf.step()).toThrow(eg.ArgumentError);
    const str = new optim.LambdaLR(opt, () => '1' as unknown as number);
    expect(() => str.step()).toThrow(eg.ArgumentError);
    expect(() => new optim.LambdaLR(opt, 5 as unknown as (t: number) => number)).toThrow(eg.ArgumentError);
    expect(opt.lr).toBeCloseTo(0.1);
    w.dispose();
  });
  it('quantizing with NaN or Infinity in the calibration data is refused', () => {
    const m = new nn.Sequential(new nn.Linear(4, 3, { seed: 1 }), new nn.ReLU());
    for (const bad of [NaN, Infinity]) {
      const data = eg.tidy(() => eg.rand([8, 4], 0, 1, { seed: 1 }).add(eg.tensor([0, bad, 0, 0])));
      expect(() => eg.tidy(() => eg.compress.quantize(m, data, { method: 'minmax' }))).toThrow(eg.ArgumentError);
      expect(() => eg.tidy(() => eg.compress.quantize(m, data))).toThrow(/NaN or infinite/);
      data.dispose();
    }
  });
});

describe('defect 10: wrong argument types are typed errors, not raw TypeErrors', () => {
  const x = () => eg.ones([2, 3]);
  type Case = [string, () => unknown, new (...a: never[]) => Error];
  const cases: Case[] = [
    ['tensor(BigInt64Array)', () => eg.tensor(bad(new BigInt64Array(2))), eg.ArgumentError],
    ['tensor(DataView)', () => eg.tensor(bad(new DataView(new ArrayBuffer(4)))), eg.ArgumentError],
    ['tensor(string)', () => eg.tensor(bad('1,2')), eg.ArgumentError],
    ['tensor(null)', () => eg.tensor(bad(null)), eg.ArgumentError],
    ['tensor([1n])', () => eg.tensor(bad([1n, 2n])), eg.ShapeError],
    ['tensor(self-containing array)', () => { const a: unknown[] = []; a.push(a); return eg.tensor(bad(a)); }, eg.ShapeError],
    ['tensor int32 out of range', () => eg.tensor([2 ** 31], undefined, 'int32'), eg.ArgumentError],
    ['tensor shape string', () => eg.tensor([1, 2], bad('2')), eg.ShapeError],
    ['tensor dtype "toString"', () => eg.tensor([1], undefined, bad('toString')), eg.DTypeError],
    ['zeros(undefined)', () => eg.zeros(bad(undefined)), eg.ShapeError],
    ['zeros(["2"])', () => eg.zeros(bad(['2'])), eg.ShapeError],
    ['zeros dtype float64', () => eg.zeros([2], bad('float64')), eg.DTypeError],
    ['full value string', () => eg.full([2], bad('1')), eg.ArgumentError],
    ['scalar(1n)', () => eg.scalar(bad(1n)), eg.ArgumentError],
    ['arange("5")', () => eg.arange(bad('5')), eg.ArgumentError],
    ['rand low NaN', () => eg.rand([2], NaN, 1), eg.ArgumentError],
    ['randn std Infinity', () => eg.randn([2], 0, Infinity), eg.ArgumentError],
    ['rand high beyond float32', () => eg.rand([2], 0, 1e39), eg.ArgumentError],
    ['randint low 0.5', () => eg.randint([2], 0.5, 3), eg.ArgumentError],
    ['rand seed string', () => eg.rand([2], 0, 1, bad({ seed: 'x' })), eg.ArgumentError],
    ['manualSeed(1n)', () => eg.manualSeed(bad(1n)), eg.ArgumentError],
    ['zerosLike(5)', () => eg.zerosLike(bad(5)), eg.ArgumentError],
    ['tidy(5)', () => eg.tidy(bad(5)), eg.ArgumentError],
    ['noGrad(null)', () => eg.noGrad(bad(null)), eg.ArgumentError],
    ['keep(5)', () => eg.keep(bad(5)), eg.ArgumentError],
    ['neg(5)', () => eg.neg(bad(5)), eg.ArgumentError],
    ['relu(undefined)', () => eg.relu(bad(undefined)), eg.ArgumentError],
    ['sum("x")', () => eg.sum(bad('x')), eg.ArgumentError],
    ['where(null, ...)', () => eg.where(bad(null), 1, 2), eg.ArgumentError],
    ['stack([1, 2])', () => eg.stack(bad([1, 2])), eg.ArgumentError],
    ['concat axis "0"', () => eg.concat([x()], bad('0')), eg.ArgumentError],
    ['add("1")', () => x().add(bad('1')), eg.ArgumentError],
    ['add(1n)', () => x().add(bad(1n)), eg.ArgumentError],
    ['mul(null)', () => x().mul(bad(null)), eg.ArgumentError],
    ['matmul({})', () => x().matmul(bad({})), eg.ArgumentError],
    ['sum axis 0.5', () => x().sum(0.5), eg.ArgumentError],
    ['sum axis "0"', () => x().sum(bad('0')), eg.ArgumentError],
    ['sum keepDims "yes"', () => x().sum(0, bad('yes')), eg.ArgumentError],
    ['softmax axis NaN', () => x().softmax(NaN), eg.ArgumentError],
    ['leakyRelu alpha 1n', () => x().leakyRelu(bad(1n)), eg.ArgumentError],
    ['clamp min null', () => x().clamp(bad(null), 1), eg.ArgumentError],
    ['reshape("6")', () => x().reshape(bad('6')), eg.ShapeError],
    ['reshape([6.5])', () => x().reshape([6.5]), eg.ShapeError],
    ['permute(0)', () => x().permute(bad(0)), eg.ShapeError],
    ['transpose("a")', () => x().transpose(bad('a')), eg.ArgumentError],
    ['slice(undefined)', () => x().slice(bad(undefined)), eg.ArgumentError],
    ['slice begin 0.5', () => x().slice([0.5, 0]), eg.ArgumentError],
    ['expand(null)', () => x().expand(bad(null)), eg.ShapeError],
    ['indexSelect(0, [0])', () => x().indexSelect(0, bad([0])), eg.ArgumentError],
    ['cast("float64")', () => x().cast(bad('float64')), eg.DTypeError],
    ['backward(5)', () => eg.ones([1]).requiresGrad_().sum().backward(bad(5)), eg.ArgumentError],
    ['grad = 5', () => { eg.ones([1]).requiresGrad_().grad = bad(5); }, eg.ArgumentError],
    ['requiresGrad_("yes")', () => eg.ones([1]).requiresGrad_(bad('yes')), eg.ArgumentError],
    ['disposed tensor', () => { const t = x(); t.dispose(); return t.add(1); }, eg.DisposedError],
    ['disposed operand', () => { const t = x(); t.dispose(); return x().add(t); }, eg.DisposedError],
    ['Linear("2", 1)', () => new nn.Linear(bad('2'), 1), eg.ArgumentError],
    ['Conv2d kernel 1n', () => new nn.Conv2d(1, 1, bad(1n)), eg.ArgumentError],
    ['Conv2d padding [1n,1n]', () => new nn.Conv2d(1, 1, 3, { padding: bad([1n, 1n]) }).forward(eg.ones([1, 4, 4, 1])), eg.ArgumentError],
    ['Linear options null', () => new nn.Linear(2, 1, bad(null)), eg.ArgumentError],
    ['LSTM options null', () => new nn.LSTM(2, 2, bad(null)), eg.ArgumentError],
    ['LayerNorm("2")', () => new nn.LayerNorm(bad('2')), eg.ArgumentError],
    ['ModuleList("2")', () => new nn.ModuleList(bad('2')), eg.ArgumentError],
    ['GPT(null)', () => new nn.GPT(bad(null)), eg.ArgumentError],
    ['SinusoidalPositionalEncoding(2^32 + 1)', () => new nn.SinusoidalPositionalEncoding(2 ** 32 + 1), eg.ArgumentError],
    ['StepLR(null)', () => new optim.StepLR(bad(null), 1), eg.ArgumentError],
    ['Conv2d.forward(null)', () => new nn.Conv2d(1, 1, 3).forward(bad(null)), eg.ArgumentError],
    ['LSTM.forward("x")', () => new nn.LSTM(2, 2).forward(bad('x')), eg.ArgumentError],
    ['F.linear(x, null)', () => nn.functional.linear(x(), bad(null)), eg.ArgumentError],
    ['F.batchNorm(undefined)', () => nn.functional.batchNorm(bad(undefined)), eg.ArgumentError],
    ['F.layerNorm(x, "1")', () => nn.functional.layerNorm(x(), bad('1')), eg.ArgumentError],
    ['optimizer.lr = NaN', () => { new optim.SGD([eg.zeros([1]).requiresGrad_()], { lr: 0.1 }).lr = NaN; }, eg.ArgumentError],
    ['clipGradNorm(null, 1)', () => optim.clipGradNorm(bad(null), 1), eg.ArgumentError],
    ['clipGradNorm(params, 1n)', () => optim.clipGradNorm([eg.zeros([1])], bad(1n)), eg.ArgumentError],
    ['compile metrics "acc"', () => new nn.Linear(2, 1).compile({ optimizer: new optim.SGD([eg.zeros([1]).requiresGrad_()], { lr: 0.1 }), loss: 'mse', metrics: bad('acc') }), eg.ArgumentError],
    ['quantize(null, x)', () => eg.compress.quantize(bad(null), x()), eg.ArgumentError],
    ['quantize(model, "x")', () => eg.compress.quantize(new nn.Linear(3, 1), bad('x')), eg.ArgumentError],
    ['SGD(null)', () => new optim.SGD(bad(null)), eg.ArgumentError],
    ['loadStateDict(null)', () => new nn.Linear(2, 1).loadStateDict(bad(null)), eg.ArgumentError],
    ['optimizer loadStateDict(null)', () => new optim.SGD([eg.zeros([1]).requiresGrad_()], { lr: 0.1 }).loadStateDict(bad(null)), eg.ArgumentError],
  ];
  for (const [name, f, cls] of cases) {
    it(name, () => {
      let err: unknown;
      try {
        eg.tidy(() => {
          f();
        });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(cls);
      expect((err as Error).message.length).toBeGreaterThan(10);
    });
  }
  it('every layer\'s forward refuses a non-tensor input with a typed error', () => {
    const skip = ['Module', 'Graph', 'SymbolicTensor', 'GPT', 'ResNet', 'VGG', 'Inception'];
    let checked = 0;
    for (const [name, C] of Object.entries(nn as unknown as Record<string, unknown>)) {
      if (typeof C !== 'function' || !/^[A-Z]/.test(name) || skip.includes(name)) continue;
      let m: { forward: (...a: unknown[]) => unknown; dispose(): void } | null = null;
      for (const args of [[], [2], [2, 2], [2, 2, 1], [0.5]]) {
        try {
          m = new (C as new (...a: unknown[]) => NonNullable<typeof m>)(...args);
          break;
        } catch {
          // try the next argument list
        }
      }
      if (!m) continue;
      for (const v of [null, undefined, 'x', 3, {}]) {
        let err: unknown;
        try {
          eg.tidy(() => {
            m!.forward(v);
          });
        } catch (e) {
          err = e;
        }
        if (err !== undefined) expect(err, `${name}.forward(${String(v)})`).toBeInstanceOf(eg.EdgegradError);
      }
      m.dispose();
      checked++;
    }
    expect(checked).toBeGreaterThan(30);
  });
  it('the engine works after all of them', () => {
    engineWorks();
  });
});

describe('defect 11: noGrad(async) and predict on zero rows', () => {
  it('noGrad refuses an async function and leaves gradient recording on', async () => {
    expect(() => eg.noGrad(async () => 1)).toThrow(eg.ArgumentError);
    expect(eg.isGradEnabled()).toBe(true);
    // A function returning a promise is refused too, after its synchronous part.
    expect(() => eg.noGrad(() => Promise.resolve(1))).toThrow(/async/);
    expect(eg.isGradEnabled()).toBe(true);
    expect(() => eg.tidy(async () => 1)).toThrow(eg.ArgumentError);
    // Recording still works: a gradient flows.
    const w = eg.ones([2]).requiresGrad_();
    eg.tidy(() => w.mul(3).sum().backward());
    expect(Array.from(w.grad!.dataSync())).toEqual([3, 3]);
    w.dispose();
  });
  it('predict on zero rows returns an empty result of the output shape', () => {
    const m = new nn.Sequential(new nn.Linear(4, 8, { seed: 1 }), new nn.ReLU(), new nn.Linear(8, 3, { seed: 2 }));
    const x = eg.zeros([0, 4]);
    const before = eg.memory().numTensors;
    const y = m.predict(x);
    expect(y.shape).toEqual([0, 3]);
    expect(y.dtype).toBe('float32');
    y.dispose();
    expect(eg.memory().numTensors).toBe(before);
    const cnn = new nn.Sequential(new nn.Conv2d(1, 2, 3, { seed: 1 }), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(2, 5, { seed: 2 }));
    const yc = cnn.predict(eg.zeros([0, 4, 4, 1]));
    expect(yc.shape).toEqual([0, 5]);
    expect(() => m.predict(eg.scalar(1))).toThrow(eg.ShapeError);
    expect(() => m.predict(bad([1, 2]))).toThrow(eg.ArgumentError);
    eg.dispose([x, yc]);
  });
});

function bad(v: unknown): never {
  return v as never;
}
