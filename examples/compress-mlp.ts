/**
 * The larger compression benchmark (issue 5): an MLP (784-512-256-10, 535k parameters) on MNIST
 * digits, compressed every way edgegrad knows, with a report in reports/compress-mlp/
 * (summary.json and compression.md).
 *
 * Data: the 10,000-image MNIST test set bundled in examples/data/mnist (attribution there), split
 * 8,000 for training and 2,000 for testing with a fixed seed.
 *
 *   npx tsx examples/compress-mlp.ts [--out reports/compress-mlp] [--epochs 12]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as eg from 'edgegrad';
import { compressionTargets } from './lib/compression-report.js';
import { loadMnist } from './lib/mnist.js';

const { values: args } = parseArgs({ options: { out: { type: 'string', default: 'reports/compress-mlp' }, epochs: { type: 'string', default: '12' } } });
const outDir = args.out!;
const epochs = Number(args.epochs);
const C = eg.compress;
const { nn } = eg;

const t0 = performance.now();
const info = await eg.init();
console.log(`edgegrad ${info.build} · ${info.threads} thread(s) · ${info.runtime}`);
eg.manualSeed(7);

const data = await loadMnist('test', { layout: 'flat' });
const [xTrain, yTrain, xTest, yTest] = eg.data.trainTestSplit([data.x, data.y], { testSize: 0.2, seed: 3 });
data.x.dispose();
data.y.dispose();
console.log(`data: ${xTrain.shape[0]} training and ${xTest.shape[0]} test images (MNIST test set, split)`);

const lossFn = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });
const pts = (a: number) => +(100 * a).toFixed(2);
const round = (x: number, d = 3) => +x.toFixed(d);

function mlp(hidden: number[], seed: number, dropout = 0): eg.nn.Sequential {
  const layers: eg.nn.Module[] = [];
  let inF = 784;
  hidden.forEach((h, i) => {
    layers.push(new nn.Linear(inF, h, { seed: seed + i, weightInit: 'heNormal' }), new nn.ReLU());
    if (dropout) layers.push(new nn.Dropout(dropout, seed + 100 + i));
    inF = h;
  });
  layers.push(new nn.Linear(inF, 10, { seed: seed + 50 }));
  return new nn.Sequential(...layers);
}

async function train(m: eg.nn.Module, ep: number, lr: number, callbacks: eg.train.Callback[] = [], verbose: 0 | 1 = 0): Promise<void> {
  const optimizer = new eg.optim.Adam(m.trainableParameters(), { lr });
  const sched = new eg.optim.CosineAnnealingLR(optimizer, ep, lr / 30);
  m.compile({ optimizer, loss: lossFn, metrics: ['accuracy'] });
  await m.fit(xTrain, yTrain, { epochs: ep, batchSize: 64, seed: 1, verbose, callbacks: [...callbacks, new eg.train.LearningRateScheduler(sched)] });
  optimizer.dispose();
}

function clone(m: eg.nn.Module): eg.nn.Module {
  const c = nn.moduleFromConfig(m.toConfig());
  c.loadStateDict(m.stateDict());
  return c;
}

// The model.
const model = mlp([512, 256], 1, 0.2);
console.log(`model: MLP 784-512-256-10, ${model.numParameters()} parameters`);
let t = performance.now();
await train(model, epochs, 1e-3, [], 1);
console.log(`trained in ${((performance.now() - t) / 1000).toFixed(1)} s`);
const test: [eg.Tensor, eg.Tensor] = [xTest, yTest];
const latency = { x: xTest, reps: 10 };
const base = C.compressionReport(model, { name: 'float32 MLP', data: test, latency });
// Each variant is timed alternately with the float model, so the speed-ups survive machine drift.
const vsBase = { ...latency, against: model };
const rows = [base];
console.log(`float32: ${pts(base.accuracy!)}%`);

// int8 post-training quantization (and the three calibration methods).
const calib: Record<string, number> = {};
let q: eg.compress.QuantizedModel | null = null;
for (const method of ['minmax', 'percentile', 'mse'] as const) {
  const m = C.quantize(model, xTrain, { method, maxSamples: 2048 });
  calib[method] = C.evalAccuracy(m, xTest, yTest);
  if (method === 'percentile') q = m;
  else m.dispose();
}
const qs = C.compressionReport(q!, { name: 'int8 (post-training, percentile)', data: test, latency: vsBase, baseline: base });
rows.push(qs);
await C.saveQuantizedModel(q!, join(outDir, 'model-int8'));
q!.dispose();

// Quantization-aware training: one epoch of fine-tuning with fake quantization.
t = performance.now();
const qat = C.prepareQAT(model, { calibrationData: xTrain, maxSamples: 2048 });
await train(qat, 1, 1e-4);
const qq = C.convertQAT(qat);
const qatStats = C.compressionReport(qq, { name: 'int8 (QAT, 1 epoch)', data: test, baseline: base });
rows.push(qatStats);
qq.dispose();
qat.dispose();
console.log(`QAT: ${((performance.now() - t) / 1000).toFixed(1)} s`);

// 90% unstructured sparsity, gradually.
const pruned = clone(model);
const pruner = new C.Pruner(pruned, { scope: 'global' });
const steps = Math.ceil(xTrain.shape[0] / 64);
await train(pruned, 10, 1e-3, [new C.PruningCallback(pruner, new C.PolynomialDecay({ finalSparsity: 0.9, endStep: 6 * steps, frequency: 10 }))]);
const ps = C.compressionReport(pruned, { name: '90% sparse (gradual, global)', data: test, latency: vsBase, baseline: base });
rows.push(ps);
const sparsity = C.sparsityReport(pruned, { include: (n, p) => p.rank >= 2 });
pruner.dispose();
pruned.dispose();

// Structured: half the neurons of both hidden layers, fine-tuned.
const { model: slim } = C.structuredPrune(model, { ratio: 0.5, inputShape: [784] });
await train(slim, 4, 3e-4);
const ss = C.compressionReport(slim, { name: 'half the neurons (structured)', data: test, latency: vsBase, baseline: base });
rows.push(ss);
slim.dispose();

// Distillation: a 784-128-10 student (19% of the parameters) with and without the teacher.
const studentEpochs = 30;
const alone: number[] = [];
const taught: number[] = [];
let studentStats: eg.compress.CompressionStats | null = null;
for (const seed of [11, 21]) {
  for (const alpha of [0, 0.9]) {
    const s = mlp([128], seed);
    const optimizer = new eg.optim.Adam(s.trainableParameters(), { lr: 1e-3 });
    const sched = new eg.optim.CosineAnnealingLR(optimizer, studentEpochs, 3e-5);
    await C.distill(xTrain, yTrain, { teacher: model, student: s, epochs: studentEpochs, batchSize: 64, optimizer, onEpochEnd: () => sched.step(), temperature: 4, alpha, seed });
    const acc = C.evalAccuracy(s, xTest, yTest);
    (alpha === 0 ? alone : taught).push(acc);
    if (alpha > 0 && seed === 11) studentStats = C.compressionReport(s, { name: 'distilled student 784-128-10', data: test, latency: vsBase, baseline: base });
    optimizer.dispose();
    s.dispose();
  }
}
rows.push(studentStats!);
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

// Binary weights: the hidden 512->256 layer binarized (first and last layers float), fine-tuned.
const bin = C.binarizeModel(model);
await train(bin, 4, 3e-4, [new C.BinaryWeightClip()]);
const packed = C.BinaryModel.fromModule(bin, { inputShape: [784] });
const bs = C.compressionReport(packed, { name: 'binary hidden layer (bit-packed)', data: test, latency: vsBase, baseline: base });
rows.push(bs);
const wb = packed.weightBytes();
packed.dispose();
bin.dispose();

const summary = {
  task: 'compress-mlp',
  backend: { build: info.build, threads: info.threads, runtime: info.runtime },
  data: { source: 'MNIST test set (examples/data/mnist)', train: xTrain.shape[0], test: xTest.shape[0] },
  model: { layers: [784, 512, 256, 10], parameters: base.parameters, epochs },
  baseline: { testAccuracy: base.accuracy, bytesOnDisk: base.bytesOnDisk, latencyMs: round(base.latencyMs!) },
  int8: { testAccuracy: qs.accuracy, bytesOnDisk: qs.bytesOnDisk, sizeRatio: round(qs.vsBaseline!.sizeRatio), latencyMs: round(qs.latencyMs!), speedup: round(qs.vsBaseline!.speedup!), calibration: calib },
  qat: { testAccuracy: qatStats.accuracy },
  pruned: { testAccuracy: ps.accuracy, sparsity: round(sparsity.total.sparsity, 4), layers: sparsity.layers.map((l) => ({ name: l.name, sparsity: round(l.sparsity, 4) })), sparseBytes: ps.sparseBytes },
  structured: { testAccuracy: ss.accuracy, parameters: ss.parameters, bytesOnDisk: ss.bytesOnDisk, latencyMs: round(ss.latencyMs!), speedup: round(ss.vsBaseline!.speedup!) },
  distilled: { studentParameters: studentStats!.parameters, parameterRatio: round(studentStats!.parameters / base.parameters, 4), temperature: 4, alpha: 0.9, epochs: studentEpochs, alone, distilled: taught, aloneMean: round(mean(alone), 4), distilledMean: round(mean(taught), 4) },
  binary: { testAccuracy: bs.accuracy, bytesOnDisk: bs.bytesOnDisk, weightBytes: wb, binaryWeightRatio: round(wb.binaryAsFloat32 / wb.binary, 2) },
  targets: compressionTargets({ base, int8: qs, pruned: ps, structured: ss, alone, distilled: taught, weightBytes: wb }),
  totalSeconds: (performance.now() - t0) / 1000,
};
await mkdir(outDir, { recursive: true });
await writeFile(join(outDir, 'summary.json'), JSON.stringify(summary, null, 2));
const md = [
  '# MNIST MLP: compression', '',
  `MLP 784-512-256-10 trained ${epochs} epochs on ${xTrain.shape[0]} MNIST images; test set ${xTest.shape[0]} images. Latency: median of ${latency.reps} forward passes over the test set (batch ${xTest.shape[0]}), ${info.threads} thread(s); each speed-up is against the float model timed alternately with it.`, '',
  C.formatCompressionTable(rows), '',
  `int8 calibration methods (test accuracy): ${Object.entries(calib).map(([k, v]) => `${k} ${pts(v)}%`).join(', ')}.`, '',
  `Distillation (T = 4, α = 0.9, ${studentEpochs} epochs, same loop and seeds): student alone ${alone.map(pts).join(' / ')}% (mean ${pts(mean(alone))}%), distilled ${taught.map(pts).join(' / ')}% (mean ${pts(mean(taught))}%).`, '',
  `Binary weights: ${wb.binary} bytes of packed bits for ${wb.binaryAsFloat32 / 4} weights (${(wb.binaryAsFloat32 / wb.binary).toFixed(0)}x smaller than float32); the float32 first and last layers take ${wb.float} bytes.`, '',
  `Sparsity per layer (90% model): ${sparsity.layers.map((l) => `${l.name} ${(100 * l.sparsity).toFixed(1)}%`).join(', ')}.`, '',
].join('\n');
await writeFile(join(outDir, 'compression.md'), md);
console.log(C.formatCompressionTable(rows));
console.log(JSON.stringify(summary.targets, null, 1));
console.log(`report written to ${outDir}/ in ${summary.totalSeconds.toFixed(1)} s`);
