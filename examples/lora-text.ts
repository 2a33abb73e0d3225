/**
 * LoRA fine-tuning vs full fine-tuning of the MLM-pretrained BERT-style encoder on SMS spam (issue 18 §2):
 * - the encoder and tokenizer: the checkpoint `examples/pretrain-text.ts` writes to reports/pretrain-text/
 *   (read with examples/lib/text-encoder.ts; run that example first), the SMS data and the same
 *   train / dev / test split as that example (examples/lib/sms-spam.ts);
 * - for each seed: full fine-tuning (every parameter, pretrain-text's recipe: AdamW with layer-wise
 *   rate decay, warm-up then linear decay, clipping, early stopping on dev F1 with the best weights
 *   restored) and LoRA (`eg.nn.lora.apply` on every attention and MLP Linear, the classifier as a
 *   module to save; AdamW on `handle.trainableParameters()`, the same schedule, clipping and early
 *   stopping), from the same pretrained weights and head initialization; spam F1 on the test split;
 * - the trainable-parameter share, and the max |merged − adapted| logit difference after `merge()`.
 *
 *   node --import tsx examples/lora-text.ts [--seeds 3] [--epochs 6] [--out reports/lora-text]
 *
 * Writes <out>/summary.json and <out>/adapter/ (the first seed's adapters, PEFT's file layout:
 * adapter_model.safetensors + adapter_config.json).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as eg from 'edgegrad';
import { classifierFromPretrained, loadPretrainedTextEncoder, PRETRAINED_DIR } from './lib/text-encoder.js';
import { encodeSms, loadSmsSpam, splitSms } from './lib/sms-spam.js';

const { values: a } = parseArgs({
  options: {
    seeds: { type: 'string', default: '3' },
    epochs: { type: 'string', default: '6' },
    batch: { type: 'string', default: '32' },
    'full-lr': { type: 'string', default: '1e-3' },
    'lora-lr': { type: 'string', default: '2e-3' },
    rank: { type: 'string', default: '4' },
    alpha: { type: 'string', default: '8' },
    dropout: { type: 'string', default: '0.05' },
    targets: { type: 'string', default: 'attn.q,attn.k,attn.v,attn.out,mlp.fc1,mlp.fc2' },
    'modules-to-save': { type: 'string', default: 'classifier' },
    pretrained: { type: 'string', default: PRETRAINED_DIR },
    out: { type: 'string', default: 'reports/lora-text' },
  },
});
const num = (k: keyof typeof a) => Number(a[k]);
const outDir = a.out!;
const targets = a.targets!.split(',');
const modulesToSave = a['modules-to-save']!.split(',').filter(Boolean);
const t0 = performance.now();
const info = await eg.init();
console.log(`edgegrad ${info.build} · ${info.threads} thread(s) · ${info.runtime}`);
const { nn } = eg;
if (!existsSync(join(a.pretrained!, 'pretrained.safetensors'))) {
  console.error(`no pretrained encoder in ${a.pretrained}: run \`node --import tsx examples/pretrain-text.ts\` first`);
  process.exit(1);
}
await mkdir(outDir, { recursive: true });

// ------------------------------------------------------------------------------ fine-tuning

/** Test logits in evaluation mode (the caller disposes them). */
const logitsOf = (m: eg.nn.Module, x: eg.Tensor): eg.Tensor => m.eval().predict(x, { batchSize: 256 });
const ce = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });

interface Run {
  f1: number;
  epochs: number;
  seconds: number;
  trainable: number;
  total: number;
  percent: number;
  mergeMaxAbsDiff?: number;
}

/** One fine-tuning run (full or LoRA) from the pretrained encoder; the test F1 of the best dev-F1 weights. */
async function fineTune(kind: 'full' | 'lora', seed: number): Promise<Run> {
  const ts = performance.now();
  // Same encoder weights and head initialization for both kinds of the same seed.
  const clf = classifierFromPretrained(pre, { seed: 1000 + seed });
  let handle: ReturnType<typeof nn.lora.apply> | null = null;
  let opt: eg.optim.AdamW;
  if (kind === 'lora') {
    handle = nn.lora.apply(clf, { targets, rank: num('rank'), alpha: num('alpha'), dropout: num('dropout'), modulesToSave, seed });
    opt = new eg.optim.AdamW(handle.trainableParameters(), { lr: num('lora-lr'), weightDecay: 0.01 });
  } else {
    opt = new eg.optim.AdamW(nn.layerwiseLrGroups(clf, { lr: num('full-lr'), decay: 0.8 }), { lr: num('full-lr'), weightDecay: 0.01 });
  }
  const counts = handle ? handle.parameterCounts() : { trainable: clf.numParameters(true), total: clf.numParameters(), percent: 100 };
  const perEpoch = Math.ceil(train.labels.shape[0] / num('batch'));
  const total = num('epochs') * perEpoch;
  const warm = Math.max(1, Math.round(total * 0.1));
  const sched = new eg.optim.LinearWarmup(opt, warm, new eg.optim.LinearLR(opt, 1, 0, total - warm), 0.01);
  clf.compile({ optimizer: opt, loss: ce, clipGradNorm: 1 });
  const stop = new eg.train.EarlyStopping({ monitor: 'val_f1', mode: 'max', patience: 4, restoreBestWeights: true });
  const h = await clf.fit(train.ids, train.labels, {
    epochs: num('epochs'), batchSize: num('batch'), seed, verbose: 0,
    callbacks: [new eg.train.LearningRateScheduler(sched, 'batch'), new eg.train.ValidationF1(dev.ids, dev.labels), stop],
  });
  const logits = logitsOf(clf, test.ids);
  const run: Run = { f1: eg.train.f1Score(logits, test.labels), epochs: h.epoch.length, seconds: 0, ...counts };
  if (handle) {
    if (seed === 1) await handle.saveAdapters(join(outDir, 'adapter'));
    handle.merge();
    const merged = logitsOf(clf, test.ids);
    run.mergeMaxAbsDiff = eg.tidy(() => merged.sub(logits).abs().max().item());
    merged.dispose();
    handle.dispose();
  }
  logits.dispose();
  opt.dispose();
  clf.dispose();
  run.seconds = (performance.now() - ts) / 1000;
  return run;
}

