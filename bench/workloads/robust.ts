/**
 * Adversarial training and attack cost on Wong et al.'s MNIST CNN (28x28x1 → conv 16 4x4 s2 →
 * conv 32 4x4 s2 → fc 100 → fc 10; seeded random weights, random images in [0, 1]):
 * - `robust-at-epoch`: one epoch of `fit` over 1,000 images (batch 100) with the standard step and
 *   with PGD-AT (`eg.robust.adversarialStep`, 7 steps); the PGD-AT record carries its cost relative
 *   to the standard epoch (expected ≈ steps + 1: each attack step is a forward and an input-only
 *   backward, the training step a forward and a full backward);
 * - `robust-pgd20`: PGD-20 (L∞ ε = 0.3, step 0.01, random start) on a batch of 100 images, against
 *   the same attack written with tfjs-wasm's `tf.grad` on the same weights (images/s in `extra`).
 */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, timeIt, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadTfjs } from '../lib/peers.js';

const N_ATTACK = 100;
const N_EPOCH = 1000;
const AT_STEPS = 7;
const EPS = 0.3;
const ALPHA = 0.01;
const PGD_STEPS = 20;
const PGD_SIZE = `PGD-20 x ${N_ATTACK} images`;
const images = randomFloats(N_EPOCH * 784, 61).map((v) => (v + 1) / 2);
const labels = Int32Array.from({ length: N_EPOCH }, (_, i) => (i * 7) % 10);
// Weights in edgegrad's layouts (conv HWIO, as tfjs; linear [out, in]), He-like scales.
const w1 = randomFloats(16 * 16, 62).map((v) => v * 0.6);
const b1 = randomFloats(16, 63).map((v) => v * 0.05);
const w2 = randomFloats(16 * 16 * 32, 64).map((v) => v * 0.15);
const b2 = randomFloats(32, 65).map((v) => v * 0.05);
const w3 = randomFloats(100 * 1568, 66).map((v) => v * 0.06);
const b3 = randomFloats(100, 67).map((v) => v * 0.05);
const w4 = randomFloats(10 * 100, 68).map((v) => v * 0.25);
const b4 = randomFloats(10, 69).map((v) => v * 0.05);

function edgegradCnn(): eg.nn.Sequential {
  const { nn } = eg;
  const m = new nn.Sequential(
    new nn.Conv2d(1, 16, 4, { stride: 2, padding: 1 }), new nn.ReLU(),
    new nn.Conv2d(16, 32, 4, { stride: 2, padding: 1 }), new nn.ReLU(),
    new nn.Flatten(), new nn.Linear(1568, 100), new nn.ReLU(), new nn.Linear(100, 10),
  );
  const t = (a: Float32Array, s?: number[]) => eg.tensor(a, s);
  m.loadStateDict({
    '0.weight': t(w1, [4, 4, 1, 16]), '0.bias': t(b1), '2.weight': t(w2, [4, 4, 16, 32]), '2.bias': t(b2),
    '5.weight': t(w3, [100, 1568]), '5.bias': t(b3), '7.weight': t(w4, [10, 100]), '7.bias': t(b4),
  });
  return m;
}

