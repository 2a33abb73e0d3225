/**
 * Runs bench workloads in headless Chromium (Debian's /usr/bin/chromium, or CHROMIUM_PATH, driven
 * by the playwright library): a Vite server serves bench/browser/index.html cross-origin isolated
 * (COOP + COEP), so edgegrad, tfjs-wasm and onnxruntime-web all get their threaded builds, as
 * browser users of an isolated page do. Each job runs in a fresh page (its own JIT state and
 * memory), round-robin for `rounds` rounds, keeping each configuration's fastest median.
 */
import { fileURLToPath } from 'node:url';
import type { BenchRecord, Job } from './harness.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
/** Longest a job may run before it is recorded as failed. */
const JOB_TIMEOUT_MS = 300_000;

type Api = { jobs(name: string): Promise<Job[]>; run(name: string, job: Job): Promise<BenchRecord[]>; isolated(): boolean };

/**
 * Runs `workloads` (names in bench/workloads/) in headless Chromium, `rounds` rounds of the jobs
 * `keep` accepts; returns the records (fastest median per configuration), stamped with the runtime.
 */
export async function runInChromium(workloads: string[], rounds: number, keep: (job: Job) => boolean): Promise<BenchRecord[]> {
  const { createServer } = await import('vite');
  const { chromium } = await import('playwright');
  const server = await createServer({
    root, configFile: false, logLevel: 'error',
    server: { port: 0, headers: isolation, fs: { allow: [root] } },
    resolve: { alias: { edgegrad: `${root}sdk/index.ts` } },
    // Every dependency of every workload pre-bundled at start: one discovered while a job runs
    // makes Vite re-bundle and the page's pending dynamic imports fail.
    optimizeDeps: { entries: ['bench/browser/index.html', 'bench/workloads/*.ts'], include: ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'onnxruntime-web'] },
  });
  await server.listen();
  const address = server.httpServer?.address();
  const url = `http://localhost:${typeof address === 'object' && address ? address.port : 5173}/bench/browser/index.html`;
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'], headless: true });
  const runtime = `Chromium ${browser.version().split('.')[0]}`;
  const out: BenchRecord[] = [];
  try {
    for (const w of workloads) {
      const page0 = await browser.newPage();
      await page0.goto(url);
      await page0.waitForFunction(() => document.title === 'ready', undefined, { timeout: 120_000 });
      const isolated = await page0.evaluate(() => globalThis.crossOriginIsolated);
      const jobs = (await page0.evaluate((name) => (globalThis as unknown as { edgegradBench: Api }).edgegradBench.jobs(name), w)).filter(keep);
      await page0.close();
      const best = new Map<string, BenchRecord>();
      for (let round = 1; round <= rounds; round++) {
        for (const job of jobs) {
          if (round > 1 && job.engine === 'tfjs-cpu') continue;
          process.stdout.write(`[bench] ${runtime} ${w} ${job.engine} ${job.threads}t (round ${round}/${rounds}) ... `);
          const t0 = Date.now();
          let recs: BenchRecord[];
          try {
            recs = await runJob(w, job);
          } catch (err) {
            const note = `failed: ${String((err as Error).message ?? err).split('\n')[0]}`;
            console.log(note);
            recs = [{ workload: w, engine: job.engine, size: '', threads: job.threads, medianMs: NaN, gflops: null, note }];
          }
          for (const r of recs) {
            Object.assign(r, { runtime, runtimeVersion: browser.version() });
            if (!isolated) r.note = [r.note, 'page not cross-origin isolated'].filter(Boolean).join('; ');
            const k = `${r.workload}|${r.engine}|${r.size}|${r.threads}`;
            const old = best.get(k);
            if (!old || !(old.medianMs <= r.medianMs)) best.set(k, r);
          }
          if (recs.length && Number.isFinite(recs[0].medianMs)) console.log(`${recs.length} records in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        }
      }
      out.push(...best.values());
    }
  } finally {
    await browser.close();
    await server.close();
  }
  return out;

  async function runJob(w: string, job: Job): Promise<BenchRecord[]> {
    const page = await browser.newPage();
    try {
      await page.goto(url);
      await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 120_000 });
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${JOB_TIMEOUT_MS / 1000} s`)), JOB_TIMEOUT_MS));
      return await Promise.race([page.evaluate(([name, j]) => (globalThis as unknown as { edgegradBench: Api }).edgegradBench.run(name, j), [w, job] as [string, Job]), timeout]);
    } finally {
      await page.close();
    }
  }
}
