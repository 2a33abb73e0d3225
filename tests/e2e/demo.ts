/**
 * End-to-end test of the browser demo (examples/browser): builds it for production with Vite
 * (target/demo-dist) and serves the build twice from a static server — cross-origin isolated
 * (threaded build) and without the headers (single-threaded fallback) — and drives it in
 * headless Chromium (Playwright) and Firefox ESR (WebdriverIO + geckodriver): waits for the engine,
 * trains a few epochs, draws a digit with pointer strokes, reads the prediction, switches to int8
 * and to Grad-CAM, and saves a screenshot per run under reports/demo/. Fails on any console error,
 * uncaught error, a wrong build, or a missing prediction.
 *
 * With `--browsers ...,webkit` (or EDGEGRAD_WEBKIT=1) it also drives WebKitGTK's MiniBrowser
 * through WebKitWebDriver under Xvfb (optional: Debian's webkit2gtk-driver and xvfb): the demo as
 * above, plus the determinism program's page (tests/engines/page), whose rows join the digest table
 * (target/engines/). No Vitest provider drives MiniBrowser, so this is where WebKit gets checked.
 *
 *   node --import tsx tests/e2e/demo.ts [--browsers chromium,firefox,webkit] [--epochs 3]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { build } from 'vite';

/** What the page exposes on `window.edgegradDemo` (examples/browser/main.ts). */
interface DemoState {
  state: string;
  info: { build: string; threads: number; maxThreads: number; crossOriginIsolated: boolean; fallbackReason?: string } | null;
  errors: string[];
  history: { loss: number[]; valAccuracy: number[] };
  prediction: { model: string; digit: number; probs: number[]; ms: number } | null;
  reports: Record<string, { accuracy?: number; bytesOnDisk: number; latencyMs?: number }>;
}

/** The few things the test does in a page, for either driver. */
interface Driver {
  open(url: string): Promise<void>;
  /** Evaluates `expr` (an expression over `window`) in the page and returns its JSON value. */
  read<T>(expr: string): Promise<T>;
  click(selector: string): Promise<void>;
  /** Pointer strokes on the element, points as fractions of its width and height. */
  draw(selector: string, strokes: [number, number][][]): Promise<void>;
  screenshot(path: string): Promise<void>;
  consoleErrors(): string[];
  close(): Promise<void>;
}

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const browsers = opt('--browsers', process.env.EDGEGRAD_WEBKIT === '1' ? 'chromium,firefox,webkit' : 'chromium,firefox').split(',').filter(Boolean);
const epochs = Number(opt('--epochs', '3'));
const outDir = 'reports/demo';
const VIEW = { width: 1100, height: 2000 };

/** A seven: the top bar, then the diagonal. */
const SEVEN: [number, number][][] = [[[0.22, 0.18], [0.5, 0.17], [0.78, 0.18], [0.66, 0.45], [0.52, 0.7], [0.45, 0.88]]];

