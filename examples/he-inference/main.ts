/**
 * The browser side of the encrypted-inference example: the same client code as the Node driver
 * (client.ts). It encrypts the 359 held-out digits (or the first `?n=`) in the page, sends the ciphertexts to the
 * server's digits CNN (through vite's `/api` proxy), decrypts the logits and shows the predictions.
 *
 *   npx tsx examples/he-inference/server.ts &            # the server, 127.0.0.1:8787
 *   npx vite --config examples/he-inference/vite.config.ts
 *
 * When done it sets `document.body.dataset.result` (JSON: accuracy, bytes, timings). For scripted
 * checks (examples/he-inference/browser.ts) it also exposes `heClassify(model, rows, shape)`: one
 * encrypted round trip of any rows through any served model, returning the decrypted logits.
 */
import * as eg from 'edgegrad';
import { HEInferenceClient } from './client.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const log = (s: string) => {
  $('log').textContent += `${s}\n`;
};
const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MB`;

const info = await eg.init();
$('status').textContent = `engine: ${info.build}, ${info.threads} thread(s)`;
// The digits split of models.ts (20% held out, seed 7, pixels / 16), loaded here from the bundled asset.
const { images, labels, n } = await eg.loadDigits();
// `?n=32` classifies only the first 32 test digits (one ciphertext), e.g. for a quick check.
const limit = Number(new URLSearchParams(location.search).get('n') ?? Infinity);
const [xTest, yTest] = eg.tidy(() => {
  const [, , x, y] = eg.data.trainTestSplit([eg.tensor(images, [n, 8, 8, 1]).div(16), eg.tensor(labels, [n], 'int32')], { testSize: 0.2, seed: 7 });
  const m = Math.min(limit, x.shape[0]);
  return [x.slice([0, 0, 0, 0], [m, 8, 8, 1]).clone(), y.slice([0], [m]).clone()];
});
$<HTMLButtonElement>('run').textContent = `Encrypt and classify ${xTest.shape[0]} test digits`;

/** One encrypted round trip of `rows` (`[n, ...shape]` row-major) through `model`, for scripted checks (browser.ts). */
async function classify(model: string, rows: number[], shape: number[]) {
  const client = await HEInferenceClient.connect('', model);
  try {
    const x = eg.tensor(Float32Array.from(rows), shape);
    const p = await client.predict(x);
    const logits = Array.from(p.logits.dataSync());
    eg.dispose([x, p.logits]);
    return { logits, ms: p.ms, sent: p.sent, received: p.received, keygenMs: client.keygenMs, bundleBytes: client.bundleBytes };
  } finally {
    await client.close();
  }
}
(globalThis as { heClassify?: typeof classify }).heClassify = classify;

const button = $<HTMLButtonElement>('run');
button.disabled = false;
button.onclick = async () => {
  button.disabled = true;
  try {
    log('making a key pair and sending the public keys…');
    const client = await HEInferenceClient.connect('', 'cnn');
    log(`${client.info.title}: depth ${client.info.depth}, N = ${client.info.params.polyModulusDegree}, ${client.info.examplesPerCiphertext} digits per ciphertext`);
    log(`keys in ${(client.keygenMs / 1000).toFixed(1)} s, public bundle ${mb(client.bundleBytes)}`);
    const p = await client.predict(xTest);
    const predicted = eg.tidy(() => Array.from(p.logits.argMax(1).dataSync()));
    const truth = Array.from(yTest.dataSync());
    const correct = predicted.filter((c, i) => c === truth[i]).length;
    log(`${xTest.shape[0]} digits: ${correct} right (${((100 * correct) / truth.length).toFixed(2)}%), ${p.ms.toFixed(0)} ms, sent ${mb(p.sent)}, received ${mb(p.received)}`);
    const pixels = xTest.dataSync();
    for (let i = 0; i < Math.min(30, truth.length); i++) {
      const fig = document.createElement('figure');
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = 8;
      const ctx = canvas.getContext('2d')!;
      const img = ctx.createImageData(8, 8);
      for (let k = 0; k < 64; k++) {
        const v = 255 - Math.round(255 * Math.min(1, pixels[i * 64 + k]));
        img.data.set([v, v, v, 255], 4 * k);
      }
      ctx.putImageData(img, 0, 0);
      const cap = document.createElement('figcaption');
      cap.textContent = `${predicted[i]}`;
      if (predicted[i] !== truth[i]) cap.className = 'wrong';
      fig.append(canvas, cap);
      $('digits').append(fig);
    }
    document.body.dataset.result = JSON.stringify({ n: truth.length, correct, ms: p.ms, sent: p.sent, received: p.received, keygenMs: client.keygenMs, bundleBytes: client.bundleBytes });
    p.logits.dispose();
    await client.close();
  } catch (e) {
    log(`failed: ${(e as Error).message}`);
    document.body.dataset.result = JSON.stringify({ error: (e as Error).message });
  } finally {
    button.disabled = false;
  }
};