const meanStd = (xs: number[]) => {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(xs.length - 1, 1));
  return { mean, std };
};

// ------------------------------------------------------------------------------ run

const pre = await loadPretrainedTextEncoder(a.pretrained);
const sms = await loadSmsSpam();
const split = splitSms(sms.texts.length, { seed: 2024, devSize: 300 }); // pretrain-text's split
const train = encodeSms(pre.tokenizer, sms, split.train, pre.maxLength);
const dev = encodeSms(pre.tokenizer, sms, split.dev, pre.maxLength);
const test = encodeSms(pre.tokenizer, sms, split.test, pre.maxLength);
const testLabels = Array.from(test.labels.dataSync());
console.log(`SMS spam: ${split.train.length} training / ${split.dev.length} dev / ${split.test.length} test messages (${testLabels.filter((y) => y === 1).length} spam in test); encoder ${JSON.stringify(pre.config)}`);

const runs: Record<'full' | 'lora', Run[]> = { full: [], lora: [] };
for (let seed = 1; seed <= num('seeds'); seed++) {
  for (const kind of ['full', 'lora'] as const) {
    const r = await fineTune(kind, seed);
    runs[kind].push(r);
    console.log(`seed ${seed} ${kind.padEnd(4)}: F1 ${(100 * r.f1).toFixed(2)} after ${r.epochs} epochs  trainable ${r.trainable}/${r.total} (${r.percent.toFixed(2)}%)${r.mergeMaxAbsDiff === undefined ? '' : `  merged−adapted max |Δlogit| ${r.mergeMaxAbsDiff.toExponential(2)}`}  ${r.seconds.toFixed(0)} s`);
  }
}
eg.dispose([train, dev, test, Object.values(pre.state)]);

const full = meanStd(runs.full.map((r) => 100 * r.f1));
const lo = meanStd(runs.lora.map((r) => 100 * r.f1));
const percent = runs.lora[0].percent;
const mergeDiff = Math.max(...runs.lora.map((r) => r.mergeMaxAbsDiff!));
const summary = {
  task: 'SMS spam classification (spam F1 on the seeded 20% test split of pretrain-text), LoRA vs full fine-tuning of the same pretrained encoder',
  encoder: `${a.pretrained} (examples/pretrain-text.ts)`,
  encoderConfig: pre.config,
  data: { train: split.train.length, dev: split.dev.length, test: split.test.length, maxLength: pre.maxLength },
  lora: { rank: num('rank'), alpha: num('alpha'), dropout: num('dropout'), targets, modulesToSave, optimizer: 'AdamW', lr: num('lora-lr') },
  full: { optimizer: 'AdamW with layer-wise lr decay 0.8', lr: num('full-lr') },
  schedule: { epochs: num('epochs'), batchSize: num('batch'), warmup: '10% then linear decay to 0', clipGradNorm: 1, earlyStopping: 'dev F1, patience 4, best weights restored' },
  seeds: num('seeds'),
  f1: {
    full: { ...full, runs: runs.full.map((r) => 100 * r.f1) },
    lora: { ...lo, runs: runs.lora.map((r) => 100 * r.f1) },
    loraMinusFull: lo.mean - full.mean,
  },
  trainableParameters: { lora: runs.lora[0].trainable, full: runs.full[0].trainable, total: runs.lora[0].total, loraPercent: percent },
  mergedVsAdaptedMaxAbsLogitDiff: mergeDiff,
  checks: {
    withinOneF1Point: lo.mean >= full.mean - 1,
    underFivePercentTrainable: percent < 5,
    mergedEqualsAdapted: mergeDiff <= 1e-5,
  },
  seconds: { perRun: { full: meanStd(runs.full.map((r) => r.seconds)).mean, lora: meanStd(runs.lora.map((r) => r.seconds)).mean }, total: (performance.now() - t0) / 1000 },
  runtime: { build: info.build, threads: info.threads, runtime: info.runtime },
};
await writeFile(join(outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
console.log(`\nF1 full ${full.mean.toFixed(2)} ± ${full.std.toFixed(2)}, LoRA ${lo.mean.toFixed(2)} ± ${lo.std.toFixed(2)} (${(lo.mean - full.mean).toFixed(2)} points) with ${percent.toFixed(2)}% trainable; merged vs adapted max |Δ| ${mergeDiff.toExponential(2)}`);
console.log(`checks: ${JSON.stringify(summary.checks)}; wrote ${join(outDir, 'summary.json')} in ${summary.seconds.total.toFixed(0)} s`);
