/**
 * eg.robust.guard (issue 15 §2): NaN/±Infinity, out-of-range, wrong-shape, wrong-rank and
 * wrong-dtype inputs are refused with typed errors naming the example; well-formed inputs give the
 * model's own results (same bits); the guard survives saveModel/loadModel; memory stays flat.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, expectEachTestFreesItsTensors } from './helpers.js';

beforeAll(async () => {
  await setup();
});

expectEachTestFreesItsTensors();

const { robust } = eg;

/** A small CNN on 6×6×1 images (NHWC), seeded. */
function cnn(): eg.nn.Module {
  return new eg.nn.Sequential(
    new eg.nn.Conv2d(1, 4, 3, { seed: 1 }), new eg.nn.ReLU(), new eg.nn.Flatten(), new eg.nn.Linear(64, 3, { seed: 2 }),
  );
}
const images = (n: number, seed = 1) => eg.rand([n, 6, 6, 1], 0, 1, { seed });
const RANGE = { inputRange: [0, 1] as [number, number], shape: [null, 6, 6, 1] };

/** `x` with `value` written at flat index `at` (a new tensor). */
function withValue(x: eg.Tensor, at: number, value: number): eg.Tensor {
  const d = Float32Array.from(x.dataSync() as Float32Array);
  d[at] = value;
  return eg.tensor(d, x.shape);
}

