/**
 * DP-SGD training steps (`eg.privacy.PrivacyEngine`'s trainStep) against the same model's
 * non-private step in the same process, at batch 256: the MNIST CNN (28x28x1 → conv16 4x4 s2 →
 * ReLU → conv32 4x4 s2 → ReLU → fc100 → ReLU → fc10) and the MLP 784-256-128-10. DP variants:
 * materialised per-example gradients with flat clipping, and ghost clipping. Every step is the
 * whole optimizer step (forward, backward(s), clipping, noise, SGD update). Memory: the bytes the
 * engine holds (live + pooled) after a few steps from an emptied pool, i.e. the step's working set.
 */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';

const B = 256;

function cnn(): eg.nn.Sequential {
  const { nn } = eg;
  return new nn.Sequential(
    new nn.Conv2d(1, 16, 4, { stride: 2, seed: 1 }), new nn.ReLU(),
    new nn.Conv2d(16, 32, 4, { stride: 2, seed: 2 }), new nn.ReLU(),
    new nn.Flatten(), new nn.Linear(5 * 5 * 32, 100, { seed: 3 }), new nn.ReLU(), new nn.Linear(100, 10, { seed: 4 }),
  );
}
function mlp(): eg.nn.Sequential {
  const { nn } = eg;
  return new nn.Sequential(new nn.Linear(784, 256, { seed: 1 }), new nn.ReLU(), new nn.Linear(256, 128, { seed: 2 }), new nn.ReLU(), new nn.Linear(128, 10, { seed: 3 }));
}

const MODELS = [
  { name: 'mnist-cnn', make: cnn, shape: [B, 28, 28, 1] },
  { name: 'mlp 784-256-128-10', make: mlp, shape: [B, 784] },
];
type Variant = 'non-private' | 'dp flat' | 'dp ghost';
const VARIANTS: Variant[] = ['non-private', 'dp flat', 'dp ghost'];

const loss = (logits: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(logits, y, { fromLogits: true });

/** Bytes the engine holds now, live and pooled (MB). */
const heldMB = () => {
  const m = eg.memory();
  return (m.numBytes + m.pooledBytes) / 2 ** 20;
};

const workload: Workload = {
  jobs: () => [{ engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 }],
  async run(job: Job): Promise<BenchRecord[]> {
    await eg.init({ threads: job.threads });
    eg.setNumThreads(job.threads);
    eg.manualSeed(1);
    const out: BenchRecord[] = [];
    for (const spec of MODELS) {
      const x = eg.tensor(randomFloats(spec.shape.reduce((a, b) => a * b, 1), 5).map((v) => (v + 1) / 2), spec.shape);
      const y = eg.tensor(Int32Array.from(randomFloats(B, 6), (v) => Math.floor((v + 1) * 5) % 10), [B], 'int32');
      const times = new Map<Variant, number>();
      for (const variant of VARIANTS) {
        const model = spec.make();
        const optimizer = new eg.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
        const trainStep: eg.train.TrainStep = variant === 'non-private'
          ? eg.train.standardStep
          : new eg.privacy.PrivacyEngine({ accountant: 'rdp' }).makePrivate({
            model, optimizer, data: [x, y], batchSize: B, noiseMultiplier: 1, maxGradNorm: 1, clipping: variant === 'dp ghost' ? 'ghost' : 'flat',
          }).trainStep;
        const params = model.trainableParameters();
        const step = () => eg.tidy(() => {
          trainStep({ model, optimizer, loss, x, y, params, epoch: 0, step: 0, epochs: 1, batchesPerEpoch: null });
        });
        eg.releasePool();
        for (let i = 0; i < 3; i++) step();
        const workingSetMB = heldMB();
        const before = eg.memory().numTensors;
        const ms = await measure(step, 10);
        times.set(variant, ms);
        const base = times.get('non-private')!;
        out.push({
          workload: 'dp-step', engine: 'edgegrad', size: `${spec.name} b${B} ${variant}`, threads: job.threads, medianMs: ms, gflops: null,
          extra: { samplesPerSec: B / (ms / 1000), vsNonPrivate: ms / base, workingSetMB, liveTensorGrowth: eg.memory().numTensors - before },
        });
        model.dispose();
      }
      eg.dispose([x, y]);
    }
    return out;
  },
};
export default workload;
await main(workload, import.meta.url);
