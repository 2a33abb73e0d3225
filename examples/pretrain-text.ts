/**
 * Masked-LM pretraining of a tiny BERT on the SMS texts, then spam classification with few labels:
 * pretrained vs from-scratch F1 at 1%, 5%, 20% and 100% of the training labels (issue 18 §1).
 *
 * 1. A WordPiece tokenizer is trained on the training messages' text (no labels).
 * 2. `BertForMaskedLM` (pre-LN, tied decoder) is pretrained on the same text with BERT's 80/10/10
 *    masking, drawn afresh for every batch (`eg.nn.mlmStep`), AdamW, warm-up + linear decay,
 *    gradient clipping. MLM loss and accuracy (train, and dev with a fixed masking) are charted.
 * 3. For each label fraction and seed, a `BertForSequenceClassification` ([CLS] pooling) starts from
 *    the pretrained encoder or from scratch (same sizes, same head seed) and is fine-tuned with
 *    layer-wise LR decay, warm-up + linear decay, clipping and early stopping on the dev F1
 *    (`eg.train.ValidationF1` + `EarlyStopping`, best weights restored); the test F1 (spam = positive
 *    class) is reported as mean ± std over the seeds.
 *
 * The split is fixed: 20% test, 300 dev messages (used only for early stopping), the rest is the
 * training pool whose texts are pretrained on and whose labels are subsampled (stratified).
 * Writes reports/pretrain-text/: summary.json, table.md, mlm-loss.{png,svg}, mlm-accuracy.{png,svg}
 * and the checkpoint read by examples/lib/text-encoder.ts (pretrained.safetensors, pretrained.json,
 * tokenizer.json).
 *
 *   npx tsx examples/pretrain-text.ts [--epochs 6] [--runs 3] [--fractions 0.01,0.05,0.2,1] [--out reports/pretrain-text]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as eg from 'edgegrad';
import { lineChart } from './lib/charts.js';
import { encodeSms, labelSubset, loadSmsSpam, splitSms } from './lib/sms-spam.js';
import { classifierFromPretrained, savePretrainedTextEncoder, type PretrainedTextEncoder } from './lib/text-encoder.js';

const { values: a } = parseArgs({ options: {
  epochs: { type: 'string', default: '6' },
  runs: { type: 'string', default: '3' },
  fractions: { type: 'string', default: '0.01,0.05,0.2,1' },
  hidden: { type: 'string', default: '64' },
  layers: { type: 'string', default: '2' },
  'max-length': { type: 'string', default: '48' },
  vocab: { type: 'string', default: '2000' },
  seed: { type: 'string', default: '1' },
  out: { type: 'string', default: 'reports/pretrain-text' },
} });
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(0);
const info = await eg.init();
console.log(`edgegrad ${info.build} · ${info.threads} thread(s)`);
const seed = Number(a.seed);
const maxLength = Number(a['max-length']);
const outDir = a.out!;
await mkdir(outDir, { recursive: true });

// ------------------------------------------------------------------------------- data, tokenizer
const sms = await loadSmsSpam();
const split = splitSms(sms.texts.length, { seed: 2024, devSize: 300 });
const tokenizer = eg.nn.WordPieceTokenizer.train(split.train.map((i) => sms.texts[i]), { vocabSize: Number(a.vocab) });
const lengths = split.train.map((i) => tokenizer.encode(sms.texts[i]).ids.length);
const truncated = lengths.filter((l) => l > maxLength).length / lengths.length;
console.log(`SMS: ${split.train.length} training / ${split.dev.length} dev / ${split.test.length} test messages; WordPiece vocabulary ${tokenizer.vocabSize}; ${(100 * truncated).toFixed(1)}% of messages cut at ${maxLength} tokens`);
const train = encodeSms(tokenizer, sms, split.train, maxLength);
const dev = encodeSms(tokenizer, sms, split.dev, maxLength);
const test = encodeSms(tokenizer, sms, split.test, maxLength);
const rowOf = new Map(split.train.map((m, r) => [m, r])); // message index → row of `train`

const config: eg.nn.BertConfig = {
  vocabSize: tokenizer.vocabSize, maxPositions: maxLength, hiddenSize: Number(a.hidden), numLayers: Number(a.layers),
  numHeads: 2, dropout: 0.1, seed,
};

// ------------------------------------------------------------------------------- MLM pretraining
/** MLM loss and accuracy on the dev texts with one fixed masking (the same every epoch). */
const devMasked = eg.nn.maskTokens(dev.ids, { vocabSize: tokenizer.vocabSize, seed: 999 });
function devMlm(m: eg.nn.BertForMaskedLM): { loss: number; accuracy: number } {
  m.eval();
  let loss = 0;
  let count = 0;
  let correct = 0;
  const n = dev.ids.shape[0];
  for (let s = 0; s < n; s += 100) {
    eg.tidy(() => eg.noGrad(() => {
      const e = Math.min(s + 100, n);
      const r = m.maskedLoss(devMasked.inputIds.slice([s, 0], [e, maxLength]), devMasked.labels.slice([s, 0], [e, maxLength]), dev.ids.slice([s, 0], [e, maxLength]).cast('float32').notEqual(0));
      loss += r.loss.item() * r.count;
      count += r.count;
      correct += r.correct;
    }));
  }
  m.train();
  return { loss: loss / count, accuracy: correct / count };
}

