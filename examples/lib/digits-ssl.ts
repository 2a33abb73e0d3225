/**
 * Shared pieces of the self-supervised vision examples (pretrain-vision.ts, finetune-digits.ts):
 * the digits split, augmentations and the contrastive (SimCLR) loss, the rotation pretext task,
 * the backbone, and small training/evaluation loops.
 */
import * as eg from 'edgegrad';

export interface DigitsSplit {
  /** Training pool `[n, 8, 8, 1]` in [0, 1] (pretraining uses these images without labels). */
  xTrain: eg.Tensor;
  yTrain: Int32Array;
  /** Held-out test set (never used for pretraining or training). */
  xTest: eg.Tensor;
  yTest: eg.Tensor;
  trainImages: Float32Array;
}

/** The digits with the main job's split: 20% held out for testing (seed 7). */
export async function loadDigitsSplit(): Promise<DigitsSplit> {
  const { images, labels, n } = await eg.loadDigits();
  const [xTrain, yTrain, xTest, yTest] = eg.tidy(() => {
    const x = eg.tensor(images, [n, 8, 8, 1]).div(16);
    const y = eg.tensor(labels, [n], 'int32');
    return eg.data.trainTestSplit([x, y], { testSize: 0.2, seed: 7 }).map((t) => eg.keep(t));
  });
  const yt = yTrain.dataSync() as Int32Array;
  yTrain.dispose();
  return { xTrain, yTrain: yt, xTest, yTest, trainImages: xTrain.dataSync() as Float32Array };
}

/** Rotates every 8x8 image by k·90° (k = 0..3): returns 4n images and their rotation labels. */
export function rotationTask(images: Float32Array, n: number): { x: eg.Tensor; y: eg.Tensor } {
  const out = new Float32Array(4 * n * 64);
  const lab = new Int32Array(4 * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 4; k++) {
      const dst = (k * n + i) * 64;
      for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) {
        // k quarter-turns counter-clockwise: (r, c) <- source pixel
        const [sr, sc] = k === 0 ? [r, c] : k === 1 ? [c, 7 - r] : k === 2 ? [7 - r, 7 - c] : [7 - c, r];
        out[dst + r * 8 + c] = images[i * 64 + sr * 8 + sc];
      }
      lab[k * n + i] = k;
    }
  }
  return { x: eg.tensor(out, [4 * n, 8, 8, 1]), y: eg.tensor(lab, [4 * n], 'int32') };
}

/**
 * A randomly augmented copy of images `idx` of `images` (8x8, row-major): rotation up to
 * ±`maxDegrees` and a shift of up to one pixel (bilinear), contrast scaling, a 3x3 cut-out half
 * of the time, and a little noise. Data preparation in JS (64 pixels per image), not a hot loop.
 */
export function augment(images: Float32Array, idx: ArrayLike<number>, random: () => number, maxDegrees = 15): eg.Tensor {
  const out = new Float32Array(idx.length * 64);
  for (let b = 0; b < idx.length; b++) {
    const src = idx[b] * 64;
    const px = (r: number, c: number) => (r >= 0 && r < 8 && c >= 0 && c < 8 ? images[src + r * 8 + c] : 0);
    const dx = Math.floor(random() * 3) - 1;
    const dy = Math.floor(random() * 3) - 1;
    const ang = (random() - 0.5) * 2 * maxDegrees * (Math.PI / 180);
    const [ca, sa] = [Math.cos(ang), Math.sin(ang)];
    const scale = 0.7 + 0.6 * random();
    const erase = random() < 0.5;
    const [ex, ey] = [Math.floor(random() * 6), Math.floor(random() * 6)];
    for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) {
      const yr = r - 3.5 - dy;
      const xc = c - 3.5 - dx;
      const fr = ca * yr - sa * xc + 3.5;
      const fc = sa * yr + ca * xc + 3.5;
      const r0 = Math.floor(fr);
      const c0 = Math.floor(fc);
      const [ar, ac] = [fr - r0, fc - c0];
      let v = (1 - ar) * ((1 - ac) * px(r0, c0) + ac * px(r0, c0 + 1)) + ar * ((1 - ac) * px(r0 + 1, c0) + ac * px(r0 + 1, c0 + 1));
      if (erase && r >= ey && r < ey + 3 && c >= ex && c < ex + 3) v = 0;
      out[b * 64 + r * 8 + c] = v * scale + 0.1 * (random() - 0.5);
    }
  }
  return eg.tensor(out, [idx.length, 8, 8, 1]);
}

