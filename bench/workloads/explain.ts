/**
 * Explainability on the digits CNN of the main job (8x8x1 → conv3x3·32 → BN → ReLU → maxpool →
 * conv3x3·64 → BN → ReLU → maxpool → dense 10; eval mode, seeded random weights with random
 * BatchNorm statistics): Integrated Gradients (50 steps, riemann_trapezoid, zero baseline, 32
 * images, all 32 × 50 rows in one forward/backward pass) against the same algorithm written with
 * tfjs-wasm's `tf.grad` on the same weights; KernelSHAP (200 samples) and Occlusion (2x2 window,
 * stride 1) timings for edgegrad alone.
 */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadTfjs } from '../lib/peers.js';

const N = 32;
const STEPS = 50;
const IG_SIZE = `${STEPS} steps x ${N} images`;
const images = randomFloats(N * 64, 31).map((v) => (v + 1) / 2);
const targets = Int32Array.from({ length: N }, (_, i) => i % 10);
// Weights in edgegrad's layouts (conv HWIO, as tfjs; linear [out, in]).
const w1 = randomFloats(9 * 32, 32).map((v) => v * 0.5);
const w2 = randomFloats(9 * 32 * 64, 33).map((v) => v * 0.1);
const w3 = randomFloats(10 * 256, 34).map((v) => v * 0.1);
const b3 = randomFloats(10, 35).map((v) => v * 0.1);
const bn = (c: number, seed: number) => ({
  weight: randomFloats(c, seed).map((v) => 1 + 0.2 * v), bias: randomFloats(c, seed + 1).map((v) => 0.1 * v),
  mean: randomFloats(c, seed + 2).map((v) => 0.1 * v), variance: randomFloats(c, seed + 3).map((v) => 1 + 0.5 * v),
});
const bn1 = bn(32, 40);
const bn2 = bn(64, 50);
const EPS = 1e-5;