const epochs = Number(a.epochs);
const mlm = new eg.nn.BertForMaskedLM(config);
console.log(`BERT: ${config.numLayers} pre-LN blocks, hidden ${config.hiddenSize}, ${config.numHeads} heads, ${mlm.numParameters()} parameters (decoder tied to the token embedding)`);
const batchSize = 32;
const steps = epochs * Math.ceil(split.train.length / batchSize);
const opt = new eg.optim.AdamW(mlm.parameters(), { lr: 2e-3, weightDecay: 0.01 });
const sched = new eg.optim.LinearWarmup(opt, Math.round(steps * 0.06), new eg.optim.LinearLR(opt, 1, 0.05, steps - Math.round(steps * 0.06)), 0.01);
mlm.compile({ optimizer: opt, loss: 'mse', clipGradNorm: 1 });
const curve = { trainLoss: [] as number[], trainAcc: [] as number[], devLoss: [] as number[], devAcc: [] as number[] };
let ep = { loss: 0, count: 0, correct: 0 };
const before = devMlm(mlm);
console.log(`masked LM before training: dev loss ${before.loss.toFixed(3)} (ln V = ${Math.log(tokenizer.vocabSize).toFixed(2)}), accuracy ${(100 * before.accuracy).toFixed(1)}%`);
await mlm.fit(train.ids, train.ids, {
  epochs, batchSize, seed, verbose: 0,
  trainStep: eg.nn.mlmStep({ seed: seed * 100_000, onBatch: (r) => { ep.loss += r.loss * r.count; ep.count += r.count; ep.correct += r.correct; } }),
  callbacks: [
    new eg.train.LearningRateScheduler(sched, 'batch'),
    new eg.train.LambdaCallback({ onEpochEnd: (e) => {
      const d = devMlm(mlm);
      curve.trainLoss.push(ep.loss / ep.count);
      curve.trainAcc.push(ep.correct / ep.count);
      curve.devLoss.push(d.loss);
      curve.devAcc.push(d.accuracy);
      console.log(`MLM epoch ${e + 1}/${epochs} · train loss ${(ep.loss / ep.count).toFixed(3)} acc ${(100 * ep.correct / ep.count).toFixed(1)}% · dev loss ${d.loss.toFixed(3)} acc ${(100 * d.accuracy).toFixed(1)}% · ${secs()} s`);
      ep = { loss: 0, count: 0, correct: 0 };
    } }),
  ],
});
opt.dispose();
const charts = [
  ...(await lineChart(join(outDir, 'mlm-loss'), 'Masked-LM loss (SMS texts)', 'cross-entropy on masked tokens', [{ name: 'train', values: curve.trainLoss }, { name: 'dev (fixed masking)', values: curve.devLoss }])),
  ...(await lineChart(join(outDir, 'mlm-accuracy'), 'Masked-LM accuracy (SMS texts)', 'masked tokens predicted', [{ name: 'train', values: curve.trainAcc }, { name: 'dev (fixed masking)', values: curve.devAcc }])),
];
await savePretrainedTextEncoder(outDir, mlm, tokenizer, maxLength);
const pretrained: PretrainedTextEncoder = { tokenizer, config, maxLength, state: mlm.stateDict() };
console.log(`pretrained checkpoint written to ${outDir}/pretrained.* · ${secs()} s`);

// ------------------------------------------------------------------------------- fine-tuning
const xent = (p: eg.Tensor, t: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true });

/** Fine-tunes on the labelled subset and returns the test F1 of spam (best dev-F1 weights). */
async function fineTune(init: 'pretrained' | 'scratch', subset: number[], run: number): Promise<{ f1: number; epochs: number }> {
  const clf = init === 'pretrained'
    ? classifierFromPretrained(pretrained, { seed: 1000 + run })
    : new eg.nn.BertForSequenceClassification({ ...config, seed: 1000 + run });
  const [x, y] = eg.data.takeRows([train.ids, train.labels], Int32Array.from(subset, (i) => rowOf.get(i)!));
  const bs = subset.length < 100 ? 8 : subset.length < 1000 ? 16 : 32;
  const perEpoch = Math.ceil(subset.length / bs);
  const nEpochs = Math.min(20, Math.max(2, Math.ceil(100 / perEpoch)));
  const total = nEpochs * perEpoch;
  const o = new eg.optim.AdamW(eg.nn.layerwiseLrGroups(clf, { lr: 1e-3, decay: 0.8 }), { lr: 1e-3, weightDecay: 0.01 });
  const s = new eg.optim.LinearWarmup(o, Math.max(1, Math.round(total * 0.1)), new eg.optim.LinearLR(o, 1, 0, total - Math.max(1, Math.round(total * 0.1))), 0.01);
  clf.compile({ optimizer: o, loss: xent, clipGradNorm: 1 });
  const stop = new eg.train.EarlyStopping({ monitor: 'val_f1', mode: 'max', patience: 4, restoreBestWeights: true });
  const h = await clf.fit(x, y, { epochs: nEpochs, batchSize: bs, seed: run, verbose: 0, callbacks: [new eg.train.LearningRateScheduler(s, 'batch'), new eg.train.ValidationF1(dev.ids, dev.labels), stop] });
  const pred = clf.predict(test.ids, { batchSize: 128 });
  const f1 = eg.train.f1Score(pred, test.labels);
  for (const t of [pred, x, y]) t.dispose();
  o.dispose();
  clf.dispose();
  return { f1, epochs: h.epoch.length };
}

