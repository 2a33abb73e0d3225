/** The main job's digits data split and CNN, shared with the examples that explain it. */
import * as eg from 'edgegrad';

const { nn } = eg;

/** The 1797 UCI digits, pixels scaled to [0, 1], NHWC [n, 8, 8, 1]; 20% held out (seed 7): [xTrain, yTrain, xTest, yTest]. */
export async function digitsSplit(): Promise<eg.Tensor[]> {
  const { images, labels, n } = await eg.loadDigits();
  return eg.tidy(() => {
    const x = eg.tensor(images, [n, 8, 8, 1]).div(16);
    const y = eg.tensor(labels, [n], 'int32');
    return eg.data.trainTestSplit([x, y], { testSize: 0.2, seed: 7 });
  });
}

/** Conv2d → BatchNorm → ReLU → max-pool (twice) → dropout → Dense, seeded. */
export function digitsCnn(): eg.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 32, 3, { padding: 'same', bias: false, weightInit: 'heNormal', seed: 1 }),
    new nn.BatchNorm2d(32),
    new nn.ReLU(),
    new nn.MaxPool2d(2), // 4x4
    new nn.Conv2d(32, 64, 3, { padding: 'same', bias: false, weightInit: 'heNormal', seed: 2 }),
    new nn.BatchNorm2d(64),
    new nn.ReLU(),
    new nn.MaxPool2d(2), // 2x2
    new nn.Flatten(),
    new nn.Dropout(0.3, 3),
    new nn.Linear(2 * 2 * 64, 10, { seed: 4, weightRegularizer: nn.l2(1e-4) }),
  );
}