/** The error `f` throws (fails the test if it returns). */
function thrown(f: () => unknown): Error {
  try {
    eg.tidy(() => {
      f();
    });
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('guard refuses malformed inputs with typed errors', () => {
  it('NaN and ±Infinity: NonFiniteInputError naming the first example and how many others', () => {
    const g = robust.guard(cnn(), RANGE);
    eg.tidy(() => {
      const x = images(4);
      for (const bad of [NaN, Infinity, -Infinity]) {
        const e = thrown(() => g.forward(withValue(x, 2 * 36 + 5, bad)));
        expect(e, String(bad)).toBeInstanceOf(robust.NonFiniteInputError);
        expect(e).toBeInstanceOf(eg.ArgumentError);
        expect(e.message).toMatch(/input example 2 holds 1 non-finite values/);
        expect(() => g.predict(withValue(x, 5, bad)), String(bad)).toThrow(/input example 0 holds 1 non-finite/);
      }
      const two = withValue(withValue(withValue(x, 36 + 1, NaN), 36 + 2, NaN), 3 * 36, Infinity);
      expect(() => g.forward(two)).toThrow(/example 1 holds 2 non-finite values \(NaN or ±Infinity\), as do 1 other examples/);
    });
    g.dispose();
  });

  it('values outside inputRange: ArgumentError with the example and its range; the bounds are accepted', () => {
    const g = robust.guard(cnn(), { ...RANGE, inputRange: { min: 0, max: 1 } });
    eg.tidy(() => {
      const x = images(3);
      expect(() => g.forward(withValue(x, 40, 1.0001))).toThrow(/input example 1 has values in \[\S+, 1\.000\d+\], outside the valid input range \[0, 1\]/);
      expect(() => g.forward(withValue(x, 100, -1e-6))).toThrow(eg.ArgumentError);
      expect(() => g.forward(withValue(x, 0, 1e30))).toThrow(/input example 0/);
      expect(() => g.forward(x.mul(255))).toThrow(/outside the valid input range/);
      // Exactly the bounds pass.
      expect(g.forward(withValue(withValue(x, 0, 0), 1, 1)).shape).toEqual([3, 3]);
      expect(g.forward(eg.zeros([2, 6, 6, 1])).shape).toEqual([2, 3]);
      expect(g.forward(eg.ones([2, 6, 6, 1])).shape).toEqual([2, 3]);
    });
    g.dispose();
  });

  it('wrong rank, shape and dtype: ShapeError and DTypeError; not a tensor, disposed: typed errors', () => {
    const g = robust.guard(cnn(), RANGE);
    eg.tidy(() => {
      expect(() => g.forward(eg.rand([2, 6, 6], 0, 1, { seed: 1 }))).toThrow(eg.ShapeError);
      expect(() => g.forward(eg.rand([2, 6, 6], 0, 1, { seed: 1 }))).toThrow(/rank 3 .*expected rank 4 \[any, 6, 6, 1\]/);
      expect(() => g.forward(eg.rand([2, 6, 7, 1], 0, 1, { seed: 1 }))).toThrow(/dimension 2 is 7, not 6/);
      expect(() => g.forward(eg.rand([2, 1, 6, 6], 0, 1, { seed: 1 }))).toThrow(eg.ShapeError);
      expect(() => g.forward(eg.zeros([2, 6, 6, 1], 'int32'))).toThrow(eg.DTypeError);
      expect(() => g.forward(eg.zeros([2, 6, 6, 1], 'int32'))).toThrow(/input is int32, expected float32/);
      expect(() => g.forward([[1, 2]] as unknown as eg.Tensor)).toThrow(eg.ArgumentError);
      expect(() => g.predict(null as unknown as eg.Tensor)).toThrow(eg.ArgumentError);
      const gone = images(1);
      gone.dispose();
      expect(() => g.forward(gone)).toThrow(eg.DisposedError);
      // Any batch size, including an empty one.
      expect(g.forward(images(1)).shape).toEqual([1, 3]);
      expect(g.predict(eg.zeros([0, 6, 6, 1])).shape).toEqual([0, 3]);
    });
    g.dispose();
  });

  it('checks views as they read (a transposed batch) and int32 inputs by range', () => {
    const g = robust.guard((x: eg.Tensor) => x.sum(1), { inputRange: [-1, 1], shape: [null, 3] });
    eg.tidy(() => {
      const t = eg.tensor([[0, 0.5], [0.25, 2], [-0.5, 0.75]]).transpose(0, 1); // rows [0, 0.25, -0.5] and [0.5, 2, 0.75]
      expect(() => g(t)).toThrow(/input example 1 has values in \[0\.5, 2\]/);
      expect(Array.from(g(t.slice([0, 0], [1, 3])).dataSync())).toEqual([-0.25]);
      const ids = robust.guard((x: eg.Tensor) => x, { dtype: 'int32', inputRange: [0, 9] });
      expect(ids(eg.tensor([[1, 9], [0, 3]], undefined, 'int32')).dtype).toBe('int32');
      expect(() => ids(eg.tensor([[1, 10]], undefined, 'int32'))).toThrow(/values in \[1, 10\]/);
      expect(ids.guard.dtype).toBe('int32');
    });
  });

  it('finite: false lets NaN through but not a range violation by ±Infinity', () => {
    const g = robust.guard((x: eg.Tensor) => x.mul(2), { inputRange: [0, 1], finite: false });
    eg.tidy(() => {
      expect(Number.isNaN(g(eg.tensor([[NaN, 0.5]])).dataSync()[0])).toBe(true);
      expect(() => g(eg.tensor([[NaN, 3]]))).toThrow(/values in \[0, 3\]/);
      expect(() => g(eg.tensor([[0.5, Infinity]]))).toThrow(eg.ArgumentError);
      expect(() => g(eg.tensor([[0.5, Infinity]]))).not.toThrow(robust.NonFiniteInputError);
    });
  });

  it('refuses bad options with ArgumentErrors', () => {
    const m = cnn();
    const bad: [string, unknown][] = [
      ['a number', 3], ['unknown key', { range: [0, 1] }], ['inputRange reversed', { inputRange: [1, 0] }],
      ['inputRange NaN', { inputRange: [NaN, 1] }], ['inputRange of 3', { inputRange: [0, 1, 2] }], ['inputRange string', { inputRange: '0-1' }],
      ['shape not array', { shape: 4 }], ['shape negative', { shape: [null, -1] }], ['shape fraction', { shape: [1.5] }],
      ['finite not boolean', { finite: 1 }], ['dtype unknown', { dtype: 'float64' }],
    ];
    for (const [what, o] of bad) expect(() => robust.guard(m, o as eg.robust.GuardOptions), what).toThrow(eg.ArgumentError);
    expect(() => robust.guard(null as unknown as eg.nn.Module)).toThrow(eg.ArgumentError);
    expect(() => new robust.GuardedModel({} as eg.nn.Module)).toThrow(eg.ArgumentError);
    m.dispose();
  });
});

describe('a guarded model is the model for well-formed inputs', () => {
  it('forward, predict, attacks and fit give the model\'s own results (same bits)', async () => {
    const m = cnn();
    const g = robust.guard(m, RANGE);
    expect(g.parameters()).toEqual(m.parameters());
    eg.tidy(() => {
      const x = images(5, 3);
      expect(Array.from(g.forward(x).dataSync())).toEqual(Array.from(m.forward(x).dataSync()));
      expect(Array.from(g.predict(x, { batchSize: 2 }).dataSync())).toEqual(Array.from(m.predict(x, { batchSize: 2 }).dataSync()));
      const y = eg.tensor([0, 1, 2, 0, 1], undefined, 'int32');
      const a = new eg.attacks.FGSM(g, { eps: 0.1 }).perturb(x, y);
      const b = new eg.attacks.FGSM(m, { eps: 0.1 }).perturb(x, y);
      expect(Array.from(a.adversarial.dataSync())).toEqual(Array.from(b.adversarial.dataSync()));
      // Inside the guard an attack cannot leave the valid range (it clips to [0, 1]): no refusal.
      expect(a.adversarial.max().item()).toBeLessThanOrEqual(1);
    });
    g.compile({ optimizer: new eg.optim.SGD(g.parameters(), { lr: 0.1 }), loss: 'sparseCategoricalCrossEntropy' });
    const xs = images(8, 4);
    const ys = eg.tensor([0, 1, 2, 0, 1, 2, 0, 1], undefined, 'int32');
    const before = Float32Array.from(m.parameters()[0].dataSync() as Float32Array);
    await g.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
    expect(Array.from(m.parameters()[0].dataSync())).not.toEqual(Array.from(before));
    const withNaN = withValue(xs, 3, NaN);
    const doubled = xs.mul(2);
    await expect(g.fit(withNaN, ys, { epochs: 1, batchSize: 4, verbose: 0 })).rejects.toThrow(robust.NonFiniteInputError);
    await expect(g.evaluate(doubled, ys)).rejects.toThrow(/outside the valid input range/);
    eg.dispose([xs, ys, withNaN, doubled]);
    g.dispose();
    expect(m.parameters()).toEqual([]);
  });

  it('saveModel/loadModel keep the guard with the model', async () => {
    const g = robust.guard(cnn(), { ...RANGE, finite: true });
    const art = await eg.saveModel(g);
    expect(Object.keys(art.json.model.config)).toEqual(['model', 'guard']);
    const { model: back } = await eg.loadModel(art);
    expect(back).toBeInstanceOf(robust.GuardedModel);
    const loaded = back as eg.robust.GuardedModel;
    expect(loaded.guard.toJSON()).toEqual(g.guard.toJSON());
    eg.tidy(() => {
      const x = images(2, 5);
      expect(Array.from(loaded.forward(x).dataSync())).toEqual(Array.from(g.forward(x).dataSync()));
      expect(() => loaded.forward(withValue(x, 0, NaN))).toThrow(robust.NonFiniteInputError);
    });
    // A file whose guard config is malformed is refused as a bad file.
    const bad = JSON.parse(JSON.stringify(art.json)) as eg.ModelJson;
    (bad.model.config as { guard: { inputRange: unknown } }).guard.inputRange = [1, 0];
    delete bad.weightsDigest;
    await expect(eg.loadModel({ json: bad, weights: art.weights })).rejects.toThrow(/inputRange needs min <= max/);
    g.dispose();
    loaded.dispose();
  });

  it('keeps tensor memory flat over 100 accepted and refused calls', () => {
    const g = robust.guard(cnn(), RANGE);
    const x = images(4, 6);
    const inputs = [x, withValue(x, 7, NaN), withValue(x, 7, 2), eg.rand([4, 6, 6], 0, 1, { seed: 1 })];
    const run = (i: number) => {
      try {
        eg.tidy(() => g.predict(inputs[i % inputs.length]).dataSync());
      } catch (e) {
        if (!(e instanceof eg.EdgegradError)) throw e;
      }
    };
    run(0);
    const before = eg.memory().numTensors;
    for (let i = 0; i < 100; i++) run(i);
    expect(eg.memory().numTensors).toBe(before);
    eg.dispose(inputs);
    g.dispose();
  });
});
