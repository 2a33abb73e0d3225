/**
 * Runs the determinism program outside Vitest — on Bun and on any Node version — and checks it
 * against the committed digest. With no `--build` it runs both builds, each in a child process of
 * the same runtime (one build per module instance), and prints the table.
 *
 *   node --import tsx tests/engines/run.ts                  # this Node, both builds, 1–4 threads
 *   node_modules/node24/bin/node --import tsx tests/engines/run.ts
 *   npx bun tests/engines/run.ts
 *   ... run.ts --build simd-threads [--sdk dist] [--update]
 *
 * `--sdk dist` imports the bundle (dist/edgegrad.js) instead of the source; `--update` rewrites
 * expected.json from this run (only when the program itself changes on purpose). Rows go to
 * target/engines/ for tests/engines/table.ts. Exit status 1 on any mismatch.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatTable, runProgram, runRows, type DigestRow, type EG, type ProgramDigest } from './program.js';
import { engineName, recordRows } from './record.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const expectedPath = fileURLToPath(new URL('./expected.json', import.meta.url));
const build = opt('--build');
const sdk = opt('--sdk') ?? 'src';

if (build !== undefined && build !== 'simd' && build !== 'simd-threads') throw new Error(`--build must be simd or simd-threads, got ${build}`);
if (sdk !== 'src' && sdk !== 'dist') throw new Error(`--sdk must be src or dist, got ${sdk}`);

if (build === undefined) {
  // Both builds, each in a child of this runtime (execArgv keeps tsx's loader on Node).
  let rows: DigestRow[] = [];
  let failed = false;
  for (const b of ['simd-threads', 'simd']) {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args, '--build', b, '--quiet'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) failed = true;
    const json = r.stdout.split('\n').find((l) => l.startsWith('ROWS '));
    if (json) rows = rows.concat(JSON.parse(json.slice(5)) as DigestRow[]);
    else { failed = true; console.error(`${engineName()} ${b}: no result (exit ${r.status})\n${r.stdout}`); }
  }
  console.log(formatTable(rows));
  process.exit(failed || rows.some((r) => r.mismatched.length > 0) ? 1 : 0);
} else {
  const eg = (sdk === 'dist' ? await import('../../dist/edgegrad.js') : await import('../../sdk/index.js')) as unknown as EG;
  await eg.init({ backend: build, threads: 4 });
  if (args.includes('--update')) {
    const got = await runProgram(eg);
    writeFileSync(expectedPath, `${JSON.stringify(got, null, 2)}\n`);
    console.error(`wrote ${expectedPath}: ${got.digest}`);
  }
  const expected = JSON.parse(readFileSync(expectedPath, 'utf8')) as ProgramDigest;
  const rows = (await runRows(eg, engineName(), expected)).map((r) => (sdk === 'dist' ? { ...r, build: `${r.build} (dist)` } : r));
  await recordRows(rows);
  if (!args.includes('--quiet')) console.log(formatTable(rows));
  console.log(`ROWS ${JSON.stringify(rows)}`);
  eg.shutdownWorkers();
  process.exit(rows.some((r) => r.mismatched.length > 0 || r.digest !== expected.digest) ? 1 : 0);
}