const workload: Workload = {
  jobs: () => [{ engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 }, { engine: 'tfjs-wasm', threads: 1 }],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    const rec = (workload: string, size: string, ms: number, extra?: Record<string, number | string>, note?: string) =>
      out.push({ workload, engine: job.engine, size, threads: job.threads, medianMs: ms, gflops: null, extra, note });
    // Both engines share the quadrature (edgegrad's, Captum's riemann_trapezoid).
    const { alphas, weights } = eg.explain.quadrature('riemann_trapezoid', STEPS);
    if (job.engine === 'edgegrad') {
      await eg.init({ threads: job.threads });
      eg.setNumThreads(job.threads);
      const { nn, explain } = eg;
      const model = new nn.Sequential(
        new nn.Conv2d(1, 32, 3, { padding: 'same', bias: false }), new nn.BatchNorm2d(32), new nn.ReLU(), new nn.MaxPool2d(2),
        new nn.Conv2d(32, 64, 3, { padding: 'same', bias: false }), new nn.BatchNorm2d(64), new nn.ReLU(), new nn.MaxPool2d(2),
        new nn.Flatten(), new nn.Dropout(0.3, 3), new nn.Linear(256, 10),
      );
      const t = (a: Float32Array, s?: number[]) => eg.tensor(a, s);
      model.loadStateDict({
        '0.weight': t(w1, [3, 3, 1, 32]), '1.weight': t(bn1.weight), '1.bias': t(bn1.bias), '1.running_mean': t(bn1.mean), '1.running_var': t(bn1.variance),
        '4.weight': t(w2, [3, 3, 32, 64]), '5.weight': t(bn2.weight), '5.bias': t(bn2.bias), '5.running_mean': t(bn2.mean), '5.running_var': t(bn2.variance),
        '10.weight': t(w3, [10, 256]), '10.bias': t(b3),
      });
      model.eval();
      const x = eg.tensor(images, [N, 8, 8, 1]);
      const ig = new explain.IntegratedGradients(model);
      const igOpts = { target: targets, nSteps: STEPS, method: 'riemann_trapezoid' as const, internalBatchSize: N * STEPS };
      const attr = ig.attribute(x, igOpts);
      const sum = (attr.dataSync() as Float32Array).reduce((a, b) => a + Math.abs(b), 0);
      attr.dispose();
      rec('explain-ig', IG_SIZE, await measure(() => ig.attribute(x, igOpts).dispose()), { rowsPerPass: N * STEPS, sumAbsAttr: sum });
      const ks = new explain.KernelShap(model);
      rec('explain-kernelshap', `200 samples x ${N} images`, await measure(() => ks.attribute(x, { target: targets, nSamples: 200, seed: 1 }).dispose(), 3),
        { features: 64, rows: N * 200 });
      const occ = new explain.Occlusion(model);
      rec('explain-occlusion', `2x2 window, stride 1 x ${N} images`, await measure(() => occ.attribute(x, { target: targets, slidingWindowShapes: [2, 2, 1] }).dispose(), 3),
        { windows: 49, rows: N * 50 });
    } else {
      const { tf, note } = await loadTfjs('wasm');
      type T4 = import('@tensorflow/tfjs').Tensor4D;
      const k1 = tf.tensor4d(w1, [3, 3, 1, 32]);
      const k2 = tf.tensor4d(w2, [3, 3, 32, 64]);
      const k3 = tf.tensor2d(w3, [10, 256]).transpose();
      const c3 = tf.tensor1d(b3);
      const norm = (p: ReturnType<typeof bn>) => [p.mean, p.variance, p.bias, p.weight].map((a) => tf.tensor1d(a));
      const [m1, v1, o1, s1] = norm(bn1);
      const [m2, v2, o2, s2] = norm(bn2);
      const forward = (h: T4) => {
        h = tf.maxPool(tf.relu(tf.batchNorm(tf.conv2d(h, k1, 1, 'same'), m1, v1, o1, s1, EPS)) as T4, 2, 2, 'valid');
        h = tf.maxPool(tf.relu(tf.batchNorm(tf.conv2d(h, k2, 1, 'same'), m2, v2, o2, s2, EPS)) as T4, 2, 2, 'valid');
        return tf.matMul(h.reshape([h.shape[0], 256]), k3).add(c3);
      };
      const x = tf.tensor4d(images, [N, 8, 8, 1]);
      // Rows step-major (row k·N + i: example i at alpha_k), the target output of each row seeded.
      const alphaCol = tf.tensor4d(Float32Array.from({ length: N * STEPS }, (_, r) => alphas[Math.floor(r / N)]), [N * STEPS, 1, 1, 1]);
      const weightCol = tf.tensor4d(Float32Array.from(weights), [STEPS, 1, 1, 1]);
      const oneHot = tf.oneHot(tf.tensor1d(Int32Array.from({ length: N * STEPS }, (_, r) => targets[r % N]), 'int32'), 10);
      const grad = tf.grad((inp: import('@tensorflow/tfjs').Tensor) => forward(inp as T4).mul(oneHot).sum());
      const attribute = () => tf.tidy(() => {
        const baseline = tf.zerosLike(x);
        const diff = x.sub(baseline);
        const points = baseline.tile([STEPS, 1, 1, 1]).add(diff.tile([STEPS, 1, 1, 1]).mul(alphaCol));
        const g = grad(points).reshape([STEPS, N * 64]).mul(weightCol.reshape([STEPS, 1])).sum(0).reshape([N, 8, 8, 1]);
        return g.mul(diff);
      });
      const attr = attribute();
      const sum = (attr.dataSync() as Float32Array).reduce((a, b) => a + Math.abs(b), 0);
      attr.dispose();
      rec('explain-ig', IG_SIZE, await measure(() => attribute().dispose()), { rowsPerPass: N * STEPS, sumAbsAttr: sum }, note);
    }
    return out;
  },
};
export default workload;
await main(workload, import.meta.url);
