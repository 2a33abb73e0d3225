/**
 * `npm run bench`: runs each workload in its own Node process (so engines and peers never share a
 * process's JIT state or memory), collects the records, writes `bench/results.json` and
 * `bench/RESULTS.md`, and prints a table. `npm run bench -- gemm` runs only the named workloads and
 * replaces their records in the files, keeping the others (each file says when it was measured);
 * `--rounds N` sets how many times each job runs (its fastest median is kept; default 3).
 *
 * `--node 20,22,24` runs the workloads under each of those Node versions (20: the `node` on PATH;
 * 22 and 24: the `node22`/`node24` packages in node_modules; or a path to a node binary); the
 * default is the Node running this script (`--node none`: no Node runs, with `--chromium`). Records carry their runtime, RESULTS.md has one section
 * per runtime, and a partial run replaces only the (workload, runtime) pairs it ran. `--quick`:
 * one round, no tfjs-cpu (10-400x slower than everything else). Every GFLOP/s figure is also given
 * as a share of the same runtime's simd128 peak (the `peak` workload, bench/lib/peak.ts).
 * `--cpu-time` times 1-thread jobs by their process's CPU time (harness.ts `now`), for a shared
 * machine under load. `--chromium` also runs the workloads in headless Chromium (bench/browser.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import type { BenchRecord, Job } from './harness.js';
import { checkTargets, targetsMarkdown } from './targets.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));
const all = readdirSync(`${here}workloads`).filter((f) => f.endsWith('.ts')).map((f) => f.replace(/\.ts$/, ''));
const valued = new Set(['--rounds', '--node']);
const wanted = process.argv.slice(2).filter((a, i, all) => !a.startsWith('-') && !valued.has(all[i - 1]));
const workloads = wanted.length ? all.filter((w) => wanted.includes(w)) : all;
const quick = process.argv.includes('--quick');
const option = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

/** The node binary for `--node` entry `v`: 20 = the `node` on PATH, 22/24 = the npm packages, or a path. */
function nodeBinary(v: string): string {
  if (v === '20') return 'node';
  if (/^\d+$/.test(v)) {
    const bin = `${root}node_modules/node${v}/bin/node`;
    if (!existsSync(bin)) throw new Error(`--node ${v}: ${bin} is missing (the node${v} package is not installed)`);
    return bin;
  }
  return v;
}
const binaries = option('--node') === 'none' ? [] : (option('--node') ?? process.execPath).split(',').map((v) => (v === process.execPath ? v : nodeBinary(v.trim())));

