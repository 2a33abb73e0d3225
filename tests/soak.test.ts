/**
 * Soak: 10^4 training steps and 10^3 save/load cycles through the public API, with live tensors back
 * at their baseline and wasm memory and the buffer pool flat once the first iterations have warmed
 * the pool. The numbers are printed for the notes. These are about leaks, not speed: tiny model, tiny
 * batches. (Each test sets its own timeout: the projects do not inherit the root testTimeout.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { isBrowser, setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { nn } = eg;
const MiB = 2 ** 20;
const fmt = (m: eg.MemoryInfo) => `tensors ${m.numTensors}, live ${(m.numBytes / 1024).toFixed(1)} KiB in ${m.numBuffers} buffers, pool ${(m.pooledBytes / 1024).toFixed(1)} KiB, wasm ${(m.wasmBytes / MiB).toFixed(1)} MiB`;

const mlp = () => new nn.Sequential(new nn.Linear(8, 16, { seed: 1 }), new nn.BatchNorm1d(16), new nn.ReLU(), new nn.Dropout(0.1), new nn.Linear(16, 3, { seed: 2 }));

describe('soak', () => {
  it('10^4 training steps: live tensors, pool and wasm memory stay flat', async () => {
    const n = 200;
    const x = eg.tensor(vals(n * 8, 31), [n, 8]);
    const y = eg.tidy(() => x.matmul(eg.tensor(vals(24, 32), [8, 3])).argMax(1).cast('int32'));
    const model = mlp();
    const opt = new eg.optim.Adam(model.parameters(), { lr: 1e-3 });
    const sched = new eg.optim.CosineAnnealingLR(opt, 10_000);
    const ce = (l: eg.Tensor, t: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true });
    model.compile({ optimizer: opt, loss: ce });
    const baseline = eg.memory();
    const samples: eg.MemoryInfo[] = [];
    let steps = 0;
    // Half through fit (shuffled index batches, callbacks, metrics), half through a hand-written
    // loop that makes each batch from JS data, the way streamed data arrives.
    const fitSteps = 5_000;
    const bs = 8;
    const epochs = fitSteps / (n / bs);
    const h = await model.fit(x, y, {
      epochs, batchSize: bs, seed: 1, verbose: 0,
      callbacks: [
        new eg.train.LearningRateScheduler(sched, 'batch'),
        new eg.train.LambdaCallback({ onBatchEnd: () => { if (++steps % 1_000 === 0) samples.push(eg.memory()); } }),
      ],
    });
    expect(h.epoch.length).toBe(epochs);
    const xs = vals(bs * 8, 33);
    const ys = Int32Array.from({ length: bs }, (_, i) => i % 3);
    for (let i = 0; i < 5_000; i++) {
      eg.tidy(() => {
        xs[i % xs.length] = (i % 17) / 17; // new data every step
        const bx = eg.tensor(xs, [bs, 8]);
        const by = eg.tensor(ys, [bs], 'int32');
        opt.zeroGrad();
        ce(model.forward(bx), by).backward();
        opt.step();
      });
      sched.step();
      if (++steps % 1_000 === 0) samples.push(eg.memory());
    }
    expect(steps).toBe(10_000);
    console.log(`[soak] 10^4 training steps (${isBrowser ? 'chromium' : 'node'}):\n  baseline: ${fmt(baseline)}\n${samples.map((m, i) => `  step ${(i + 1) * 1000}: ${fmt(m)}`).join('\n')}`);
    // Warm-up: the first 1,000 steps (Adam's moments and the gradients appear, the pool fills).
    const warm = samples[0];
    for (const m of samples.slice(1)) {
      expect(m.numTensors).toBe(warm.numTensors);
      expect(m.numBytes).toBe(warm.numBytes);
      expect(m.wasmBytes).toBe(warm.wasmBytes);
      expect(m.pooledBytes).toBeLessThanOrEqual(Math.max(warm.pooledBytes, samples[4].pooledBytes));
    }
    // Live tensors above the baseline: Adam's two moments and the .grad of each of the 6 parameters.
    expect(samples[9].numTensors).toBe(baseline.numTensors + 18);
    const finite = eg.tidy(() => model.forward(x).sum().item());
    expect(Number.isFinite(finite)).toBe(true);
    opt.dispose();
    model.dispose();
    x.dispose();
    y.dispose();
  }, 60_000);

  it('10^3 save/load cycles: serialize (or save to a directory) -> loadModel -> dispose leaves memory flat', async () => {
    const model = mlp();
    const opt = new eg.optim.Adam(model.parameters());
    // One step so the optimizer has moments to save too.
    eg.tidy(() => {
      model.forward(eg.tensor(vals(16, 34), [2, 8])).sum().backward();
      opt.step();
    });
    const baseline = eg.memory();
    const samples: eg.MemoryInfo[] = [];
    // Every 4th cycle in Node goes through a directory (saveModel writes it, loadModel reads it back).
    const dir = isBrowser ? null : await (async () => {
      const { mkdtemp } = await import(/* @vite-ignore */ 'node:fs/promises' as string);
      const { tmpdir } = await import(/* @vite-ignore */ 'node:os' as string);
      return mkdtemp(`${tmpdir()}/edgegrad-soak-`) as Promise<string>;
    })();
    for (let i = 1; i <= 1_000; i++) {
      const viaDir = dir !== null && i % 4 === 0;
      const src = viaDir ? (await eg.saveModel(model, dir, { optimizer: opt }), dir) : eg.serializeModel(model, { optimizer: opt });
      const opt2 = new eg.optim.Adam(model.parameters());
      const { model: m } = await eg.loadModel(src, { optimizer: opt2 });
      if (i % 250 === 0) {
        m.eval();
        model.eval();
        expect(eg.tidy(() => Array.from(m.forward(eg.ones([1, 8])).dataSync()))).toEqual(eg.tidy(() => Array.from(model.forward(eg.ones([1, 8])).dataSync())));
        model.train();
      }
      m.dispose();
      opt2.dispose();
      if (i % 100 === 0) samples.push(eg.memory());
    }
    console.log(`[soak] 10^3 save/load cycles (${isBrowser ? 'chromium' : 'node'}):\n  baseline: ${fmt(baseline)}\n${samples.map((m, i) => `  cycle ${(i + 1) * 100}: ${fmt(m)}`).join('\n')}`);
    const warm = samples[0];
    for (const m of samples) {
      expect(m.numTensors).toBe(baseline.numTensors);
      expect(m.numBytes).toBe(baseline.numBytes);
    }
    for (const m of samples.slice(1)) {
      expect(m.wasmBytes).toBe(warm.wasmBytes);
      expect(m.pooledBytes).toBeLessThanOrEqual(warm.pooledBytes);
    }
    opt.dispose();
    model.dispose();
  }, 60_000);
});
