#!/usr/bin/env node
// `npm run docs`: the API reference (TypeDoc, typedoc.json) from the TSDoc of every public symbol,
// with the guides in docs/guides/, written to reports/docs/. A public symbol without TSDoc fails the
// build (TypeDoc's `validation.notDocumented`, warnings as errors) unless it is in
// docs/undocumented-baseline.txt: the members that had none when the check was introduced. The
// baseline only shrinks (names that gain TSDoc are reported; --update-baseline drops them), so
// nothing new goes undocumented.
// `node scripts/docs.mjs --update-baseline` rewrites the baseline from the current warnings.
import { readFileSync, writeFileSync } from 'node:fs';
import { Application } from 'typedoc';

const baselineFile = 'docs/undocumented-baseline.txt';
const update = process.argv.includes('--update-baseline');
const baseline = readFileSync(baselineFile, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));

const app = await Application.bootstrapWithPlugins({
  options: 'typedoc.json',
  intentionallyNotDocumented: update ? [] : baseline,
  ...(update ? { treatWarningsAsErrors: false, treatValidationWarningsAsErrors: false } : {}),
});
const undocumented = new Set();
let nowDocumented = 0;
const warn = app.logger.validationWarning.bind(app.logger);
app.logger.validationWarning = (message, ...rest) => {
  const text = String(message);
  const m = /^(\S+) \(\w+\), defined in .* does not have any documentation/.exec(text);
  if (update && m) undocumented.add(m[1]);
  // Baseline names that gained TSDoc (others document as they go): not an error, but reported.
  else if (/marked as intentionally not documented/.test(text)) nowDocumented = text.split('\n').length - 1;
  else warn(message, ...rest);
};
const project = await app.convert();
if (!project) process.exit(1);
app.validate(project);
if (update) {
  const header = '# Public API members without TSDoc when the docs check began (scripts/docs.mjs). Only remove lines.\n';
  writeFileSync(baselineFile, header + [...undocumented].sort().join('\n') + '\n');
  console.log(`${baselineFile}: ${undocumented.size} names`);
  process.exit(0);
}
if (nowDocumented > 0) console.log(`docs: ${nowDocumented} names in ${baselineFile} are documented now: \`node scripts/docs.mjs --update-baseline\` drops them`);
if (app.logger.hasErrors() || app.logger.hasWarnings()) {
  console.error(`docs: failed (${app.logger.errorCount} errors, ${app.logger.warningCount} warnings): document the symbols named above`);
  process.exit(1);
}
await app.generateDocs(project, app.options.getValue('out'));
if (app.logger.hasErrors() || app.logger.hasWarnings()) process.exit(1);
console.log(`docs: ${app.options.getValue('out')}/index.html (${baseline.length} members still in ${baselineFile})`);
