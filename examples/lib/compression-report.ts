/**
 * The main job's compression section (issue 5): from the trained digits CNN, builds
 * - an int8 post-training-quantized model (percentile calibration on the training images),
 * - a 90%-sparse model (global magnitude pruning on Zhu & Gupta's gradual schedule while
 *   fine-tuning),
 * - a structurally pruned model with half the conv channels (fine-tuned; physically smaller),
 * - a distilled student with under a tenth of the parameters, against the same student trained
 *   alone with the same loop, schedule and seeds (mean of three seeds; distillation needs the long
 *   schedule: at 30 epochs and fewer its students had not caught up),
 * - a binary-weight model (inner conv binarized, bit-packed; first and last layers float),
 * measures size on disk, accuracy and latency for each, writes `compression.md` and
 * `model-int8/` beside the report, and adds a `compression` key to `summary.json`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as eg from 'edgegrad';

const C = eg.compress;
const { nn } = eg;

export interface CompressionJob {
  model: eg.nn.Module;
  xTrain: eg.Tensor;
  yTrain: eg.Tensor;
  xTest: eg.Tensor;
  yTest: eg.Tensor;
  outDir: string;
  /** `performance.now()` at the start of the job (for the total time in summary.json). */
  t0: number;
}

type Stats = eg.compress.CompressionStats;

const lossFn = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });
const pts = (a: number) => +(100 * a).toFixed(2);
const round = (x: number, d = 3) => +x.toFixed(d);

function clone(m: eg.nn.Module): eg.nn.Module {
  const c = nn.moduleFromConfig(m.toConfig());
  c.loadStateDict(m.stateDict());
  return c;
}

/** Fine-tunes with Adam and a cosine schedule; silent. */
async function fineTune(m: eg.nn.Module, x: eg.Tensor, y: eg.Tensor, epochs: number, lr: number, callbacks: eg.train.Callback[] = []): Promise<void> {
  const optimizer = new eg.optim.Adam(m.trainableParameters(), { lr });
  const sched = new eg.optim.CosineAnnealingLR(optimizer, epochs, lr / 30);
  m.compile({ optimizer, loss: lossFn, metrics: ['accuracy'] });
  await m.fit(x, y, { epochs, batchSize: 32, seed: 5, verbose: 0, callbacks: [...callbacks, new eg.train.LearningRateScheduler(sched)] });
  optimizer.dispose();
}

/** The small CNN used as the student (8 and 16 channels, no dropout). */
function student(seed: number): eg.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 8, 3, { padding: 'same', bias: false, weightInit: 'heNormal', seed }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(8, 16, 3, { padding: 'same', bias: false, weightInit: 'heNormal', seed: seed + 1 }), new nn.BatchNorm2d(16), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(4 * 16, 10, { seed: seed + 2 }),
  );
}

function row(s: Stats) {
  return {
    parameters: s.parameters, nonzeroParameters: s.nonzeroParameters, sparsity: round(s.sparsity, 4), bytesOnDisk: s.bytesOnDisk,
    ...(s.sparseBytes ? { sparseBytes: s.sparseBytes } : {}), testAccuracy: s.accuracy, latencyMs: s.latencyMs !== undefined ? round(s.latencyMs) : undefined,
    latencyBatch: s.latencyBatch,
    ...(s.vsBaseline ? { sizeRatio: round(s.vsBaseline.sizeRatio), accuracyDeltaPoints: s.vsBaseline.accuracyDelta !== undefined ? pts(s.vsBaseline.accuracyDelta) : undefined,
      speedup: s.vsBaseline.speedup !== undefined ? round(s.vsBaseline.speedup) : undefined } : {}),
  };
}