/**
 * SimCLR's NT-Xent loss for `z` `[2B, d]` holding two views of B images (rows i and i + B are a
 * positive pair): cross-entropy of each row's cosine similarities / `temperature` against its
 * partner, the row itself excluded. `constants` caches the self-mask and the partner indices.
 */
export function contrastiveLoss(z: eg.Tensor, temperature: number, constants: { selfMask: eg.Tensor; partners: eg.Tensor }): eg.Tensor {
  const zn = z.div(z.square().sum(-1, true).add(1e-8).sqrt());
  const sim = zn.matmulT(zn, false, true).mul(1 / temperature).add(constants.selfMask);
  return eg.losses.sparseCategoricalCrossEntropy(sim, constants.partners, { fromLogits: true });
}

/** The constant tensors of `contrastiveLoss` for batches of B pairs (kept: dispose when done). */
export function contrastiveConstants(b: number): { selfMask: eg.Tensor; partners: eg.Tensor } {
  const n = 2 * b;
  return {
    selfMask: eg.keep(eg.tensor(Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? -1e9 : 0)), [n, n])),
    partners: eg.keep(eg.tensor(Int32Array.from({ length: n }, (_, i) => (i < b ? i + b : i - b)), [n], 'int32')),
  };
}

/** The backbone used by both examples: a small ResNet (3 stages of basic blocks, width 16, 64 features). */
export function makeModel(numClasses: number, seed: number): eg.nn.ResNet {
  return eg.nn.resnet({ layers: [1, 1, 1], width: 16, inChannels: 1, numClasses, seed });
}

/** SimCLR's projection head: an MLP on the pooled features (replaced by a classifier for fine-tuning). */
export function projectionHead(features: number, dim: number, seed: number): eg.nn.Module {
  return new eg.nn.Sequential(new eg.nn.Linear(features, features, { seed }), new eg.nn.ReLU(), new eg.nn.Linear(features, dim, { seed: seed + 1 }));
}

export const xent = (logits: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(logits, y, { fromLogits: true });

/** Accuracy of `model` on (x, y) in evaluation mode. */
export function accuracy(model: eg.nn.Module, x: eg.Tensor, y: eg.Tensor): number {
  const wasTraining = model.training;
  model.eval();
  try {
    return eg.tidy(() => eg.noGrad(() => {
      const n = x.shape[0];
      let correct = 0;
      for (let s = 0; s < n; s += 256) {
        const e = Math.min(n, s + 256);
        const p = model.forward(x.slice([s, 0, 0, 0], [e, 8, 8, 1])).argMax(-1).cast('float32');
        correct += p.equal(y.slice([s], [e]).cast('float32')).sum().item();
      }
      return correct / n;
    }));
  } finally {
    model.train(wasTraining);
  }
}

/** Puts every BatchNorm under `prefix` in evaluation mode (keeps pretrained statistics while fine-tuning). */
export function freezeBatchNormStats(model: eg.nn.Module, prefixes: string[]): void {
  for (const [name, m] of model.namedModules()) {
    if (m instanceof eg.nn.BatchNorm && prefixes.some((p) => name === p || name.startsWith(`${p}.`))) m.training = false;
  }
}

/** `steps` optimizer steps on random mini-batches of (x, y) (indices drawn with a seeded stream). */
export function trainSteps(model: eg.nn.Module, opt: eg.optim.Optimizer<{ lr: number }>, x: eg.Tensor, y: eg.Tensor, o: {
  steps: number; batchSize: number; seed: number; onStep?: (step: number) => void; beforeStep?: () => void;
}): number {
  const n = x.shape[0];
  const random = eg.nn.text.seededRandom(o.seed);
  let last = NaN;
  for (let s = 0; s < o.steps; s++) {
    const bs = Math.min(o.batchSize, n);
    const idx = Int32Array.from({ length: bs }, () => Math.floor(random() * n));
    o.beforeStep?.();
    last = eg.tidy(() => {
      const [xb, yb] = eg.data.takeRows([x, y], idx);
      opt.zeroGrad();
      const l = xent(model.forward(xb), yb);
      l.backward();
      opt.step();
      return l.item();
    });
    o.onStep?.(s);
  }
  return last;
}
