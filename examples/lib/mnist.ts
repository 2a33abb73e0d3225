/**
 * The MNIST files shipped in examples/data/mnist (IDX format, gzipped; attribution in its README):
 * the 60,000-image training set and the 10,000-image test set. One loader for every example.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import * as eg from 'edgegrad';

export type MnistSplit = 'train' | 'test';

export interface MnistOptions {
  /** Keep only the first `limit` images (default all). */
  limit?: number;
  /** `'image'` (default): `[n, 28, 28, 1]` NHWC in [0, 1]; `'flat'`: `[n, 784]`. */
  layout?: 'image' | 'flat';
}

const FILES: Record<MnistSplit, [string, string]> = {
  train: ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'],
  test: ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'],
};

/** Images scaled to [0, 1] (float32) and labels (int32 `[n]`). The caller owns both tensors. */
export async function loadMnist(split: MnistSplit, o: MnistOptions = {}): Promise<{ x: eg.Tensor; y: eg.Tensor; n: number }> {
  const dir = new URL('../data/mnist/', import.meta.url);
  const [imgFile, labFile] = FILES[split];
  const img = gunzipSync(await readFile(new URL(imgFile, dir)));
  const lab = gunzipSync(await readFile(new URL(labFile, dir)));
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const lv = new DataView(lab.buffer, lab.byteOffset, lab.byteLength);
  // IDX magic numbers (big-endian): 0x803 = uint8 rank 3, 0x801 = uint8 rank 1.
  if (dv.getUint32(0) !== 0x803 || lv.getUint32(0) !== 0x801 || dv.getUint32(4) !== lv.getUint32(4)) throw new Error(`${imgFile}/${labFile}: not a matching pair of MNIST IDX files`);
  const n = Math.min(dv.getUint32(4), o.limit ?? Infinity);
  const pixels = new Float32Array(n * 784);
  for (let i = 0; i < n * 784; i++) pixels[i] = img[16 + i] / 255;
  const labels = Int32Array.from(lab.subarray(8, 8 + n));
  const shape = o.layout === 'flat' ? [n, 784] : [n, 28, 28, 1];
  return { x: eg.tensor(pixels, shape), y: eg.tensor(labels, [n], 'int32'), n };
}

/**
 * Wong et al.'s small MNIST CNN (conv16 4x4 s2, conv32 4x4 s2, fc100, fc10; 28x28x1 inputs), its four
 * weighted layers seeded `seed` .. `seed + 3`: the robust-mnist and certify-mnist examples train it.
 */
export function smallMnistCnn(seed = 1): eg.nn.Sequential {
  const { nn } = eg;
  return new nn.Sequential(
    new nn.Conv2d(1, 16, 4, { stride: 2, padding: 1, seed }), new nn.ReLU(),
    new nn.Conv2d(16, 32, 4, { stride: 2, padding: 1, seed: seed + 1 }), new nn.ReLU(),
    new nn.Flatten(), new nn.Linear(32 * 7 * 7, 100, { seed: seed + 2 }), new nn.ReLU(), new nn.Linear(100, 10, { seed: seed + 3 }),
  );
}
