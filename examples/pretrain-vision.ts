/**
 * Self-supervised pretraining for vision, on the digits' training images without their labels.
 *
 * Default objective: contrastive learning (SimCLR, Chen et al. 2020). Each step takes a batch of
 * images, makes two random augmentations of each (small rotation and shift, contrast, cut-out,
 * noise), and trains a small ResNet plus an MLP projection head so that the two views of an image
 * are more similar to each other than to any other image in the batch (NT-Xent loss on cosine
 * similarities). The alternative `--objective rotation` predicts which of four rotations an
 * image shows (RotNet, Gidaris et al. 2018); on these 8x8 digits its features help fine-tuning
 * less than the contrastive ones (see the report).
 *
 * The checkpoint (model.json + model.safetensors: the ResNet with its projection head as `fc`)
 * is what `finetune-digits.ts` starts from.
 *
 *   npx tsx examples/pretrain-vision.ts [--steps 400] [--objective contrastive|rotation] [--out reports/pretrain-vision]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as eg from 'edgegrad';
import { accuracy, augment, contrastiveConstants, contrastiveLoss, loadDigitsSplit, makeModel, projectionHead, rotationTask, xent } from './lib/digits-ssl.js';

const { values: a } = parseArgs({ options: {
  objective: { type: 'string', default: 'contrastive' },
  steps: { type: 'string', default: '400' },
  batch: { type: 'string', default: '256' },
  temperature: { type: 'string', default: '0.1' },
  epochs: { type: 'string', default: '8' },
  seed: { type: 'string', default: '1' },
  out: { type: 'string', default: 'reports/pretrain-vision' },
} });
const t0 = performance.now();
const info = await eg.init();
console.log(`edgegrad ${info.build} · ${info.threads} thread(s)`);
const seed = Number(a.seed);
eg.manualSeed(seed);

const d = await loadDigitsSplit();
const n = d.xTrain.shape[0];
const outDir = a.out!;
await mkdir(outDir, { recursive: true });
let model: eg.nn.ResNet;
const summary: Record<string, unknown> = { objective: a.objective, images: n };

if (a.objective === 'contrastive') {
  const steps = Number(a.steps);
  const b = Number(a.batch);
  const tau = Number(a.temperature);
  model = makeModel(10, seed);
  model.replaceHead(projectionHead(model.numFeatures, 32, seed + 7)); // saved with the model (its config records the head)
  console.log(`contrastive pretraining (SimCLR): ${n} unlabeled training images, batches of ${b} pairs of views, temperature ${tau}, ${steps} steps`);
  console.log(`model: ResNet (3 stages of basic blocks, width 16) + MLP projection head, ${model.numParameters()} parameters`);
  const opt = new eg.optim.AdamW(model.parameters(), { lr: 3e-3, weightDecay: 1e-4 });
  const sched = new eg.optim.LinearWarmup(opt, 20, new eg.optim.CosineAnnealingLR(opt, steps - 20, 3e-5));
  const consts = contrastiveConstants(b);
  const random = eg.nn.text.seededRandom(seed);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const idx = Int32Array.from({ length: b }, () => Math.floor(random() * n));
    const loss = eg.tidy(() => {
      const views = eg.concat([augment(d.trainImages, idx, random), augment(d.trainImages, idx, random)], 0);
      opt.zeroGrad();
      const l = contrastiveLoss(model.forward(views), tau, consts);
      l.backward();
      opt.step();
      return l.item();
    });
    sched.step();
    losses.push(loss);
    if ((s + 1) % 50 === 0) console.log(`step ${s + 1}/${steps} · contrastive loss ${loss.toFixed(4)} (chance ${Math.log(2 * b - 1).toFixed(2)}) · ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  // A label-free check on held-out images: is each augmented view's nearest neighbour its partner?
  const testImages = d.xTest.dataSync() as Float32Array;
  const m = Math.min(256, d.xTest.shape[0]);
  const idx = Int32Array.from({ length: m }, (_, i) => i);
  model.eval();
  const cm = contrastiveConstants(m);
  const matchAcc = eg.tidy(() => eg.noGrad(() => {
    const z = model.forward(eg.concat([augment(testImages, idx, random), augment(testImages, idx, random)], 0));
    const zn = z.div(z.square().sum(-1, true).sqrt());
    const sim = zn.matmulT(zn, false, true).add(cm.selfMask);
    const want = Int32Array.from({ length: 2 * m }, (_, i) => (i < m ? i + m : i - m));
    const got = sim.argMax(-1).dataSync();
    return want.filter((w, i) => got[i] === w).length / (2 * m);
  }));
  console.log(`view matching on ${m} held-out images (nearest neighbour of a view is its partner): ${(matchAcc * 100).toFixed(1)}% (chance ${(100 / (2 * m - 1)).toFixed(2)}%)`);
  eg.dispose([consts, cm]);
  opt.dispose();
  Object.assign(summary, { steps, batch: b, temperature: tau, viewMatchingAccuracy: matchAcc, losses });
} else if (a.objective === 'rotation') {
  const epochs = Number(a.epochs);
  const pre = rotationTask(d.trainImages, n);
  const testRot = rotationTask(d.xTest.dataSync() as Float32Array, d.xTest.shape[0]);
  console.log(`rotation pretraining: ${pre.x.shape[0]} rotated training images (4 rotations of ${n}), no labels used`);
  model = makeModel(4, seed);
  const opt = new eg.optim.AdamW(model.parameters(), { lr: 3e-3, weightDecay: 1e-4 });
  model.compile({ optimizer: opt, loss: xent, metrics: ['accuracy'] });
  const h = await model.fit(pre.x, pre.y, { epochs, batchSize: 64, seed, verbose: 2, callbacks: [new eg.train.LearningRateScheduler(new eg.optim.CosineAnnealingLR(opt, epochs, 1e-4))] });
  const rotAcc = accuracy(model, testRot.x, testRot.y);
  console.log(`rotation accuracy on the held-out test images: ${(rotAcc * 100).toFixed(1)}% (chance 25%)`);
  Object.assign(summary, { epochs, rotationAccuracy: rotAcc, history: h.history });
} else {
  throw new Error(`unknown --objective ${a.objective} (contrastive or rotation)`);
}

await eg.saveModel(model, join(outDir, 'backbone'), { userData: summary });
const seconds = (performance.now() - t0) / 1000;
await writeFile(join(outDir, 'summary.json'), JSON.stringify({ ...summary, parameters: model.numParameters(), seconds }, null, 2));
console.log(`backbone checkpoint: ${outDir}/backbone/ (model.json + model.safetensors) · ${seconds.toFixed(1)} s`);
model.dispose();
