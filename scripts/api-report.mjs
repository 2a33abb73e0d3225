#!/usr/bin/env node
// The public API report. tsc emits the SDK's declarations (one .d.ts per module, so namespace
// members keep their signatures), api-extractor writes its report (api-extractor.json), and this
// compares it with the reviewed copy, etc/edgegrad.api.md, leaving out api-extractor's
// "(undocumented)" notes: adding TSDoc is not an API change (`npm run docs` checks TSDoc).
//   node scripts/api-report.mjs           fails (exit 1) when the public API differs, with a diff
//   node scripts/api-report.mjs --update  rewrites etc/edgegrad.api.md
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const reviewed = 'etc/edgegrad.api.md';
rmSync('target/api/dts', { recursive: true, force: true });
// Type errors elsewhere (work in progress) do not stop the declarations from being emitted.
spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.api.json'], { stdio: 'ignore' });
if (!existsSync('target/api/dts/index.d.ts')) {
  console.error('api report: tsc emitted no declarations (target/api/dts/index.d.ts)');
  process.exit(1);
}
mkdirSync('target/api/report', { recursive: true });
const result = Extractor.invoke(ExtractorConfig.loadFileAndPrepare('api-extractor.json'), { localBuild: true, showVerboseMessages: false });
if (!result.succeeded) {
  console.error(`api report: api-extractor failed (${result.errorCount} errors)`);
  process.exit(1);
}
const normalize = (text) => text.replace(/\r\n/g, '\n').split('\n')
  .filter((l) => !/^\s*\/\/ \(undocumented\)$/.test(l))
  .map((l) => l.replace(/^(\s*\/\/ @\w+) \(undocumented\)$/, '$1'))
  .join('\n');
const current = normalize(readFileSync('target/api/report/edgegrad.api.md', 'utf8'));
if (process.argv.includes('--update')) {
  writeFileSync(reviewed, current);
  console.log(`api report: wrote ${reviewed}`);
  process.exit(0);
}
const old = existsSync(reviewed) ? readFileSync(reviewed, 'utf8') : '';
if (old === current) {
  console.log(`api report: the public API matches ${reviewed}`);
  process.exit(0);
}
writeFileSync('target/api/edgegrad.api.md', current);
const diff = spawnSync('git', ['diff', '--no-index', '--no-color', '-U1', reviewed, 'target/api/edgegrad.api.md'], { encoding: 'utf8' });
console.error(diff.stdout.split('\n').slice(0, 200).join('\n'));
console.error(`api report: the public API changed (diff above). If intended, run \`npm run api:update\` and commit ${reviewed}.`);
process.exit(1);
