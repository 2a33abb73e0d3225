/**
 * Fine-tuning a self-supervised backbone with few labels, against training from scratch.
 *
 * For each label budget (labeled images per class), the same labeled subset trains, for the same
 * number of steps:
 *   - "from scratch": the ResNet from random weights;
 *   - "pretrained + fine-tuned": the contrastively pretrained ResNet (pretrain-vision.ts) with its
 *     projection head replaced by a 10-way classifier; first the head alone (backbone frozen, its
 *     BatchNorm statistics kept), then everything with discriminative learning rates (backbone 3x
 *     lower than the head) after a linear warm-up.
 * Both are scored on the same held-out test set; a table compares them. The best fine-tuned model
 * is saved and reloaded through safetensors.
 *
 *   npx tsx examples/finetune-digits.ts [--budgets 1,2,5,10,20] [--repeats 3] [--pretrained reports/pretrain-vision/backbone]
 *
 * Without a checkpoint at --pretrained it runs the pretraining first.
 */
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as eg from 'edgegrad';
import { accuracy, freezeBatchNormStats, loadDigitsSplit, makeModel, trainSteps } from './lib/digits-ssl.js';

const { values: a } = parseArgs({ options: {
  budgets: { type: 'string', default: '1,2,5,10,20' },
  repeats: { type: 'string', default: '3' },
  steps: { type: 'string', default: '200' },
  pretrained: { type: 'string', default: 'reports/pretrain-vision/backbone' },
  out: { type: 'string', default: 'reports/finetune-digits' },
} });
const t0 = performance.now();
const info = await eg.init();
console.log(`edgegrad ${info.build} · ${info.threads} thread(s)`);