async function chromium(): Promise<Driver> {
  const { chromium: launcher } = await import('playwright');
  const browser = await launcher.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: VIEW });
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${m.text()} (${m.location().url})`); });
  page.on('pageerror', (e) => errors.push(e.message));
  return {
    open: async (url) => { await page.goto(url); },
    read: (expr) => page.evaluate(expr),
    click: async (sel) => { await page.click(sel); },
    async draw(sel, strokes) {
      const box = (await page.locator(sel).boundingBox())!;
      for (const s of strokes) {
        const at = ([fx, fy]: [number, number]) => [box.x + fx * box.width, box.y + fy * box.height] as const;
        await page.mouse.move(...at(s[0]));
        await page.mouse.down();
        for (let i = 1; i < s.length; i++) await page.mouse.move(...at(s[i]), { steps: 6 });
        await page.mouse.up();
      }
    },
    screenshot: async (path) => { await page.screenshot({ path, fullPage: true }); },
    consoleErrors: () => errors,
    close: () => browser.close(),
  };
}

async function firefox(): Promise<Driver> {
  const { remote } = await import('webdriverio');
  const browser = await remote({
    logLevel: 'error',
    capabilities: {
      browserName: 'firefox',
      'moz:firefoxOptions': { binary: process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr', args: ['-headless', `--width=${VIEW.width}`, `--height=${VIEW.height}`] },
      'wdio:geckodriverOptions': { binary: process.env.GECKODRIVER_PATH ?? `${homedir()}/.cargo/bin/geckodriver` },
    },
  });
  const errors: string[] = [];
  // Console errors through WebDriver BiDi's log events.
  await browser.sessionSubscribe({ events: ['log.entryAdded'] });
  browser.on('log.entryAdded', (e: { level?: string; text?: string | null }) => { if (e.level === 'error') errors.push(String(e.text)); });
  await browser.setWindowSize(VIEW.width, VIEW.height);
  return webdriverDriver(browser, { consoleErrors: () => errors, close: () => browser.deleteSession() });
}

/** The Driver over a WebdriverIO session (Firefox through BiDi, WebKit through classic WebDriver). */
function webdriverDriver(browser: WebdriverIO.Browser, o: Pick<Driver, 'consoleErrors' | 'close'>): Driver {
  return {
    open: async (url) => { await browser.url(url); },
    read: <T>(expr: string) => browser.execute(`return ${expr}`) as Promise<T>,
    click: async (sel) => { await (await browser.$(sel)).click(); },
    async draw(sel, strokes) {
      const el = await browser.$(sel);
      const size = await el.getSize();
      for (const s of strokes) {
        // Pointer-action offsets are from the element's centre.
        const at = ([fx, fy]: [number, number]) => ({ origin: el, x: Math.round((fx - 0.5) * size.width), y: Math.round((fy - 0.5) * size.height) });
        let chain = browser.action('pointer', { parameters: { pointerType: 'mouse' } }).move(at(s[0])).down();
        for (let i = 1; i < s.length; i++) {
          const [a, b] = [s[i - 1], s[i]];
          for (let k = 1; k <= 6; k++) chain = chain.move({ ...at([a[0] + ((b[0] - a[0]) * k) / 6, a[1] + ((b[1] - a[1]) * k) / 6]), duration: 10 });
        }
        await chain.up().perform();
      }
    },
    screenshot: async (path) => { await browser.saveScreenshot(path); },
    ...o,
  };
}

/** WebKitGTK's MiniBrowser: WebKitWebDriver (classic WebDriver, no BiDi) under a virtual X display. */
async function webkit(): Promise<Driver> {
  const port = 4500 + Math.floor(Math.random() * 400);
  // Its own process group, so closing ends xvfb-run, Xvfb and the driver together.
  const wd: ChildProcess = spawn('xvfb-run', ['-a', '-s', `-screen 0 ${VIEW.width}x${VIEW.height}x24`, 'WebKitWebDriver', `--port=${port}`], { stdio: 'ignore', detached: true });
  const stop = () => { try { process.kill(-wd.pid!, 'SIGTERM'); } catch { /* already gone */ } };
  await new Promise((r) => setTimeout(r, 1500));
  const { remote } = await import('webdriverio');
  let browser: WebdriverIO.Browser;
  try {
    browser = await remote({
      hostname: '127.0.0.1', port, path: '/', logLevel: 'error',
      capabilities: {
        browserName: 'MiniBrowser',
        'webkitgtk:browserOptions': { binary: process.env.MINIBROWSER_PATH ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser', args: ['--automation'] },
        'wdio:enforceWebDriverClassic': true,
      } as WebdriverIO.Capabilities,
    });
  } catch (e) {
    stop();
    throw e;
  }
  await browser.setWindowSize(VIEW.width, VIEW.height).catch(() => undefined);
  return webdriverDriver(browser, {
    // Classic WebDriver has no console access: the page's own error log (window.edgegradDemo.errors) is checked instead.
    consoleErrors: () => [],
    close: async () => {
      await browser.deleteSession().catch(() => undefined);
      stop();
    },
  });
}

const DRIVERS: Record<string, () => Promise<Driver>> = { chromium, firefox, webkit };

async function waitFor(d: Driver, expr: string, what: string, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await d.read<boolean>(expr)) return;
    const errs = await d.read<string[]>('window.edgegradDemo?.errors ?? []');
    if (errs.length > 0) throw new Error(`page error while waiting for ${what}: ${errs.join('; ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}`);
}

interface RunResult {
  browser: string;
  isolated: boolean;
  build: string;
  threads: number;
  epochs: number;
  valAccuracy: number;
  float32: string;
  int8: string;
  drawn: string;
  sample: string;
  screenshot: string;
}

async function runOne(name: string, isolated: boolean, url: string): Promise<RunResult> {
  const d = await DRIVERS[name]();
  try {
    await d.open(`${url}?epochs=${epochs}`);
    await waitFor(d, "document.body.dataset.state === 'ready'", 'the engine', 180);
    const info = (await d.read<DemoState['info']>('window.edgegradDemo.info'))!;
    // WebKitGTK may ship SharedArrayBuffer switched off even on an isolated page: then the simd fallback is right.
    const sab = await d.read<boolean>("typeof SharedArrayBuffer === 'function'");
    if (!sab && isolated && name !== 'webkit') throw new Error('no SharedArrayBuffer on a cross-origin isolated page');
    const wantBuild = isolated && sab ? 'simd-threads' : 'simd';
    if (info.build !== wantBuild || info.crossOriginIsolated !== isolated) {
      throw new Error(`expected the ${wantBuild} build (isolated: ${isolated}), the page runs ${info.build} (isolated: ${info.crossOriginIsolated})`);
    }
    await d.click('#train');
    await waitFor(d, "document.body.dataset.state === 'trained'", 'training', 300);
    await d.draw('#pad', SEVEN);
    await waitFor(d, 'window.edgegradDemo.prediction !== null', 'a prediction of the drawing', 30);
    const drawnF = (await d.read<DemoState['prediction']>('window.edgegradDemo.prediction'))!;
    await d.click('input[name=precision][value=int8]');
    await waitFor(d, "window.edgegradDemo.prediction?.model === 'int8'", 'the int8 prediction', 30);
    const drawnQ = (await d.read<DemoState['prediction']>('window.edgegradDemo.prediction'))!;
    for (const p of [drawnF, drawnQ]) {
      const sum = p.probs.reduce((a, b) => a + b, 0);
      if (p.probs.length !== 10 || Math.abs(sum - 1) > 1e-3 || p.digit < 0 || p.digit > 9) throw new Error(`bad prediction ${JSON.stringify(p)}`);
    }
    // A held-out digit from the grid (test digit 3) on the pad, explained with Grad-CAM.
    await d.click('#digits figure:nth-child(4)');
    await d.click('input[name=precision][value=float32]');
    const sampleF = (await d.read<DemoState['prediction']>('window.edgegradDemo.prediction'))!;
    await d.read("(() => { const s = document.getElementById('explainer'); s.value = 'gradcam'; s.dispatchEvent(new Event('change')); return true; })()");
    const state = (await d.read<DemoState>('window.edgegradDemo'))!;
    const shot = `${outDir}/${name}-${isolated ? 'isolated' : 'not-isolated'}.png`;
    // The drawing back on the pad for the picture, with its IG explanation.
    await d.click('#clear');
    await d.read("(() => { const s = document.getElementById('explainer'); s.value = 'ig'; s.dispatchEvent(new Event('change')); return true; })()");
    await d.draw('#pad', SEVEN);
    await waitFor(d, 'window.edgegradDemo.prediction !== null', 'the prediction for the screenshot', 30);
    await d.screenshot(shot);
    let fooled = '';
    if (name === 'chromium' && isolated) {
      // Once: the robust twin and the attack panel.
      await d.click('#robustBtn');
      await waitFor(d, "document.body.dataset.state === 'trained' && !document.getElementById('attackBtn').disabled", 'the robust twin', 300);
      await d.click('#attackBtn');
      await waitFor(d, "document.querySelector('#side-robust .adv').textContent !== ''", 'the attack', 60);
      fooled = await d.read<string>("[...document.querySelectorAll('.adv')].map((e) => e.textContent).join(' / ')");
      await d.screenshot(shot);
    }
    const pageErrors = [...state.errors, ...(await d.read<string[]>('window.edgegradDemo.errors'))];
    const consoleErrors = d.consoleErrors();
    if (pageErrors.length > 0 || consoleErrors.length > 0) {
      throw new Error(`errors in the page: ${[...new Set([...pageErrors, ...consoleErrors])].join(' | ')}`);
    }
    const pct = (v?: number) => `${((v ?? NaN) * 100).toFixed(1)}%`;
    const rep = (k: string) => `${pct(state.reports[k]?.accuracy)}, ${(state.reports[k].bytesOnDisk / 1024).toFixed(1)} KiB, ${state.reports[k].latencyMs?.toFixed(2)} ms`;
    return {
      browser: name, isolated, build: info.fallbackReason ? `${info.build} (${info.fallbackReason})` : info.build, threads: info.threads, epochs: state.history.loss.length,
      valAccuracy: state.history.valAccuracy.at(-1) ?? NaN, float32: rep('float32'), int8: rep('int8'),
      drawn: `f32 ${drawnF.digit} (${pct(drawnF.probs[drawnF.digit])}), int8 ${drawnQ.digit} (${pct(drawnQ.probs[drawnQ.digit])})`,
      sample: `test digit 3 → ${sampleF.digit}${fooled ? `; attack: ${fooled}` : ''}`, screenshot: shot,
    };
  } catch (e) {
    await d.screenshot(`${outDir}/${name}-${isolated ? 'isolated' : 'not-isolated'}-failed.png`).catch(() => undefined);
    throw e;
  } finally {
    await d.close();
  }
}

const distDir = 'target/demo-dist';
const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.gz': 'application/gzip',
  '.ttf': 'font/ttf', '.json': 'application/json', '.svg': 'image/svg+xml',
};