const fractions = a.fractions!.split(',').map(Number);
const runs = Number(a.runs);
const rows: { fraction: number; labels: number; pretrained: number[]; scratch: number[] }[] = [];
for (const fraction of fractions) {
  const row = { fraction, labels: 0, pretrained: [] as number[], scratch: [] as number[] };
  for (let run = 0; run < runs; run++) {
    const subset = labelSubset(split.train, sms.labels, fraction, 7 + run);
    row.labels = subset.length;
    for (const init of ['pretrained', 'scratch'] as const) {
      const r = await fineTune(init, subset, run);
      row[init].push(r.f1);
      console.log(`${(100 * fraction).toFixed(0)}% labels (${subset.length}, ${subset.filter((i) => sms.labels[i] === 1).length} spam) · run ${run + 1} · ${init}: test F1 ${r.f1.toFixed(3)} after ${r.epochs} epochs · ${secs()} s`);
    }
  }
  rows.push(row);
}

// ------------------------------------------------------------------------------- report
const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
const std = (v: number[]) => (v.length < 2 ? 0 : Math.sqrt(v.reduce((s, x) => s + (x - mean(v)) ** 2, 0) / (v.length - 1)));
const table = rows.map((r) => {
  const gain = mean(r.pretrained) - mean(r.scratch);
  const noise = Math.max(std(r.pretrained), std(r.scratch));
  return { fraction: r.fraction, labels: r.labels, pretrained: { mean: mean(r.pretrained), std: std(r.pretrained), runs: r.pretrained }, scratch: { mean: mean(r.scratch), std: std(r.scratch), runs: r.scratch }, gain, beatsByMoreThanStd: gain > noise };
});
const fmt = (m: { mean: number; std: number }) => `${m.mean.toFixed(3)} ± ${m.std.toFixed(3)}`;
const md = [
  `# Masked-LM pretraining → SMS spam F1 (test set, spam = positive, mean ± std over ${runs} seeds)`,
  '',
  `Tiny BERT: ${config.numLayers} pre-LN blocks, hidden ${config.hiddenSize}, ${config.numHeads} heads, ${mlm.numParameters()} parameters; WordPiece vocabulary ${tokenizer.vocabSize}; sequences of ${maxLength} tokens; MLM pretraining ${epochs} epochs on ${split.train.length} training texts (final dev MLM accuracy ${(100 * curve.devAcc.at(-1)!).toFixed(1)}%).`,
  '',
  '| labels | messages | pretrained F1 | from-scratch F1 | gain | gain > std |',
  '| --- | ---: | ---: | ---: | ---: | :---: |',
  ...table.map((r) => `| ${(100 * r.fraction).toFixed(0)}% | ${r.labels} | ${fmt(r.pretrained)} | ${fmt(r.scratch)} | ${r.gain >= 0 ? '+' : ''}${r.gain.toFixed(3)} | ${r.beatsByMoreThanStd ? 'yes' : 'no'} |`),
  '',
  `Fine-tuning: [CLS] pooling, AdamW (lr 1e-3, layer-wise decay 0.8, weight decay 0.01), 10% warm-up then linear decay, gradient clipping at 1, early stopping on the dev F1 (${split.dev.length} messages, patience 4, best weights restored). Total time ${secs()} s on ${info.threads} thread(s).`,
].join('\n');
await writeFile(join(outDir, 'table.md'), `${md}\n`);
await writeFile(join(outDir, 'summary.json'), JSON.stringify({
  data: { train: split.train.length, dev: split.dev.length, test: split.test.length, truncatedShare: truncated },
  tokenizer: { type: 'WordPiece', vocabSize: tokenizer.vocabSize, maxLength },
  model: { ...config, parameters: mlm.numParameters() },
  pretraining: { epochs, batchSize, steps, before, curve },
  fineTuning: table,
  charts,
  threads: info.threads,
  seconds: Number(secs()),
}, null, 2));
console.log(`\n${md}\n\nwrote ${outDir}/summary.json, table.md, ${charts.filter((c) => c.endsWith('.png')).join(', ')}`);
for (const t of [train.ids, train.labels, dev.ids, dev.labels, test.ids, test.labels, devMasked.inputIds, devMasked.labels]) t.dispose();
mlm.dispose();