const ckpt = a.pretrained!;
if (!(await access(join(ckpt, 'model.json')).then(() => true, () => false))) {
  console.log(`no pretrained backbone at ${ckpt}: running examples/pretrain-vision.ts first`);
  const script = fileURLToPath(new URL('./pretrain-vision.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, '--out', join(ckpt, '..')], { stdio: 'inherit' });
  // pretrain-vision.ts writes <out>/backbone
  if (r.status !== 0) throw new Error('pretraining failed');
}

const d = await loadDigitsSplit();
const budgets = a.budgets!.split(',').map(Number);
const repeats = Number(a.repeats);
const steps = Number(a.steps);

/** `perClass` labeled examples of each digit, drawn with `seed` from the training pool. */
function labeledSubset(perClass: number, seed: number): { x: eg.Tensor; y: eg.Tensor } {
  const random = eg.nn.text.seededRandom(seed);
  const byClass: number[][] = Array.from({ length: 10 }, () => []);
  d.yTrain.forEach((c, i) => byClass[c].push(i));
  const idx: number[] = [];
  for (const list of byClass) {
    const pool = list.slice();
    for (let k = 0; k < perClass && pool.length; k++) idx.push(pool.splice(Math.floor(random() * pool.length), 1)[0]);
  }
  const [x] = eg.data.takeRows([d.xTrain], Int32Array.from(idx));
  return { x, y: eg.tensor(Int32Array.from(idx, (i) => d.yTrain[i]), [idx.length], 'int32') };
}

function fromScratch(x: eg.Tensor, y: eg.Tensor, seed: number): { acc: number; model: eg.nn.Module } {
  const m = makeModel(10, seed);
  const opt = new eg.optim.AdamW(m.parameters(), { lr: 3e-3, weightDecay: 1e-4 });
  trainSteps(m, opt, x, y, { steps, batchSize: 32, seed });
  opt.dispose();
  return { acc: accuracy(m, d.xTest, d.yTest), model: m };
}

async function fineTuned(x: eg.Tensor, y: eg.Tensor, seed: number): Promise<{ acc: number; model: eg.nn.Module }> {
  const { model } = await eg.loadModel(ckpt);
  const m = model as eg.nn.ResNet;
  m.replaceHead(10, seed); // registerModule('fc', ...): the projection head is disposed
  const backbone = m.namedChildren().map(([n]) => n).filter((n) => n !== 'fc');
  // Stage 1 (half the steps): the new head alone; the backbone and its BatchNorm statistics stay.
  m.freeze(...backbone);
  const headOpt = new eg.optim.Adam(m.trainableParameters(), { lr: 1e-2 });
  const keepStats = () => {
    m.train();
    freezeBatchNormStats(m, backbone);
  };
  const half = Math.round(steps / 2);
  trainSteps(m, headOpt, x, y, { steps: half, batchSize: 32, seed, beforeStep: keepStats });
  // Stage 2: everything, the backbone at a 3x lower rate than the head, after a linear warm-up.
  m.unfreeze();
  const head = m.getModule('fc').parameters();
  const body = m.parameters().filter((p) => !head.includes(p));
  const opt = new eg.optim.AdamW([{ params: body, lr: 3e-4 }, { params: head, lr: 1e-3 }], { weightDecay: 1e-4 });
  const warm = new eg.optim.LinearWarmup(opt, 20);
  trainSteps(m, opt, x, y, { steps: steps - half, batchSize: 32, seed: seed + 1, beforeStep: keepStats, onStep: () => warm.step() });
  headOpt.dispose();
  opt.dispose();
  return { acc: accuracy(m, d.xTest, d.yTest), model: m };
}

const rows: { perClass: number; labels: number; scratch: number[]; pretrained: number[] }[] = [];
let best: { acc: number; model: eg.nn.Module } | null = null;
for (const perClass of budgets) {
  const row = { perClass, labels: perClass * 10, scratch: [] as number[], pretrained: [] as number[] };
  for (let r = 0; r < repeats; r++) {
    const seed = 1000 * perClass + r;
    const { x, y } = labeledSubset(perClass, seed);
    const s = fromScratch(x, y, seed);
    s.model.dispose();
    const f = await fineTuned(x, y, seed);
    row.scratch.push(s.acc);
    row.pretrained.push(f.acc);
    if (perClass === Math.max(...budgets) && (!best || f.acc > best.acc)) {
      best?.model.dispose();
      best = f;
    } else f.model.dispose();
    x.dispose();
    y.dispose();
  }
  rows.push(row);
  const mean = (v: number[]) => (100 * v.reduce((p, c) => p + c, 0)) / v.length;
  console.log(`${perClass} label(s) per class: from scratch ${mean(row.scratch).toFixed(1)}% · pretrained + fine-tuned ${mean(row.pretrained).toFixed(1)}%`);
}

const mean = (v: number[]) => v.reduce((p, c) => p + c, 0) / v.length;
const sd = (v: number[]) => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));
const pct = (v: number[]) => `${(100 * mean(v)).toFixed(1)}% ± ${(100 * sd(v)).toFixed(1)}`;
const table = [
  `| labels per class | labeled images | from scratch | pretrained + fine-tuned | gain |`,
  `|---:|---:|---:|---:|---:|`,
  ...rows.map((r) => `| ${r.perClass} | ${r.labels} | ${pct(r.scratch)} | ${pct(r.pretrained)} | ${((mean(r.pretrained) - mean(r.scratch)) * 100).toFixed(1)} pts |`),
].join('\n');
console.log(`\nTest accuracy on ${d.xTest.shape[0]} held-out digits (mean ± sd over ${repeats} labeled subsets, ${steps} steps each):\n\n${table}\n`);

// The best fine-tuned model: a safetensors checkpoint, reloaded and re-scored.
const outDir = a.out!;
await mkdir(outDir, { recursive: true });
await eg.saveModel(best!.model, join(outDir, 'model'));
const { model: reloaded } = await eg.loadModel(join(outDir, 'model'));
const reAcc = accuracy(reloaded, d.xTest, d.yTest);
console.log(`fine-tuned checkpoint ${outDir}/model: ${(best!.acc * 100).toFixed(1)}% before saving, ${(reAcc * 100).toFixed(1)}% after reloading`);
await writeFile(join(outDir, 'summary.json'), JSON.stringify({ rows, table, steps, repeats, seconds: (performance.now() - t0) / 1000 }, null, 2));
await writeFile(join(outDir, 'table.md'), `${table}\n`);
console.log(`report written to ${outDir}/ · ${((performance.now() - t0) / 1000).toFixed(0)} s`);
const wins = rows.filter((r) => r.perClass <= 10 && mean(r.pretrained) > mean(r.scratch)).length;
if (wins < rows.filter((r) => r.perClass <= 10).length || reAcc !== best!.acc) process.exitCode = 1;
best!.model.dispose();
reloaded.dispose();