/** A static server for the built demo, with or without the cross-origin isolation headers. */
async function serve(isolated: boolean, root = distDir): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    let file = join(root, path);
    try {
      if (statSync(file).isDirectory()) file = join(file, 'index.html');
      const body = readFileSync(file);
      const headers: Record<string, string> = { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' };
      if (isolated) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
      res.writeHead(200, headers).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

const digestDir = 'target/digest-dist';

/** The determinism program's page in a browser, each build: its rows (written to target/engines/ for the table). */
async function digestRows(name: string): Promise<string> {
  const lines: string[] = [];
  for (const [isolated, query] of [[true, ''], [false, '?build=simd']] as const) {
    const { url, server } = await serve(isolated, digestDir);
    const d = await DRIVERS[name]();
    try {
      await d.open(`${url}${query}`);
      await waitFor(d, "document.body.dataset.state === 'done'", 'the digest page', 300);
      const r = await d.read<{ rows: { engine: string; build: string; threads: number; digest: string; mismatched: string[] }[]; error: string | null; info: { build: string } | null }>('window.edgegradDigest');
      if (r.error) throw new Error(`digest page: ${r.error}`);
      if (r.rows.length === 0) throw new Error('digest page: no rows');
      mkdirSync('target/engines', { recursive: true });
      writeFileSync(`target/engines/${r.rows[0].engine.replace(/[^\w.-]+/g, '-')}-${r.rows[0].build}.json`, `${JSON.stringify(r.rows, null, 1)}\n`);
      lines.push(...r.rows.map((row) => `${row.engine} ${row.build} × ${row.threads}: ${row.digest.slice(0, 16)}${row.mismatched.length ? ` (parts off: ${row.mismatched.join(',')})` : ''}`));
    } finally {
      await d.close();
      server.close();
    }
  }
  return lines.join('; ');
}

mkdirSync(outDir, { recursive: true });
let failed = false;
const tb = Date.now();
await build({ configFile: 'examples/browser/vite.config.ts', logLevel: 'error', build: { outDir: `${process.cwd()}/${distDir}`, emptyOutDir: true, chunkSizeWarningLimit: 4096 } });
if (browsers.includes('webkit')) {
  await build({ configFile: 'examples/browser/vite.config.ts', root: `${process.cwd()}/tests/engines/page`, logLevel: 'error',
    build: { outDir: `${process.cwd()}/${digestDir}`, emptyOutDir: true, chunkSizeWarningLimit: 4096 } });
}
console.log(`built the demo in ${((Date.now() - tb) / 1000).toFixed(0)} s (${distDir})`);
if (browsers.includes('webkit')) {
  try {
    console.log(`ok   webkit digest: ${await digestRows('webkit')}`);
  } catch (e) {
    failed = true;
    console.log(`FAIL webkit digest: ${(e as Error).message}`);
  }
}
const results: RunResult[] = [];
for (const isolated of [true, false]) {
  const { url, server } = await serve(isolated);
  try {
    for (const b of browsers) {
      const t0 = Date.now();
      try {
        const r = await runOne(b, isolated, url);
        results.push(r);
        console.log(`ok   ${b} ${isolated ? 'isolated' : 'not isolated'} (${((Date.now() - t0) / 1000).toFixed(0)} s): ${r.build} × ${r.threads}, ` +
          `${r.epochs} epochs, val ${(r.valAccuracy * 100).toFixed(1)}%; float32 ${r.float32}; int8 ${r.int8}; drawn 7 → ${r.drawn}; ${r.sample}; ${r.screenshot}`);
      } catch (e) {
        failed = true;
        console.log(`FAIL ${b} ${isolated ? 'isolated' : 'not isolated'}: ${(e as Error).message}`);
      }
    }
  } finally {
    server.close();
  }
}
writeFileSync(`${outDir}/results.json`, `${JSON.stringify(results, null, 1)}\n`);
process.exit(failed ? 1 : 0);
