/**
 * The three models of the encrypted-inference example, their data and their (plaintext, seeded)
 * training. Every layer is one `eg.he.compile` evaluates: Linear, Conv2d, folded BatchNorm, AvgPool2d,
 * Flatten and the polynomial activation `nn.Square` (CryptoNets' x², Gilad-Bachrach et al. 2016).
 *
 * - `logreg`: breast-cancer logistic regression, 30 standardized features → 2 logits (softmax
 *   regression; the logit difference is the usual single logistic-regression logit).
 * - `mlp`: the 30-16-2 MLP with a square activation.
 * - `cnn`: a CryptoNets-style digits CNN on the 8x8 sklearn digits: Conv2d(1→4, 3x3, stride 2,
 *   same) → BatchNorm (folded into the convolution) → Square → Flatten → Linear(64 → 10). Depth 3
 *   (conv, square, linear). Every vector is at most 64 wide, so `eg.he`'s batch packing (vectors
 *   padded to a power-of-two period d, 2d slots per example) puts 32 digits in one N = 8192
 *   ciphertext. Wider variants cost throughput quadratically in d: a stride-1 conv with 3 maps →
 *   Square → AvgPool2d(2) → Linear (d = 128) reached 96.7% but 16 digits per ciphertext and twice
 *   the rotations; stride-2 variants with AvgPool after the square lost 3–7 points of accuracy.
 */
import * as eg from 'edgegrad';
import { loadBreastCancer } from '../lib/breast-cancer.js';
import { digitsSplit } from '../lib/digits-cnn.js';

const { nn, optim } = eg;

/** The models this example serves. */
export const MODEL_NAMES = ['logreg', 'mlp', 'cnn'] as const;
/** One of `MODEL_NAMES`. */
export type ModelName = (typeof MODEL_NAMES)[number];

/** What each model takes (per example, NHWC for images) and how many logits it returns. */
export const MODEL_SPECS: Record<ModelName, { inputShape: number[]; outputs: number; title: string }> = {
  logreg: { inputShape: [30], outputs: 2, title: 'breast cancer, logistic regression 30→2' },
  mlp: { inputShape: [30], outputs: 2, title: 'breast cancer, MLP 30-16-2 with x²' },
  cnn: { inputShape: [8, 8, 1], outputs: 10, title: 'digits 8x8, CNN conv3x3/2x4-BN-x²-linear' },
};

/** The untrained model (seeded initial weights). */
export function buildModel(name: ModelName): eg.nn.Sequential {
  switch (name) {
    case 'logreg':
      return new nn.Sequential(new nn.Linear(30, 2, { seed: 11 }));
    case 'mlp':
      return new nn.Sequential(new nn.Linear(30, 16, { seed: 21 }), new nn.Square(), new nn.Linear(16, 2, { seed: 22 }));
    case 'cnn':
      return new nn.Sequential(
        new nn.Conv2d(1, 4, 3, { stride: 2, padding: 'same', seed: 31 }), // 4x4x4
        new nn.BatchNorm2d(4),
        new nn.Square(),
        new nn.Flatten(),
        new nn.Linear(64, 10, { seed: 32 }),
      );
  }
}

/** A model's train and test split: features (`[n, ...inputShape]`) and int32 labels. */
export interface Split {
  xTrain: eg.Tensor;
  yTrain: eg.Tensor;
  xTest: eg.Tensor;
  yTest: eg.Tensor;
}

/** Breast cancer (20% held out, seed 7, standardized by the training rows) or digits (20% held out, seed 7, pixels / 16). */
export async function loadSplit(name: ModelName): Promise<Split> {
  if (name === 'cnn') {
    const [xTrain, yTrain, xTest, yTest] = await digitsSplit();
    return { xTrain, yTrain, xTest, yTest };
  }
  const { xTrain, yTrain, xTest, yTest } = await loadBreastCancer();
  return { xTrain, yTrain, xTest, yTest };
}

/** Training settings per model (Adam, cross-entropy on logits, seeded shuffles). */
const TRAINING: Record<ModelName, { epochs: number; lr: number; batchSize: number }> = {
  logreg: { epochs: 60, lr: 0.01, batchSize: 32 },
  mlp: { epochs: 20, lr: 0.003, batchSize: 32 },
  cnn: { epochs: 40, lr: 0.003, batchSize: 32 },
};

/** Trains `name` on its split in plaintext (deterministic: seeded weights and shuffles); returns the model in eval mode. */
export async function trainModel(name: ModelName, split: Split, o: { epochs?: number } = {}): Promise<eg.nn.Sequential> {
  const t = TRAINING[name];
  const model = buildModel(name);
  const optimizer = new optim.Adam(model.trainableParameters(), { lr: t.lr });
  model.compile({ optimizer, loss: (logits, y) => eg.losses.sparseCategoricalCrossEntropy(logits, y, { fromLogits: true }) });
  await model.fit(split.xTrain, split.yTrain, { epochs: o.epochs ?? t.epochs, batchSize: t.batchSize, seed: 1, verbose: 0 });
  optimizer.dispose();
  return model.eval();
}

/** Plaintext logits of `x` (`[n, outputs]`, no gradient tracking). */
export function plainLogits(model: eg.nn.Module, x: eg.Tensor): eg.Tensor {
  return eg.noGrad(() => model.eval().forward(x));
}
