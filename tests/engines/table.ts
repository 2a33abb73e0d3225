/**
 * The closing digest table of `npm test`: reads the rows every runner left in target/engines/
 * (Vitest in Node/Chromium/Firefox, tests/engines/run.ts on Bun and Node 22/24), prints one table
 * (engine × build × threads) and exits 1 unless every row carries the committed digest and every
 * engine named on the command line is present.
 *
 *   node --import tsx tests/engines/table.ts [--expect "node v20,node v22,node v24,bun,chromium,firefox"]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatTable, type DigestRow, type ProgramDigest } from './program.js';

const dir = 'target/engines';
const expected = JSON.parse(readFileSync(fileURLToPath(new URL('./expected.json', import.meta.url)), 'utf8')) as ProgramDigest;
const files = (() => {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  } catch {
    return [];
  }
})();
const rows = files.flatMap((f) => JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) as DigestRow[]);
const i = process.argv.indexOf('--expect');
const want = i >= 0 ? process.argv[i + 1].split(',').filter(Boolean) : [];
const missing = want.filter((kind) => !rows.some((r) => r.engine.startsWith(kind)));
const off = rows.filter((r) => r.digest !== expected.digest);

console.log(`determinism digest: expected ${expected.digest}`);
console.log(formatTable(rows));
if (missing.length > 0) console.log(`no rows from: ${missing.join(', ')}`);
if (off.length > 0) console.log(`${off.length} row(s) differ from the committed digest`);
else if (rows.length > 0) console.log(`all ${rows.length} rows identical (${new Set(rows.map((r) => r.engine)).size} engines)`);
process.exit(off.length > 0 || missing.length > 0 || rows.length === 0 ? 1 : 0);
