#!/usr/bin/env node
// Consumer test: installs the package from its `npm pack` tarball (not from the repo) into a
// blank project in a temp dir and uses it the ways users do (tests/consumer/ holds the projects):
//   - plain Node ESM script on Node 20, 22 and 24 (1 thread and the default), and Bun;
//   - CommonJS `require('edgegrad')`: loads, or throws a message that says how to import it;
//   - TypeScript type-check with moduleResolution `bundler` and `node16`;
//   - a Vite production build and the no-bundler module page (dist/edgegrad.browser.js), each
//     served by a static server with and without COOP/COEP and run in headless Chromium (threaded
//     build when cross-origin isolated, single-threaded fallback otherwise) and in Firefox when
//     geckodriver is installed.
// Every run computes the same seeded program (tests/consumer/program.js); its digest must be
// identical everywhere. Prints a table and the tarball size; exits 1 on any failure.
// Usage: node scripts/consumer-test.mjs [--keep]   (expects a built dist/: `npm run build`)
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const rows = [];
let failed = false;

function check(name, ok, detail) {
  rows.push({ name, ok, detail });
  if (!ok) failed = true;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 300_000, ...opts });
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}`, err: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

const lastJson = (text) => {
  const line = text.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  return line ? JSON.parse(line) : undefined;
};

// 1. The tarball.
if (!existsSync(join(repo, 'dist/edgegrad.js')) || !existsSync(join(repo, 'dist/edgegrad.browser.js'))) {
  console.error('dist/ is not built: run `npm run build` (or `npx rollup -c rollup.config.mjs`) first');
  process.exit(1);
}
const tmp = mkdtempSync(join(tmpdir(), 'edgegrad-consumer-'));
const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))[0];
const tgz = join(tmp, packed.filename);
const files = packed.files.map((f) => f.path);
const unwanted = files.filter((f) => /\.map$|^(tests|examples|bench|sdk|crates|scripts)\//.test(f));
const required = ['dist/edgegrad.js', 'dist/edgegrad.browser.js', 'dist/edgegrad.cjs', 'dist/edgegrad.d.ts', 'dist/worker.js',
  'dist/wasm/mt/edgegrad.js', 'dist/wasm/mt/edgegrad_bg.wasm', 'dist/wasm/st/edgegrad.js', 'dist/wasm/st/edgegrad_bg.wasm', 'dist/wasm/rx/edgegrad_bg.wasm',
  'LICENSE-MIT', 'LICENSE-APACHE', 'README.md', 'CHANGELOG.md'];
const missing = required.filter((f) => !files.includes(f));
const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
check('npm pack', unwanted.length === 0 && missing.length === 0,
  `${packed.filename}: ${mb(packed.size)} packed, ${mb(packed.unpackedSize)} unpacked, ${files.length} files`
  + (unwanted.length ? `; unwanted: ${unwanted.join(', ')}` : '') + (missing.length ? `; missing: ${missing.join(', ')}` : ''));

// 2. A blank project with the tarball installed (registry only, from the cache when it can).
cpSync(join(repo, 'tests/consumer'), tmp, { recursive: true });
writeFileSync(join(tmp, 'package.json'), JSON.stringify({ name: 'edgegrad-consumer', private: true, type: 'module' }, null, 2));
const install = sh('npm', ['install', tgz, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: tmp });
check('npm install <tarball>', install.code === 0, install.code === 0 ? 'installed into a blank project' : install.err.slice(-2000));
if (install.code !== 0) finish();

// 3. Node and Bun.
const runtimes = [
  ['node 20', 'node'],
  ['node 22', join(repo, 'node_modules/node22/bin/node')],
  ['node 24', join(repo, 'node_modules/node24/bin/node')],
  ['bun', join(repo, 'node_modules/.bin/bun')],
];
const digests = [];
for (const [label, bin] of runtimes) {
  if (bin !== 'node' && !existsSync(bin)) { check(label, false, `${bin} not found`); continue; }
  for (const threads of [1, 0]) {
    const r = sh(bin, ['node/main.mjs', String(threads)], { cwd: tmp });
    const res = r.code === 0 ? lastJson(r.out) : undefined;
    const ok = res !== undefined && res.liveTensors === 0;
    if (ok) digests.push([`${label} (${res.threads} thr)`, res.digest]);
    check(`${label} ESM, threads=${threads || 'default'}`, ok, ok ? `${res.version}: ${res.build}, ${res.threads} threads, digest ${res.digest}` : (r.err || r.out).slice(-1500));
  }
  if (label.startsWith('node')) {
    const r = sh(bin, ['node/require.cjs'], { cwd: tmp });
    const res = r.code === 0 ? lastJson(r.out) : undefined;
    const ok = res !== undefined && (res.loaded === true || /import \* as eg from 'edgegrad'/.test(res.message ?? ''));
    check(`${label} require()`, ok, res?.loaded ? 'require() works' : (res?.message ?? r.err).slice(0, 300));
  }
}

// 4. TypeScript.
const tsc = join(repo, 'node_modules/typescript/bin/tsc');
for (const mode of ['bundler', 'node16']) {
  const r = sh('node', [tsc, '-p', `ts/tsconfig.${mode}.json`], { cwd: tmp });
  check(`tsc moduleResolution=${mode}`, r.code === 0, r.code === 0 ? 'types check (and the @ts-expect-error lines are errors)' : r.out.slice(-2000));
}

// 5. Browsers.
const vite = sh('node', [join(repo, 'node_modules/vite/bin/vite.js'), 'build', 'vite', '--outDir', 'dist', '--logLevel', 'warn'], { cwd: tmp });
check('vite build', vite.code === 0, vite.code === 0 ? 'production build, no edgegrad-specific config' : (vite.err + vite.out).slice(-2000));
await browsers();
finish();

async function browsers() {
  const mime = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css' };
  // Serves `root`; with `isolated`, the COOP/COEP headers that make the page cross-origin isolated.
  const serve = (root, isolated) => new Promise((ok) => {
    const server = createServer((req, res) => {
      const path = resolve(root, `.${decodeURIComponent(new URL(req.url, 'http://x').pathname)}`);
      const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'index.html') : path;
      if (!(file + sep).startsWith(root + sep) && !file.startsWith(root + sep) || !existsSync(file)) { res.writeHead(404).end(); return; }
      const headers = { 'Content-Type': mime[extname(file)] ?? 'application/octet-stream' };
      if (isolated) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
      res.writeHead(200, headers).end(readFileSync(file));
    });
    server.listen(0, '127.0.0.1', () => ok(server));
  });
  const pages = [];
  if (vite.code === 0) pages.push(['vite app', join(tmp, 'vite/dist'), '/']);
  pages.push(['module page', tmp, '/plain/']);

  const drivers = [];
  try {
    const { chromium } = await import('playwright');
    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
    drivers.push(['chromium', async (url) => {
      const page = await browser.newPage();
      const errors = [];
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(url);
      await page.waitForFunction(() => window.__result || window.__error, null, { timeout: 120_000 });
      const out = await page.evaluate(() => ({ result: window.__result, error: window.__error }));
      await page.close();
      return { ...out, errors };
    }, () => browser.close()]);
  } catch (e) {
    check('chromium', false, `could not start: ${e.message}`);
  }
  // WebdriverIO wants the driver's absolute path (setup.sh installs it with cargo).
  const gecko = [process.env.GECKODRIVER_PATH, join(process.env.HOME ?? '', '.cargo/bin/geckodriver'), '/usr/local/bin/geckodriver', '/usr/bin/geckodriver']
    .find((p) => p && existsSync(p) && sh(p, ['--version']).code === 0);
  const firefox = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';
  if (gecko && existsSync(firefox)) {
    try {
      const { remote } = await import('webdriverio');
      const ff = await remote({
        logLevel: 'error',
        capabilities: { browserName: 'firefox', 'wdio:geckodriverOptions': { binary: gecko }, 'moz:firefoxOptions': { binary: firefox, args: ['-headless'] } },
      });
      let errors = [];
      // Console errors through WebDriver BiDi's log events.
      await ff.sessionSubscribe({ events: ['log.entryAdded'] });
      ff.on('log.entryAdded', (e) => { if (e.level === 'error') errors.push(String(e.text)); });
      drivers.push(['firefox', async (url) => {
        errors = [];
        await ff.url(url);
        await ff.waitUntil(() => ff.execute(() => Boolean(window.__result || window.__error)), { timeout: 120_000, interval: 250 });
        const out = await ff.execute(() => ({ result: window.__result, error: window.__error }));
        return { ...out, errors };
      }, () => ff.deleteSession()]);
    } catch (e) {
      check('firefox', false, `could not start: ${e.message}`);
    }
  } else {
    console.log(`skip firefox: geckodriver (GECKODRIVER_PATH or ~/.cargo/bin) or ${firefox} not found`);
  }

  for (const [browserName, open, close] of drivers) {
    for (const [pageName, root, path] of pages) {
      for (const isolated of [true, false]) {
        const server = await serve(root, isolated);
        const url = `http://127.0.0.1:${server.address().port}${path}`;
        const name = `${browserName} ${pageName}, ${isolated ? 'COOP/COEP' : 'not isolated'}`;
        try {
          const { result, error, errors } = await open(url);
          const wantBuild = isolated ? 'simd-threads' : 'simd';
          const ok = !error && result && result.build === wantBuild && result.liveTensors === 0 && errors.length === 0
            && (isolated || result.threads === 1);
          if (result) digests.push([`${browserName} ${pageName} (${result.threads} thr)`, result.digest]);
          check(name, Boolean(ok), error ? error : `${result.build}, ${result.threads} threads, digest ${result.digest}`
            + (result.fallbackReason ? ` (fallback: ${result.fallbackReason.slice(0, 80)})` : '') + (errors.length ? `; console errors: ${errors.join(' | ').slice(0, 500)}` : ''));
        } catch (e) {
          check(name, false, String(e.message ?? e).slice(0, 500));
        } finally {
          server.close();
        }
      }
    }
    await close();
  }
}

function finish() {
  const distinct = new Set(digests.map(([, d]) => d));
  if (digests.length) {
    check('same digest everywhere', distinct.size === 1, `${digests.length} runs, digests: ${[...distinct].join(', ')}`);
    console.log('\nruntime                                   digest');
    for (const [where, d] of digests) console.log(`${where.padEnd(42)}${d}`);
  }
  console.log(`\nconsumer test: ${rows.filter((r) => r.ok).length} passed, ${rows.filter((r) => !r.ok).length} failed; tarball ${mb(packed.size)} (${mb(packed.unpackedSize)} unpacked)`);
  if (keep) console.log(`kept ${tmp}`); else rmSync(tmp, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}
