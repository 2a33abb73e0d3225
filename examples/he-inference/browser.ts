/**
 * Runs the browser page in headless Chromium against the server: starts server.ts (models trained
 * by run.ts), the page's vite dev server (proxying /api to it), opens the page, clicks "Encrypt and
 * classify", and prints what the page measured — the same client code as run.ts, in a browser.
 *
 *   npx tsx examples/he-inference/browser.ts        (after run.ts has saved the models)
 */
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright';
import { createServer } from 'vite';
import * as eg from 'edgegrad';
import { startServer } from './server.js';

await eg.init({ threads: 1 });
const api = await startServer({ models: ['cnn'] });
process.env.HE_SERVER = api.url;
const vite = await createServer({ configFile: fileURLToPath(new URL('./vite.config.ts', import.meta.url)), server: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
await vite.listen();
const pageUrl = vite.resolvedUrls?.local[0] ?? '';
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`[page] ${m.text()}`);
  });
  // One ciphertext of digits: the check is that the browser client works, run.ts measures the rest.
  await page.goto(`${pageUrl}?n=32`);
  await page.waitForFunction(() => !(document.getElementById('run') as HTMLButtonElement).disabled, null, { timeout: 120_000 });
  await page.click('#run');
  await page.waitForFunction(() => document.body.dataset.result !== undefined, null, { timeout: 600_000 });
  const result = JSON.parse((await page.evaluate(() => document.body.dataset.result)) ?? '{}') as Record<string, number | string>;
  console.log(await page.evaluate(() => document.getElementById('log')?.textContent));
  if (result.error) throw new Error(`the page failed: ${result.error}`);
  console.log(`Chromium ${browser.version()}: ${result.correct}/${result.n} digits right, encrypted in the page, evaluated by the server (${pageUrl} → ${api.url})`);
} finally {
  await browser.close();
  await vite.close();
  await api.close();
}
