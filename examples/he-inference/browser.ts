/**
 * The browser side checked in headless Chromium: starts server.ts (with the models run.ts saved),
 * the page's vite dev server (proxying /api to it) and Chromium; then
 * 1. clicks the page's button (32 test digits encrypted, classified, decrypted in the page), and
 * 2. for each model, sends the whole test set through the page's `heClassify` — keys made, rows
 *    encrypted and logits decrypted in Chromium by client.ts — and compares the decrypted logits with
 *    the plaintext model's (this process loads the saved model): max abs error ≤ 1e-3 and the same
 *    predicted class for every row, or it exits with an error.
 *
 *   npx tsx examples/he-inference/browser.ts [--models logreg,mlp,cnn]     (after run.ts)
 */
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright';
import { createServer } from 'vite';
import * as eg from 'edgegrad';
import { startServer } from './server.js';
import { loadSplit, MODEL_NAMES, plainLogits, type ModelName } from './models.js';

const i = process.argv.indexOf('--models');
const names = (i >= 0 ? process.argv[i + 1].split(',') : [...MODEL_NAMES]) as ModelName[];
const modelsDir = fileURLToPath(new URL('../../reports/he-inference/models/', import.meta.url));

await eg.init({ threads: 1 });
const api = await startServer({ models: [...new Set<ModelName>([...names, 'cnn'])], modelsDir });
process.env.HE_SERVER = api.url;
const vite = await createServer({ configFile: fileURLToPath(new URL('./vite.config.ts', import.meta.url)), server: { host: '127.0.0.1', hmr: false, watch: { ignored: ['**'] } }, logLevel: 'warn' });
// (No hot reload: files edited elsewhere in the repository must not reload the page mid-check.)
await vite.listen();
const pageUrl = vite.resolvedUrls?.local[0] ?? '';
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
let failed = false;
try {
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`[page] ${m.text()}`);
  });
  // 1. The page as a person uses it, on one ciphertext of digits.
  await page.goto(`${pageUrl}?n=32`);
  await page.waitForFunction(() => !(document.getElementById('run') as HTMLButtonElement).disabled, null, { timeout: 120_000 });
  await page.click('#run');
  await page.waitForFunction(() => document.body.dataset.result !== undefined, null, { timeout: 600_000 });
  const result = JSON.parse((await page.evaluate(() => document.body.dataset.result)) ?? '{}') as Record<string, number | string>;
  console.log(await page.evaluate(() => document.getElementById('log')?.textContent));
  if (result.error) throw new Error(`the page failed: ${result.error}`);
  console.log(`Chromium ${browser.version()}: the page classified ${result.correct}/${result.n} digits right`);

  // 2. Whole test sets through the page's client, against the plaintext models.
  for (const name of names) {
    const split = await loadSplit(name);
    const { model } = await eg.loadModel(`${modelsDir}${name}`);
    const plain = plainLogits(model, split.xTest);
    const rows = Array.from(split.xTest.dataSync());
    const r = await page.evaluate(
      ([m, x, shape]) => (globalThis as unknown as { heClassify(m: string, x: number[], s: number[]): Promise<{ logits: number[]; ms: number; sent: number; received: number }> }).heClassify(m, x, shape),
      [name, rows, split.xTest.shape] as [string, number[], number[]],
    );
    const enc = eg.tensor(Float32Array.from(r.logits), plain.shape);
    const [err, same, acc] = eg.tidy(() => {
      const pc = plain.argMax(1).cast('float32');
      const ec = enc.argMax(1).cast('float32');
      return [enc.sub(plain).abs().max().item(), pc.equal(ec).mean().item(), ec.equal(split.yTest.cast('float32')).mean().item()];
    });
    const n = split.xTest.shape[0];
    const ok = err <= 1e-3 && same === 1;
    failed ||= !ok;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${n} test rows encrypted in Chromium, accuracy ${(acc * 100).toFixed(2)}%, same class as plaintext ${(same * 100).toFixed(2)}%, max abs logit error ${err.toExponential(2)}, ${r.ms.toFixed(0)} ms, sent ${(r.sent / 2 ** 20).toFixed(2)} MB, received ${(r.received / 2 ** 20).toFixed(2)} MB`);
    eg.dispose([plain, enc, split.xTrain, split.yTrain, split.xTest, split.yTest]);
    model.dispose();
  }
} finally {
  await browser.close();
  await vite.close();
  await api.close();
}
if (failed) {
  console.error('encrypted logits in Chromium differ from plaintext');
  process.exit(1);
}
