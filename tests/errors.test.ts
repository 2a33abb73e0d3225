/** Every failure is a typed error naming the problem: shapes, dtypes, disposed tensors, options. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

type Case = [string, () => unknown, new (...a: never[]) => Error, RegExp?];

describe('shape errors, op by op', () => {
  const a = () => eg.zeros([2, 3]);
  const b = () => eg.zeros([4, 5]);
  const idx = () => eg.tensor([0], undefined, 'int32');
  const cases: Case[] = [
    ['add', () => a().add(b()), eg.ShapeError, /cannot be broadcast/],
    ['sub', () => a().sub(b()), eg.ShapeError],
    ['mul', () => a().mul(b()), eg.ShapeError],
    ['div', () => a().div(b()), eg.ShapeError],
    ['pow', () => a().pow(b()), eg.ShapeError],
    ['maximum', () => a().maximum(b()), eg.ShapeError],
    ['minimum', () => a().minimum(b()), eg.ShapeError],
    ['where', () => eg.where(a(), a(), b()), eg.ShapeError],
    ['compare', () => a().less(b()), eg.ShapeError],
    ['matmul inner dims', () => a().matmul(b()), eg.ShapeError, /inner dimensions/],
    ['matmul batch dims', () => eg.zeros([2, 2, 3]).matmul(eg.zeros([3, 3, 4])), eg.ShapeError, /batch/],
    ['matmul scalar', () => eg.scalar(1).matmul(a()), eg.ShapeError],
    ['reshape', () => a().reshape([4, 2]), eg.ShapeError, /reshape/],
    ['reshape two -1', () => a().reshape([-1, -1]), eg.ShapeError],
    ['permute', () => a().permute([0, 0]), eg.ShapeError, /permutation/],
    ['transpose', () => a().transpose(0, 2), eg.ShapeError, /axis/],
    ['expand', () => a().expand([3, 3]), eg.ShapeError],
    ['slice rank', () => a().slice([0]), eg.ShapeError],
    ['concat', () => eg.concat([a(), b()]), eg.ShapeError, /concat/],
    ['stack', () => eg.stack([a(), b()]), eg.ShapeError],
    ['indexSelect axis', () => a().indexSelect(2, idx()), eg.ShapeError],
    ['gather rank', () => a().gather(0, idx()), eg.ShapeError, /rank/],
    ['sum axis', () => a().sum(2), eg.ShapeError, /axis 2/],
    ['mean axis', () => a().mean(-3), eg.ShapeError],
    ['max axis', () => a().max(5), eg.ShapeError],
    ['min repeated axis', () => a().min([0, 0]), eg.ShapeError, /repeated/],
    ['argMax axis', () => a().argMax(3), eg.ShapeError],
    ['softmax axis', () => a().softmax(2), eg.ShapeError],
    ['logSoftmax axis', () => a().logSoftmax(-3), eg.ShapeError],
    ['squeeze', () => a().squeeze(0), eg.ShapeError],
    ['item', () => a().item(), eg.ShapeError],
    ['tensor ragged', () => eg.tensor([[1, 2], [3]]), eg.ShapeError, /ragged/],
    ['tensor size', () => eg.tensor([1, 2, 3], [2, 2]), eg.ShapeError],
    ['zeros bad shape', () => eg.zeros([2, -1]), eg.ShapeError],
    ['assign shape', () => a().assign(b()), eg.ShapeError],
    ['backward grad shape', () => a().requiresGrad_().exp().backward(b()), eg.ShapeError],
  ];
  for (const [name, f, cls, msg] of cases) {
    it(name, () => {
      expect(() => eg.tidy(f)).toThrow(cls);
      if (msg) expect(() => eg.tidy(f)).toThrow(msg);
    });
  }
});

describe('dtype errors, op by op', () => {
  const i = () => eg.tensor([1, 2], undefined, 'int32');
  const f = () => eg.tensor([1, 2]);
  const cases: Case[] = [
    ['add', () => i().add(f()), eg.DTypeError, /float32/],
    ['exp', () => i().exp(), eg.DTypeError],
    ['log', () => i().log(), eg.DTypeError],
    ['sqrt', () => i().sqrt(), eg.DTypeError],
    ['abs', () => i().abs(), eg.DTypeError],
    ['neg', () => i().neg(), eg.DTypeError],
    ['relu', () => i().relu(), eg.DTypeError],
    ['sigmoid', () => i().sigmoid(), eg.DTypeError],
    ['tanh', () => i().tanh(), eg.DTypeError],
    ['clamp', () => i().clamp(0, 1), eg.DTypeError],
    ['pow scalar', () => i().pow(2), eg.DTypeError],
    ['sum', () => i().sum(), eg.DTypeError],
    ['softmax', () => i().softmax(), eg.DTypeError],
    ['matmul', () => i().reshape([1, 2]).matmul(f().reshape([2, 1])), eg.DTypeError],
    ['indexSelect float indices', () => f().indexSelect(0, f()), eg.DTypeError, /int32/],
    ['concat mixed', () => eg.concat([i(), f()]), eg.DTypeError],
    ['requiresGrad on int', () => i().requiresGrad_(), eg.DTypeError],
    ['unknown dtype', () => eg.zeros([1], 'float64' as eg.DType), eg.DTypeError],
  ];
  for (const [name, fn, cls, msg] of cases) {
    it(name, () => {
      expect(() => eg.tidy(fn)).toThrow(cls);
      if (msg) expect(() => eg.tidy(fn)).toThrow(msg);
    });
  }
});

describe('other failures', () => {
  it('using a disposed tensor throws DisposedError', () => {
    const t = eg.tensor([1, 2, 3]);
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expect(() => t.dataSync()).toThrow(eg.DisposedError);
    expect(() => t.add(1)).toThrow(/disposed/);
    expect(() => eg.ones([3]).add(t)).toThrow(eg.DisposedError);
    t.dispose(); // twice is harmless
  });
  it('bad arguments throw ArgumentError', () => {
    expect(() => eg.tensor([1, 2]).indexSelect(0, eg.tensor([5], undefined, 'int32'))).toThrow(eg.ArgumentError);
    expect(() => eg.tensor([1, 2]).indexSelect(0, eg.tensor([5], undefined, 'int32'))).toThrow(/index 5/);
    expect(() => eg.tensor([1, 2]).clamp(1, 0)).toThrow(eg.ArgumentError);
    expect(() => eg.rand([2], 1, 0)).toThrow(eg.ArgumentError);
    expect(() => eg.manualSeed(-1)).toThrow(eg.ArgumentError);
    expect(() => eg.tensor([1.5], undefined, 'int32')).toThrow(eg.ArgumentError);
    expect(() => eg.tensor([1, 2]).slice([0], [2], [0])).toThrow(/step/);
    expect(() => eg.tidy(() => Promise.resolve(1))).toThrow(/async/);
    expect(() => eg.tensor([1]).add('x' as unknown as eg.Tensor)).toThrow(eg.ArgumentError);
  });
  it('autograd misuse throws AutogradError', () => {
    const x = eg.tensor([1, 2]).requiresGrad_();
    expect(() => x.exp().backward()).toThrow(eg.AutogradError);
    expect(() => x.exp().backward()).toThrow(/scalar/);
    const y = x.exp().sum();
    y.backward();
    expect(() => y.backward()).toThrow(/freed/);
    expect(() => eg.tensor([1]).exp().sum().backward()).toThrow(/does not require grad/);
    const z = x.mul(x).sum();
    x.assign(eg.tensor([5, 5]));
    expect(() => z.backward()).toThrow(/modified in place/);
    expect(() => x.exp().requiresGrad_(false)).toThrow(/leaf/);
  });
});