function child(bin: string, file: string, args: string[]): { line?: string; status: number | null; stderr: string } {
  const env = { ...process.env, EDGEGRAD_BENCH_CPU_TIME: process.argv.includes('--cpu-time') ? '1' : '0' };
  const r = spawnSync(bin, ['--import', 'tsx', file, ...args], { cwd: root, env, encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'] });
  return { line: r.stdout?.split('\n').find((l) => l.startsWith('@@')), status: r.status, stderr: r.stderr ?? String(r.error) };
}

// Each job runs `--rounds` times (default 3), round-robin over the workload's jobs, and keeps its
// fastest median: this machine's speed drifts by up to 2x over minutes (shared CPUs), and
// interference only ever slows a run down. tfjs-cpu, 10-400x slower than everything else, runs once.
const roundsArg = process.argv.indexOf('--rounds');
const rounds = quick ? 1 : roundsArg >= 0 ? Math.max(1, Number(process.argv[roundsArg + 1])) : 3;
const records: BenchRecord[] = [];
const runtimeOf = (r: BenchRecord) => r.runtime ?? 'Node 20';
const key = (r: BenchRecord) => `${runtimeOf(r)}|${r.workload}|${r.engine}|${r.size}|${r.threads}`;
for (const bin of binaries) for (const w of workloads) {
  const file = `${here}workloads/${w}.ts`;
  const listed = child(bin, file, ['--list']);
  if (listed.status !== 0 || !listed.line) {
    console.log(`[bench] ${w}: cannot list jobs (exit ${listed.status})\n${listed.stderr}`);
    process.exitCode = 1;
    continue;
  }
  const jobs = (JSON.parse(listed.line.slice('@@jobs '.length)) as Job[]).filter((j) => !(quick && j.engine === 'tfjs-cpu'));
  const best = new Map<string, BenchRecord & { rounds?: number }>();
  const runtime = `Node ${spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim().split('.')[0]}`;
  for (let round = 1; round <= rounds; round++) {
    for (const job of jobs) {
      if (round > 1 && job.engine === 'tfjs-cpu') continue;
      process.stdout.write(`[bench] ${bin === process.execPath ? '' : `${bin} `}${w} ${job.engine} ${job.threads}t${job.variant ? ` ${job.variant}` : ''} (round ${round}/${rounds}) ... `);
      const t0 = Date.now();
      const r = child(bin, file, ['--job', JSON.stringify(job)]);
      if (r.status !== 0 || !r.line) {
        console.log(`failed (exit ${r.status})\n${r.stderr.slice(-2000)}`);
        const rec: BenchRecord = { workload: w, engine: job.engine, size: String(job.variant ?? ''), threads: job.threads, medianMs: NaN, gflops: null, note: `failed: ${r.stderr.trim().split('\n').pop()}`, runtime };
        if (!best.has(key(rec))) best.set(key(rec), rec);
        continue;
      }
      const recs = JSON.parse(r.line.slice('@@records '.length)) as BenchRecord[];
      for (const rec of recs) {
        const old = best.get(key(rec));
        if (!old || !(old.medianMs <= rec.medianMs)) best.set(key(rec), rec);
      }
      console.log(`${recs.length} records in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  }
  records.push(...best.values());
}
if (process.argv.includes('--chromium')) {
  const { runInChromium } = await import('./browser.js');
  records.push(...(await runInChromium(workloads, rounds, (j) => !(quick && j.engine === 'tfjs-cpu'))));
}

// A partial run replaces the records of the (workload, runtime) pairs it ran and keeps the others.
let merged = records;
if (existsSync(`${here}results.json`) && (wanted.length || option('--node') || process.argv.includes('--chromium'))) {
  const ran = new Set(records.map((r) => `${runtimeOf(r)}|${r.workload}`));
  // `--quick` skips tfjs-cpu: its older records stay.
  const kept = (JSON.parse(readFileSync(`${here}results.json`, 'utf8')) as BenchRecord[])
    .filter((r) => !ran.has(`${runtimeOf(r)}|${r.workload}`) || (quick && r.engine === 'tfjs-cpu'));
  merged = [...kept, ...records];
}
for (const r of records) r.measuredAt = new Date().toISOString().slice(0, 16).replace('T', ' ');

const fmt = (v: number | null, d = 2) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));
// Ratio edgegrad / peer: time of the peer divided by ours (> 1 means edgegrad is faster).
function ratio(r: BenchRecord): string {
  if (r.engine === 'edgegrad') return '';
  const ours = merged.find((o) => o.engine === 'edgegrad' && runtimeOf(o) === runtimeOf(r) && o.workload === r.workload && String(o.size) === String(r.size) && o.threads === r.threads);
  return ours && r.medianMs > 0 ? `${(r.medianMs / ours.medianMs).toFixed(2)}x` : '—';
}
/**
 * The core's simd128 ceiling for each probe loop: the fastest any runtime of the results measured on
 * this machine. V8 schedules the probe differently by version (Node 20/22 issue its 24 multiplies
 * before its 24 adds and reach ~85% of what Node 24 and Chromium reach on the same core), so one
 * runtime's own probe can understate the hardware; shares are taken against the best.
 */
const ceiling = (kind: string): number | undefined => {
  const gs = merged.filter((o) => o.workload === 'peak' && (kind === 'relaxed_dot' ? String(o.size).includes(kind) : String(o.size).startsWith(kind)) && o.gflops).map((o) => o.gflops as number);
  return gs.length ? Math.max(...gs) : undefined;
};
/** GFLOP/s per thread as a share of the core's simd128 ceiling (int8 rows: of the dot loops'). */
function ofPeak(r: BenchRecord): string {
  if (r.workload === 'peak' || r.gflops === null || !Number.isFinite(r.gflops)) return '';
  const int8 = r.extra?.dtype === 'int8' || (r.workload === 'int8-gemm' && !String(r.size).endsWith('f32'));
  // Relaxed-engine int8 rows against the relaxed dot's loops, other int8 rows against i32x4.dot_i16x8_s.
  const kind = !int8 ? 'f32x4' : r.extra?.relaxed === 'true' ? 'relaxed_dot' : 'i32x4.dot_';
  const peak = ceiling(kind);
  return peak ? `${((100 * r.gflops) / (peak * r.threads)).toFixed(0)}%` : '';
}
const header = '| workload | size | threads | engine | median ms | GFLOP/s | % of peak | edgegrad speed-up vs this engine | notes |';
const row = (r: BenchRecord) => `| ${r.workload} | ${r.size} | ${r.threads} | ${r.engine} | ${fmt(r.medianMs, 3)} | ${fmt(r.gflops)} | ${ofPeak(r)} | ${ratio(r)} | ${[
  ...Object.entries(r.extra ?? {}).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(3) : v}`), r.note ?? ''].filter(Boolean).join('; ')} |`;
const table = (rs: BenchRecord[]) => [header, '|---|---|---|---|---|---|---|---|---|', ...rs.map(row)].join('\n');
const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores`;
const runs = [...new Set(merged.map((r) => r.measuredAt).filter(Boolean))].sort();
const runtimes = [...new Set(merged.map(runtimeOf))].sort((a, b) => Number(a.replace(/\D/g, '')) - Number(b.replace(/\D/g, '')));
const section = (rt: string) => {
  const rs = merged.filter((r) => runtimeOf(r) === rt);
  const versions = [...new Set(rs.map((r) => r.runtimeVersion).filter(Boolean))].join(', ');
  return `## ${rt}${versions ? ` (${versions})` : ''}\n\n### Targets\n\n${targetsMarkdown(checkTargets(rs, ceiling('f32x4')))}\n\n### All records\n\n${table(rs)}\n`;
};

writeFileSync(`${here}results.json`, JSON.stringify(merged, null, 2) + '\n');
writeFileSync(`${here}RESULTS.md`, `# Benchmark results\n\nMachine: ${machine}. Generated by \`npm run bench\` (measured ${runs.join(', ')} UTC); ` +
  `medians of at least 10 repetitions after warm-up, the fastest of several rounds per configuration (\`--rounds\`, 3 by default; tfjs-cpu one). The speed-up column is the peer's median time divided by edgegrad's ` +
  `for the same workload, size, thread count and runtime (above 1: edgegrad is faster). "% of peak" is GFLOP/s per thread against the core's ` +
  `simd128 ceiling: the fastest \`peak\` row of any runtime on this machine (f32x4 mul+add; int8 rows against the dot loops), ${ceiling('f32x4')?.toFixed(1) ?? '—'} GFLOP/s for f32 here — ` +
  `Node 20 and 22 schedule the probe's loop worse and measure less on the same core. One section per runtime; ratios only compare records of one section.\n\n` +
  runtimes.map(section).join('\n'));
for (const rt of new Set(records.map(runtimeOf))) {
  const rs = records.filter((r) => runtimeOf(r) === rt);
  console.log(`\n${machine}, ${rt}\n\n${table(rs)}\n\n${targetsMarkdown(checkTargets(merged.filter((r) => runtimeOf(r) === rt), ceiling('f32x4')))}`);
}
// Vite's dependency optimizer and playwright can leave handles open after a Chromium run: the
// results are written, so leave now rather than wait for them.
process.exit(0);
