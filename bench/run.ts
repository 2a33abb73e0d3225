/**
 * `npm run bench`: runs each workload in its own Node process (so engines and peers never share a
 * process's JIT state or memory), collects the records, writes `bench/results.json` and
 * `bench/RESULTS.md`, and prints a table. `npm run bench -- gemm` runs only the named workloads and
 * replaces their records in the files, keeping the others (each file says when it was measured);
 * `--rounds N` sets how many times each job runs (its fastest median is kept; default 3).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import type { BenchRecord, Job } from './harness.js';
import { checkTargets, targetsMarkdown } from './targets.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const all = readdirSync(`${here}workloads`).filter((f) => f.endsWith('.ts')).map((f) => f.replace(/\.ts$/, ''));
const wanted = process.argv.slice(2).filter((a, i, all) => !a.startsWith('-') && all[i - 1] !== '--rounds');
const workloads = wanted.length ? all.filter((w) => wanted.includes(w)) : all;

function child(file: string, args: string[]): { line?: string; status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'] });
  return { line: r.stdout.split('\n').find((l) => l.startsWith('@@')), status: r.status, stderr: r.stderr };
}

// Each job runs `--rounds` times (default 3), round-robin over the workload's jobs, and keeps its
// fastest median: this machine's speed drifts by up to 2x over minutes (shared CPUs), and
// interference only ever slows a run down. tfjs-cpu, 10-400x slower than everything else, runs once.
const roundsArg = process.argv.indexOf('--rounds');
const rounds = roundsArg >= 0 ? Math.max(1, Number(process.argv[roundsArg + 1])) : 3;
const records: BenchRecord[] = [];
const key = (r: BenchRecord) => `${r.workload}|${r.engine}|${r.size}|${r.threads}`;
for (const w of workloads) {
  const file = `${here}workloads/${w}.ts`;
  const listed = child(file, ['--list']);
  if (listed.status !== 0 || !listed.line) {
    console.log(`[bench] ${w}: cannot list jobs (exit ${listed.status})\n${listed.stderr}`);
    process.exitCode = 1;
    continue;
  }
  const jobs = JSON.parse(listed.line.slice('@@jobs '.length)) as Job[];
  const best = new Map<string, BenchRecord & { rounds?: number }>();
  for (let round = 1; round <= rounds; round++) {
    for (const job of jobs) {
      if (round > 1 && job.engine === 'tfjs-cpu') continue;
      process.stdout.write(`[bench] ${w} ${job.engine} ${job.threads}t${job.variant ? ` ${job.variant}` : ''} (round ${round}/${rounds}) ... `);
      const t0 = Date.now();
      const r = child(file, ['--job', JSON.stringify(job)]);
      if (r.status !== 0 || !r.line) {
        console.log(`failed (exit ${r.status})\n${r.stderr.slice(-2000)}`);
        const rec: BenchRecord = { workload: w, engine: job.engine, size: String(job.variant ?? ''), threads: job.threads, medianMs: NaN, gflops: null, note: `failed: ${r.stderr.trim().split('\n').pop()}` };
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

// A partial run replaces the records of the workloads it ran and keeps the others.
let merged = records;
if (wanted.length && existsSync(`${here}results.json`)) {
  const ran = new Set(records.map((r) => r.workload));
  const kept = (JSON.parse(readFileSync(`${here}results.json`, 'utf8')) as BenchRecord[]).filter((r) => !ran.has(r.workload));
  merged = [...kept, ...records];
}
for (const r of records) r.measuredAt = new Date().toISOString().slice(0, 16).replace('T', ' ');

const fmt = (v: number | null, d = 2) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));
// Ratio edgegrad / peer: time of the peer divided by ours (> 1 means edgegrad is faster).
function ratio(r: BenchRecord): string {
  if (r.engine === 'edgegrad') return '';
  const ours = merged.find((o) => o.engine === 'edgegrad' && o.workload === r.workload && String(o.size) === String(r.size) && o.threads === r.threads);
  return ours && r.medianMs > 0 ? `${(r.medianMs / ours.medianMs).toFixed(2)}x` : '—';
}
const header = '| workload | size | threads | engine | median ms | GFLOP/s | edgegrad speed-up vs this engine | notes |';
const row = (r: BenchRecord) => `| ${r.workload} | ${r.size} | ${r.threads} | ${r.engine} | ${fmt(r.medianMs, 3)} | ${fmt(r.gflops)} | ${ratio(r)} | ${[
  ...Object.entries(r.extra ?? {}).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(3) : v}`), r.note ?? ''].filter(Boolean).join('; ')} |`;
const table = (rs: BenchRecord[]) => [header, '|---|---|---|---|---|---|---|---|', ...rs.map(row)].join('\n');
const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}`;
const runs = [...new Set(merged.map((r) => r.measuredAt).filter(Boolean))].sort();

writeFileSync(`${here}results.json`, JSON.stringify(merged, null, 2) + '\n');
writeFileSync(`${here}RESULTS.md`, `# Benchmark results\n\nMachine: ${machine}. Generated by \`npm run bench\` (measured ${runs.join(', ')} UTC); ` +
  `medians of at least 10 repetitions after warm-up, the fastest of several rounds per configuration (\`--rounds\`, 3 by default; tfjs-cpu one). The speed-up column is the peer's median time divided by edgegrad's ` +
  `for the same workload, size and thread count (above 1: edgegrad is faster).\n\n## Targets\n\n${targetsMarkdown(checkTargets(merged))}\n\n` +
  `## All records\n\n${table(merged)}\n`);
console.log(`\n${machine}\n\n${table(records)}\n\n${targetsMarkdown(checkTargets(merged))}`);
