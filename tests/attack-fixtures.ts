/** What the attack and robustness tests share: a small trained digits MLP and perturbation norms measured in JS. */
import { expect } from 'vitest';
import * as eg from '../sdk/index.js';

/**
 * A digits MLP 64-32-10 (pixels in [0, 1]) trained full-batch for 150 Adam steps on the first 1,200
 * digits (about a second), in eval mode, and the last `nTest` digits held out. `images`: inputs
 * `[n, 8, 8, 1]` with a Flatten first (the image attacks' shape), else `[n, 64]`.
 */
export async function trainedDigitsMlp(nTest: number, o: { images: boolean }): Promise<{ model: eg.nn.Sequential; xTest: eg.Tensor; yTest: Int32Array }> {
  const { nn } = eg;
  const d = await eg.loadDigits();
  const nTrain = 1200;
  const scaled = d.images.map((v) => v / 16);
  const shape = (n: number) => (o.images ? [n, 8, 8, 1] : [n, 64]);
  const layers = [new nn.Linear(64, 32, { seed: 1 }), new nn.ReLU(), new nn.Linear(32, 10, { seed: 2 })];
  const model = o.images ? new nn.Sequential(new nn.Flatten(), ...layers) : new nn.Sequential(...layers);
  const x = eg.tensor(scaled.slice(0, nTrain * 64), shape(nTrain));
  const y = eg.tensor(d.labels.slice(0, nTrain), [nTrain], 'int32');
  const opt = new eg.optim.Adam(model.parameters(), { lr: 0.02 });
  for (let s = 0; s < 150; s++) {
    eg.tidy(() => {
      opt.zeroGrad();
      eg.losses.sparseCategoricalCrossEntropy(model.forward(x), y, { fromLogits: true }).backward();
      opt.step();
    });
  }
  opt.zeroGrad();
  opt.dispose();
  eg.dispose([x, y]);
  model.eval();
  const xTest = eg.tensor(scaled.slice((d.n - nTest) * 64), shape(nTest));
  return { model, xTest, yTest: d.labels.slice(d.n - nTest) };
}

/** Per-example max |δ| and ‖δ‖₂ computed here in JS (float64), and the range of x'. */
export function measure(x: eg.Tensor, adv: eg.Tensor): { linf: number[]; l2: number[]; lo: number; hi: number } {
  const a = adv.dataSync() as Float32Array;
  const b = x.dataSync() as Float32Array;
  const d = a.length / x.shape[0];
  const linf: number[] = [];
  const l2: number[] = [];
  for (let i = 0; i < x.shape[0]; i++) {
    let m = 0;
    let s = 0;
    for (let k = i * d; k < (i + 1) * d; k++) {
      const v = a[k] - b[k];
      m = Math.max(m, Math.abs(v));
      s += v * v;
    }
    linf.push(m);
    l2.push(Math.sqrt(s));
  }
  return { linf, l2, lo: Math.min(...a), hi: Math.max(...a) };
}

export const mean = (v: number[]): number => v.reduce((s, a) => s + a, 0) / v.length;

/** A call that must fail, the error class it must throw and what its message must say. */
export type ExpectedError = [() => unknown, new (m: string) => Error, RegExp];

/** Each call throws an error of its class whose message matches. */
export function expectErrors(cases: ExpectedError[]): void {
  for (const [f, type, msg] of cases) {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err, String(msg)).toBeInstanceOf(type);
    expect((err as Error).message).toMatch(msg);
  }
}