/** Runs the section, writes its files and returns what went into summary.json. */
/** Issue 5's targets for one model's compression figures: value, target, met. */
export function compressionTargets(o: {
  base: Stats; int8: Stats; pruned: Stats; structured: Stats; alone: number[]; distilled: number[];
  weightBytes: { binary: number; binaryAsFloat32: number };
}): Record<string, { value: number | string; target?: string; met: boolean }> {
  const drop = (s: Stats) => pts(o.base.accuracy! - s.accuracy!);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const size = o.int8.vsBaseline!.sizeRatio;
  const speed = o.structured.vsBaseline!.speedup!;
  const bits = o.weightBytes.binaryAsFloat32 / o.weightBytes.binary;
  return {
    int8AccuracyDropPoints: { value: drop(o.int8), target: '<= 0.5', met: drop(o.int8) <= 0.5 },
    int8SizeRatio: { value: round(size), target: '>= 3.5', met: size >= 3.5 },
    sparse90AccuracyDropPoints: { value: drop(o.pruned), target: '<= 1', met: drop(o.pruned) <= 1 },
    structuredAccuracyDropPoints: { value: drop(o.structured), target: '<= 1.5', met: drop(o.structured) <= 1.5 },
    structuredSpeedup: { value: round(speed), target: '>= 1.6', met: speed >= 1.6 },
    distilledBeatsAlone: { value: `${pts(mean(o.distilled))}% vs ${pts(mean(o.alone))}%`, met: mean(o.distilled) > mean(o.alone) },
    binaryWeightRatio: { value: round(bits, 2), target: '32', met: bits >= 32 },
  };
}

