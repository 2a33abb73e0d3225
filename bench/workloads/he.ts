/**
 * Encrypted inference (`eg.he`, CKKS on node-seal) next to the plaintext time of the same model in
 * the same process, for the three models of examples/he-inference (seeded weights; the timing of
 * a compiled model depends on its shapes and zero pattern, not on trained values):
 * - `logreg`: breast cancer, Linear 30→2 (depth 1);
 * - `mlp`: 30-16-2 with x² (depth 3);
 * - `cnn`: digits 8x8, Conv2d 1→4 3x3 stride 2 → BatchNorm → x² → Linear 64→10 (depth 3).
 * Records per model: `"<model> he b1"` (one example: encrypt + evaluate + decrypt), `"<model> he
 * batch"` (one ciphertext full of examples, `extra.predictionsPerSecond`), and the plaintext
 * forward at batch 1 and at the same batch (`"<model> plain b1"`, `"<model> plain batch"`). Key
 * generation is timed once (`extra.keygenMs`). SEAL runs single-threaded: one job, one thread.
 * On a shared machine wall time includes waiting for a core, so the batch record also gives the
 * process CPU time per batch (`extra.cpuMs`) and the rate per CPU-second (`extra.predictionsPerCpuSecond`).
 * Anchor: CryptoNets (Gilad-Bachrach et al. 2016) ≈ 59,000 MNIST predictions per hour with slot
 * batching on a server CPU (16.4/s); `extra.vsCryptoNets` on the digits CNN is our per-core rate
 * over that.
 */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, timeIt, type BenchRecord, type Job, type Workload } from '../harness.js';
import { buildModel, MODEL_NAMES, MODEL_SPECS } from '../../examples/he-inference/models.js';

/** CryptoNets' reported throughput, predictions per second. */
const CRYPTONETS_PER_SECOND = 59000 / 3600;

const workload: Workload = {
  jobs: () => [{ engine: 'edgegrad', threads: 1 }],
  async run(job: Job): Promise<BenchRecord[]> {
    await eg.init({ threads: job.threads });
    const out: BenchRecord[] = [];
    for (const name of MODEL_NAMES) {
      const spec = MODEL_SPECS[name];
      const model = buildModel(name).eval();
      const compiled = eg.he.compile(model, { inputShape: spec.inputShape, packing: 'batch' });
      const ctx = await eg.he.contextForModel(compiled);
      const t0 = performance.now();
      const client = ctx.generateKeys({ galois: compiled.galoisSteps });
      const bundle = client.publicBundle();
      const keygenMs = performance.now() - t0;
      const evaluator = await compiled.evaluator(bundle);
      const per = compiled.examplesPerCiphertext(ctx.params.slots);
      const features = spec.inputShape.reduce((a, b) => a * b, 1);
      const one = eg.tensor(randomFloats(features, 1), [1, ...spec.inputShape]);
      const batch = eg.tensor(randomFloats(per * features, 2), [per, ...spec.inputShape]);
      const encrypted = (x: eg.Tensor) => () => {
        const c = client.encrypt(x, compiled.encryptOptions);
        const y = evaluator.forward(c);
        client.decrypt(y).dispose();
        c.dispose();
        y.dispose();
      };
      const plain = (x: eg.Tensor) => () => eg.noGrad(() => model.forward(x)).dispose();
      const p = ctx.params;
      const extra = { depth: compiled.depth, polyModulusDegree: p.polyModulusDegree, coeffModulusBits: p.coeffModulusBits.join('/'), examplesPerCiphertext: per, rotations: compiled.rotationCount, keygenMs: Math.round(keygenMs), bundleMB: +(bundle.length / 2 ** 20).toFixed(2) };
      const heOne = await timeIt(encrypted(one), 5, 1);
      const heBatch = await timeIt(encrypted(batch), 5, 1);
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < 3; i++) encrypted(batch)();
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 3000;
      const plainOne = await measure(plain(one));
      const plainBatch = await measure(plain(batch));
      const rate = (per / heBatch) * 1000;
      out.push(
        { workload: 'he', engine: 'edgegrad', size: `${name} he b1`, threads: job.threads, medianMs: heOne, gflops: null, extra: { ...extra, slowdownVsPlain: +(heOne / plainOne).toFixed(0) } },
        {
          workload: 'he', engine: 'edgegrad', size: `${name} he batch`, threads: job.threads, medianMs: heBatch, gflops: null,
          extra: {
            ...extra, batch: per, predictionsPerSecond: +rate.toFixed(1), cpuMs: +cpuMs.toFixed(0), predictionsPerCpuSecond: +((per / cpuMs) * 1000).toFixed(1), slowdownVsPlain: +(heBatch / plainBatch).toFixed(0),
            ...(name === 'cnn' ? { vsCryptoNets: +(rate / CRYPTONETS_PER_SECOND).toFixed(2), vsCryptoNetsPerCpuSecond: +((per / cpuMs) * 1000 / CRYPTONETS_PER_SECOND).toFixed(2) } : {}),
          },
        },
        { workload: 'he', engine: 'edgegrad', size: `${name} plain b1`, threads: job.threads, medianMs: plainOne, gflops: null },
        { workload: 'he', engine: 'edgegrad', size: `${name} plain batch`, threads: job.threads, medianMs: plainBatch, gflops: null, extra: { batch: per } },
      );
      eg.dispose([one, batch]);
      evaluator.dispose();
      client.dispose();
      ctx.dispose();
      model.dispose();
    }
    return out;
  },
};

await main(workload, import.meta.url);
