/** Models and checks shared by the explain and attacks tests (known-answer models, bit digests). */
import { expect } from 'vitest';
import * as eg from '../sdk/index.js';

const { nn } = eg;

/** F(x) = w·x + b: weights, bias and three inputs; feature 2 is ignored (w = 0). */
export const W = [0.5, -2, 0, 1.25, 3];
export const B = 0.75;
export const X = [[1, 2, 3, 4, 5], [-1, 0.5, 7, -2, 0.25], [0.3, -0.7, 1.1, 2.2, -3.3]];

/** F(x) = w·x + b as a model with one output per example ([N, 1]). */
export function linearModel(): eg.nn.Sequential {
  const m = new nn.Sequential(new nn.Linear(5, 1));
  m.loadStateDict({ '0.weight': eg.tensor([W]), '0.bias': eg.tensor([B]) });
  return m.eval();
}

/** A small MLP (4 → 8 → 3) whose first layer ignores feature 1 (its weight column is 0). */
export function mlp(): eg.nn.Sequential {
  const m = new nn.Sequential(new nn.Linear(4, 8, { seed: 11 }), new nn.Tanh(), new nn.Linear(8, 3, { seed: 12 })).eval();
  eg.noGrad(() => {
    const w = m.getModule('0').stateDict().weight;
    w.assign(w.mul(eg.tensor([[1, 0, 1, 1]])));
  });
  return m;
}

/** A small CNN (ReLU, max-pool) on 8x8x1 images, random weights: '3' is the last conv ([N, 4, 4, 6]), '6' the classifier. */
export function cnn(): eg.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 4, 3, { padding: 'same', seed: 21 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(4, 6, 3, { padding: 'same', seed: 22 }), new nn.ReLU(), new nn.Flatten(), new nn.Linear(4 * 4 * 6, 5, { seed: 23 }),
  ).eval();
}

export const data = (t: eg.Tensor): number[] => Array.from(t.dataSync() as Float32Array);
/** The float32 bit patterns of a tensor's values (exact comparisons, digests). */
export const bits = (t: eg.Tensor): number[] => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));

/** FNV-1a over 32-bit words, as hex: a stored digest that Node and Chromium must both reproduce. */
export function fnv1a(words: Iterable<number>): string {
  let h = 0x811c9dc5;
  for (const w of words) h = Math.imul(h ^ w, 0x01000193) >>> 0;
  return h.toString(16);
}

/** Runs `run` with 1 and then 2 threads, expects the same bits, and returns them. */
export function sameBitsOnOneAndTwoThreads(run: () => number[]): number[] {
  eg.setNumThreads(1);
  const one = run();
  eg.setNumThreads(2);
  const two = run();
  expect(two).toEqual(one);
  return one;
}

/**
 * For each named call: one warm-up (the engine's pool sizes itself), then 100 calls whose results
 * are disposed must leave live tensors, live bytes and wasm memory exactly as they were.
 */
export function expectFlatOver100Calls(calls: [string, () => unknown][]): void {
  for (const [name, call] of calls) {
    eg.dispose(call());
    const before = eg.memory();
    for (let i = 0; i < 100; i++) eg.dispose(call());
    const after = eg.memory();
    expect(after.numTensors, name).toBe(before.numTensors);
    expect(after.numBytes, name).toBe(before.numBytes);
    expect(after.wasmBytes, name).toBe(before.wasmBytes);
  }
}