const workload: Workload = {
  jobs: () => [{ engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 }, { engine: 'tfjs-wasm', threads: 1 }],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    const rec = (workload: string, size: string, ms: number, extra?: Record<string, number | string>, note?: string) =>
      out.push({ workload, engine: job.engine, size, threads: job.threads, medianMs: ms, gflops: null, extra, note });
    if (job.engine === 'edgegrad') {
      await eg.init({ threads: job.threads });
      eg.setNumThreads(job.threads);
      const xAll = eg.tensor(images, [N_EPOCH, 28, 28, 1]);
      const yAll = eg.tensor(labels, [N_EPOCH], 'int32');

      // PGD-20 on 100 images, model in eval mode.
      const model = edgegradCnn().eval();
      const [x, y] = eg.tidy(() => [xAll.slice([0, 0, 0, 0], [N_ATTACK, 28, 28, 1]), yAll.slice([0], [N_ATTACK])]);
      const pgd = new eg.attacks.PGD(model, { eps: EPS, stepSize: ALPHA, steps: PGD_STEPS, seed: 1 });
      const first = pgd.perturb(x, y);
      const fooled = first.success.filter(Boolean).length;
      first.adversarial.dispose();
      const pgdMs = await measure(() => pgd.perturb(x, y).adversarial.dispose(), 5);
      rec('robust-pgd20', PGD_SIZE, pgdMs, { imagesPerSec: Math.round((N_ATTACK * 1000) / pgdMs), fooled });

      // One epoch of fit: the standard step, then PGD-AT (7 steps), on fresh copies of the model.
      const epoch = async (trainStep?: eg.train.TrainStep) => {
        const m = edgegradCnn();
        const optimizer = new eg.optim.SGD(m.parameters(), { lr: 0.01, momentum: 0.9 });
        m.compile({ optimizer, loss: (l, t) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true }) });
        return timeIt(async () => { await m.fit(xAll, yAll, { epochs: 1, batchSize: 100, seed: 1, verbose: 0, trainStep }); }, 3, 1)
          .finally(() => { optimizer.dispose(); m.dispose(); });
      };
      const size = `1 epoch x ${N_EPOCH} images`;
      const standardMs = await epoch();
      rec('robust-at-epoch', `standard, ${size}`, standardMs);
      const atMs = await epoch(eg.robust.adversarialStep({ method: 'pgd', eps: EPS, steps: AT_STEPS, stepSize: ALPHA, seed: 1 }));
      rec('robust-at-epoch', `PGD-${AT_STEPS} AT, ${size}`, atMs, { ratioToStandard: +(atMs / standardMs).toFixed(2), expectedRatio: AT_STEPS + 1 });
      eg.dispose([xAll, yAll, x, y]);
      model.dispose();
    } else {
      const { tf, note } = await loadTfjs('wasm');
      type T4 = import('@tensorflow/tfjs').Tensor4D;
      const k1 = tf.tensor4d(w1, [4, 4, 1, 16]);
      const c1 = tf.tensor1d(b1);
      const k2 = tf.tensor4d(w2, [4, 4, 16, 32]);
      const c2 = tf.tensor1d(b2);
      const k3 = tf.tensor2d(w3, [100, 1568]).transpose();
      const c3 = tf.tensor1d(b3);
      const k4 = tf.tensor2d(w4, [10, 100]).transpose();
      const c4 = tf.tensor1d(b4);
      const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [1, 1], [1, 1], [0, 0]];
      const forward = (h: T4) => {
        h = tf.relu(tf.conv2d(h, k1, 2, pad).add(c1)) as T4;
        h = tf.relu(tf.conv2d(h, k2, 2, pad).add(c2)) as T4;
        return tf.relu(tf.matMul(h.reshape([h.shape[0], 1568]), k3).add(c3)).matMul(k4).add(c4);
      };
      const x = tf.tensor4d(images.subarray(0, N_ATTACK * 784), [N_ATTACK, 28, 28, 1]);
      const y = tf.oneHot(tf.tensor1d(labels.subarray(0, N_ATTACK), 'int32'), 10);
      // The gradient of the summed cross-entropy with respect to the input batch.
      const grad = tf.grad((inp: import('@tensorflow/tfjs').Tensor) => tf.losses.softmaxCrossEntropy(y, forward(inp as T4), undefined, 0, tf.Reduction.SUM));
      let seed = 1;
      // torchattacks' PGD: uniform start in the ε-ball, steps of α·sign(∇), projection, clip to [0, 1].
      const attack = () => tf.tidy(() => {
        let adv = x.add(tf.randomUniform(x.shape, -EPS, EPS, 'float32', seed++)).clipByValue(0, 1);
        for (let s = 0; s < PGD_STEPS; s++) {
          const g = grad(adv);
          const next = adv.add(g.sign().mul(ALPHA));
          adv = x.add(next.sub(x).clipByValue(-EPS, EPS)).clipByValue(0, 1);
        }
        return adv;
      });
      const first = attack();
      const pred = tf.tidy(() => forward(first as T4).argMax(-1).dataSync());
      const fooled = Array.from(pred).filter((p, i) => p !== labels[i]).length;
      first.dispose();
      const ms = await measure(() => attack().dispose(), 5);
      rec('robust-pgd20', PGD_SIZE, ms, { imagesPerSec: Math.round((N_ATTACK * 1000) / ms), fooled }, note);
    }
    return out;
  },
};
export default workload;
await main(workload, import.meta.url);
