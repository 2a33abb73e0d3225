/**
 * The accuracy cost of the relaxed engine's 7-bit int8 scheme (issue 19 §3; README "Relaxed SIMD").
 *
 * On the deterministic engine this trains the digits CNN (examples/lib/digits-cnn.ts) and Wong's small
 * MNIST CNN (examples/lib/mnist.ts, on the first 20,000 training images), quantizes both to int8
 * (post-training, percentile calibration) and records float32 and int8 test logits; then a second
 * process on the relaxed engine (`init({ relaxed: true })`: 7-bit activations on the relaxed dot
 * product) runs the same serialized int8 models. Prints test accuracy (float32, int8 deterministic,
 * int8 relaxed), prediction agreement, and the largest |logit| differences.
 *
 * Run on Node 22 or later (relaxed SIMD): `node_modules/node22/bin/node --import tsx examples/relaxed-int8.ts`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as eg from 'edgegrad';
import { digitsCnn, digitsSplit } from './lib/digits-cnn.js';
import { loadMnist, smallMnistCnn } from './lib/mnist.js';

const C = eg.compress;
const NAMES = ['digits', 'mnist'] as const;

function compile(model: eg.nn.Sequential, lr: number): void {
  model.compile({
    optimizer: new eg.optim.Adam(model.trainableParameters(), { lr }),
    loss: (l, y) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true }),
  });
}

/** Test inputs and labels of one task, and its trained float model. */
async function task(name: (typeof NAMES)[number]): Promise<{ model: eg.nn.Sequential; xTrain: eg.Tensor; xTest: eg.Tensor; yTest: eg.Tensor }> {
  if (name === 'digits') {
    const [xTrain, yTrain, xTest, yTest] = await digitsSplit();
    const model = digitsCnn();
    compile(model, 3e-3);
    await model.fit(xTrain, yTrain, { epochs: 15, batchSize: 32, seed: 1, verbose: 0 });
    yTrain.dispose();
    return { model, xTrain, xTest, yTest };
  }
  const train = await loadMnist('train', { limit: 20000 });
  const test = await loadMnist('test');
  const model = smallMnistCnn(1);
  compile(model, 1e-3);
  await model.fit(train.x, train.y, { epochs: 2, batchSize: 64, seed: 1, verbose: 0 });
  train.y.dispose();
  return { model, xTrain: train.x, xTest: test.x, yTest: test.y };
}

const logits = (m: { predict(x: eg.Tensor): eg.Tensor }, x: eg.Tensor) => eg.tidy(() => m.predict(x).dataSync() as Float32Array);

function accuracy(l: Float32Array, labels: Int32Array): number {
  let right = 0;
  for (let i = 0; i < labels.length; i++) if (argmax(l, i) === labels[i]) right++;
  return right / labels.length;
}

function argmax(l: Float32Array, row: number): number {
  let best = 0;
  for (let j = 1; j < 10; j++) if (l[row * 10 + j] > l[row * 10 + best]) best = j;
  return best;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const f32 = (file: string) => new Float32Array(readFileSync(file).buffer.slice(0));

const [mode, dir] = process.argv.slice(2);
if (mode === '--relaxed') {
  // The child: the relaxed engine runs the serialized int8 models.
  const info = await eg.init({ relaxed: true, threads: 1 });
  for (const name of NAMES) {
    const qm = C.QuantizedModel.deserialize(readFileSync(join(dir, `${name}.int8`)));
    const x = eg.tensor(f32(join(dir, `${name}.x`)), JSON.parse(readFileSync(join(dir, `${name}.shape`), 'utf8')));
    writeFileSync(join(dir, `${name}.relaxed`), logits(qm, x));
    eg.dispose([x]);
    qm.dispose();
  }
  console.log(`relaxed engine: ${info.build}, relaxed ${info.relaxed}`);
} else {
  if (Number(process.versions.node.split('.')[0]) < 22) throw new Error(`the relaxed engine needs Node 22 or later (this is ${process.version})`);
  await eg.init({ threads: 1 });
  const out = mkdtempSync(join(tmpdir(), 'relaxed-int8-'));
  const rows: Record<string, { labels: Int32Array; f32: Float32Array; int8: Float32Array }> = {};
  for (const name of NAMES) {
    const { model, xTrain, xTest, yTest } = await task(name);
    model.eval();
    const qm = C.quantize(model, xTrain, { method: 'percentile', maxSamples: 2048 });
    rows[name] = { labels: yTest.dataSync() as Int32Array, f32: logits(model, xTest), int8: logits(qm, xTest) };
    writeFileSync(join(out, `${name}.int8`), qm.serialize());
    writeFileSync(join(out, `${name}.x`), xTest.dataSync() as Float32Array);
    writeFileSync(join(out, `${name}.shape`), JSON.stringify(xTest.shape));
    eg.dispose([xTrain, xTest, yTest]);
    qm.dispose();
    model.dispose();
  }
  const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--relaxed', out], { stdio: 'inherit' });
  if (child.status !== 0) throw new Error(`the relaxed run failed (status ${child.status}): it needs Node 22 or later`);
  console.log(`Node ${process.versions.node}; test accuracy and logits (int8 = post-training, percentile calibration)`);
  console.log('task    n      float32   int8 det  int8 rx   agree det/rx  max|rx-det|  max|det-f32|  max|rx-f32|  max|f32|');
  for (const name of NAMES) {
    const r = rows[name];
    const rx = f32(join(out, `${name}.relaxed`));
    let agree = 0;
    for (let i = 0; i < r.labels.length; i++) if (argmax(rx, i) === argmax(r.int8, i)) agree++;
    const pct = (v: number) => `${(100 * v).toFixed(2)}%`.padEnd(10);
    console.log(`${name.padEnd(8)}${String(r.labels.length).padEnd(7)}${pct(accuracy(r.f32, r.labels))}${pct(accuracy(r.int8, r.labels))}${pct(accuracy(rx, r.labels))}`
      + `${pct(agree / r.labels.length).padEnd(14)}${maxDiff(rx, r.int8).toFixed(4).padEnd(13)}${maxDiff(r.int8, r.f32).toFixed(4).padEnd(14)}${maxDiff(rx, r.f32).toFixed(4).padEnd(13)}${maxAbs(r.f32).toFixed(2)}`);
  }
  rmSync(out, { recursive: true });
}