export async function compressionSection(job: CompressionJob): Promise<Record<string, unknown>> {
  const { model, xTrain, yTrain, xTest, yTest, outDir } = job;
  const tStart = performance.now();
  const test: [eg.Tensor, eg.Tensor] = [xTest, yTest];
  const latency = { x: xTest, reps: 15 };
  console.log('compression: int8 quantization, pruning, distillation, binary weights');
  const base = C.compressionReport(model, { name: 'float32 (trained)', data: test, latency });
  // Each variant is timed alternately with the float model, so the speed-ups survive machine drift.
  const vsBase = { ...latency, against: model };
  const rows: Stats[] = [base];

  // int8 post-training quantization.
  const q = C.quantize(model, xTrain, { method: 'percentile' });
  const qs = C.compressionReport(q, { name: 'int8 (post-training)', data: test, latency: vsBase, baseline: base });
  rows.push(qs);
  await C.saveQuantizedModel(q, join(outDir, 'model-int8'));
  const reloaded = await C.loadQuantizedModel(join(outDir, 'model-int8'));
  const same = eg.tidy(() => {
    const a = q.predict(xTest).dataSync();
    const b = reloaded.predict(xTest).dataSync();
    return a.every((v, i) => Object.is(v, b[i]));
  });
  reloaded.dispose();
  q.dispose();

  // 90% unstructured sparsity: gradual global magnitude pruning while fine-tuning.
  const pruned = clone(model);
  const pruner = new C.Pruner(pruned, { scope: 'global' });
  const steps = Math.ceil(xTrain.shape[0] / 32);
  const schedule = new C.PolynomialDecay({ finalSparsity: 0.9, beginStep: 0, endStep: 5 * steps, frequency: 8 });
  await fineTune(pruned, xTrain, yTrain, 9, 1e-3, [new C.PruningCallback(pruner, schedule)]);
  const ps = C.compressionReport(pruned, { name: '90% sparse (gradual magnitude pruning)', data: test, latency: vsBase, baseline: base });
  rows.push(ps);
  const sparsity = C.sparsityReport(pruned, { include: (n, p) => p.rank >= 2 });
  pruner.dispose();

  // Structured pruning: half the channels of both convs, fine-tuned.
  const { model: slim } = C.structuredPrune(model, { ratio: 0.5, inputShape: xTrain.shape.slice(1) });
  await fineTune(slim, xTrain, yTrain, 8, 1e-3);
  const ss = C.compressionReport(slim, { name: 'half the channels (structured pruning)', data: test, latency: vsBase, baseline: base });
  rows.push(ss);

  // Distillation: the same student and loop with and without the teacher (3 seeds).
  const epochs = 60;
  const alone: number[] = [];
  const taught: number[] = [];
  let studentStats: Stats | null = null;
  for (const seed of [11, 21, 31]) {
    for (const alpha of [0, 0.9]) {
      const s = student(seed);
      const optimizer = new eg.optim.Adam(s.trainableParameters(), { lr: 3e-3 });
      const sched = new eg.optim.CosineAnnealingLR(optimizer, epochs, 1e-4);
      await C.distill(xTrain, yTrain, { teacher: model, student: s, epochs, optimizer, onEpochEnd: () => sched.step(), temperature: 4, alpha, seed });
      const acc = C.evalAccuracy(s, xTest, yTest);
      (alpha === 0 ? alone : taught).push(acc);
      if (alpha > 0 && seed === 11) studentStats = C.compressionReport(s, { name: 'distilled student (seed 11)', data: test, latency: vsBase, baseline: base });
      optimizer.dispose();
      s.dispose();
    }
  }
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  rows.push(studentStats!);

  // Binary weights: binarize the inner conv (first and last layers stay float), fine-tune, pack.
  const bin = C.binarizeModel(model);
  await fineTune(bin, xTrain, yTrain, 6, 1e-3, [new C.BinaryWeightClip()]);
  const packed = C.BinaryModel.fromModule(bin, { inputShape: xTrain.shape.slice(1) });
  const bs = C.compressionReport(packed, { name: 'binary weights (inner conv, bit-packed)', data: test, latency: vsBase, baseline: base });
  rows.push(bs);
  const wb = packed.weightBytes();
  packed.dispose();
  bin.dispose();

  const seconds = (performance.now() - tStart) / 1000;
  const compression = {
    seconds: round(seconds, 1),
    baseline: row(base),
    int8: { ...row(qs), calibration: 'percentile 99.99', reloadIdentical: same, file: 'model-int8/model.int8.safetensors' },
    pruned: { ...row(ps), schedule: 'global magnitude, Zhu & Gupta cubic 0 -> 90% over 5 epochs, 9 epochs fine-tuning',
      layers: sparsity.layers.map((l) => ({ name: l.name, params: l.params, sparsity: round(l.sparsity, 4) })) },
    structured: { ...row(ss), fineTuneEpochs: 8, layers: slim.layers.filter((l) => l instanceof nn.Conv2d).map((l) => (l as eg.nn.Conv2d).outChannels) },
    distilled: {
      ...row(studentStats!), teacherParameters: base.parameters, studentParameters: studentStats!.parameters,
      parameterRatio: round(studentStats!.parameters / base.parameters, 4), temperature: 4, alpha: 0.9, epochs,
      aloneAccuracy: alone, distilledAccuracy: taught, aloneMean: round(mean(alone), 4), distilledMean: round(mean(taught), 4),
      distilledBeatsAlone: mean(taught) > mean(alone),
    },
    binary: { ...row(bs), weightBytes: wb, binaryWeightRatio: round(wb.binaryAsFloat32 / wb.binary, 2), note: 'first conv and final dense kept float32' },
    targets: compressionTargets({ base, int8: qs, pruned: ps, structured: ss, alone, distilled: taught, weightBytes: wb }),
  };
  pruned.dispose();
  slim.dispose();

  const md = [
    '# Digits CNN: compression', '',
    `Test set: ${xTest.shape[0]} digits. Latency: median of ${latency.reps} forward passes over the whole test set (batch ${xTest.shape[0]}), ${eg.backendInfo().threads} thread(s), in this run; each speed-up is against the float model timed alternately with it.`, '',
    C.formatCompressionTable(rows), '',
    `Distillation (T = 4, α = 0.9, ${epochs} epochs, same loop and seeds): student alone ${alone.map(pts).join(' / ')}% (mean ${pts(mean(alone))}%), distilled ${taught.map(pts).join(' / ')}% (mean ${pts(mean(taught))}%); student ${studentStats!.parameters} parameters = ${(100 * studentStats!.parameters / base.parameters).toFixed(1)}% of the teacher's.`, '',
    `Binary weights: ${wb.binary} bytes of packed bits for ${wb.binaryAsFloat32 / 4} weights (${(wb.binaryAsFloat32 / wb.binary).toFixed(0)}x smaller than float32); the float32 first and last layers take ${wb.float} bytes.`, '',
    `Sparsity per layer (90% model): ${sparsity.layers.map((l) => `${l.name} ${(100 * l.sparsity).toFixed(1)}%`).join(', ')}.`, '',
  ].join('\n');
  await writeFile(join(outDir, 'compression.md'), md);
  const summaryPath = join(outDir, 'summary.json');
  const summary = JSON.parse(await readFile(summaryPath, 'utf8')) as Record<string, unknown>;
  summary.compression = compression;
  summary.totalSeconds = (performance.now() - job.t0) / 1000;
  await writeFile(summaryPath, JSON.stringify(summary, null, 2));
  console.log(C.formatCompressionTable(rows));
  console.log(`compression section: ${seconds.toFixed(1)} s · compression.md, model-int8/ and summary.json.compression written`);
  return compression;
}
