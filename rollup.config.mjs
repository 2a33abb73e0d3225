// Bundles the SDK for Node and browsers: one ESM file plus its type declarations, with the two
// wasm engines, their glue and the pool worker copied beside it, so `new URL('./…', import.meta.url)`
// finds them wherever the package is served from — no path configuration for users.
//
// Three entry files land in dist/ (package.json `exports` maps them):
// - edgegrad.js: ESM with bare imports of its dependencies, for Node, Bun and bundlers;
// - edgegrad.browser.js (+ browser-chunks/): the same code with every dependency inlined, for a
//   plain `<script type="module">` page without a bundler or import map;
// - edgegrad.cjs: `require('edgegrad')` — works where Node can require ES modules, otherwise
//   throws a message that says how to import the package instead.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import typescript from '@rollup/plugin-typescript';
import { dts } from 'rollup-plugin-dts';

const assets = [
  'worker.js',
  'wasm/mt/edgegrad.js',
  'wasm/mt/edgegrad_bg.wasm',
  'wasm/st/edgegrad.js',
  'wasm/st/edgegrad_bg.wasm',
  'wasm/rx/edgegrad_bg.wasm', // the opt-in relaxed-SIMD engine: mt's glue, its own module
  'wasm/resvg_bg.wasm',
  'assets/digits.csv.gz',
  'assets/DejaVuSans.ttf',
  'assets/dejavu-fonts-debian-copyright.txt',
];

function copyAssets() {
  return {
    name: 'edgegrad-assets',
    generateBundle() {
      for (const fileName of assets) {
        this.emitFile({ type: 'asset', fileName, source: readFileSync(`sdk/${fileName}`) });
      }
    },
  };
}

const cjsShim = `'use strict';
// edgegrad is an ES module. Node.js versions that can require() ES modules load it here;
// older ones get a message saying how to import it instead of a bare ERR_REQUIRE_ESM.
try {
  module.exports = require('./edgegrad.js');
} catch (e) {
  if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
    throw new Error("edgegrad is an ES module and this runtime (Node " + process.version + ") cannot require() it: " +
      "use \`import * as eg from 'edgegrad'\` or \`const eg = await import('edgegrad')\` (Node >= 20.19 and 22.12 can require it).");
  }
  throw e;
}
`;

/**
 * After dist/edgegrad.js is written: the CommonJS shim, and the self-contained browser bundle
 * (esbuild inlines the npm dependencies, CommonJS ones included; heavy lazy ones such as vega stay
 * lazy in browser-chunks/). The SDK's own code stays in the entry file beside wasm/, worker.js and
 * assets/, so its `new URL('./…', import.meta.url)` references still resolve.
 */
function extraEntries() {
  return {
    name: 'edgegrad-extra-entries',
    async writeBundle() {
      writeFileSync('dist/edgegrad.cjs', cjsShim);
      const { build } = await import('esbuild');
      rmSync('dist/browser-chunks', { recursive: true, force: true });
      await build({
        entryPoints: { 'edgegrad.browser': 'dist/edgegrad.js' },
        outdir: 'dist',
        bundle: true,
        splitting: true,
        format: 'esm',
        platform: 'browser',
        target: 'es2022',
        chunkNames: 'browser-chunks/[name]-[hash]',
        external: ['node:*'],
        minify: true,
        legalComments: 'eof',
        logLevel: 'warning',
      });
      const entry = readFileSync('dist/edgegrad.browser.js', 'utf8');
      if (!entry.includes('import.meta.url')) throw new Error('browser bundle: the SDK code moved out of the entry file');
    },
  };
}

/**
 * Deep type imports of dependencies without an `exports` map (node-seal's
 * `node-seal/implementation/seal`) resolve under moduleResolution `bundler` but not `node16`, which
 * wants the file's extension: the declarations name `….js` (TypeScript maps it to the .d.ts).
 */
function deepImportExtensions() {
  const hasExportsMap = (pkg) => {
    try {
      return JSON.parse(readFileSync(`node_modules/${pkg}/package.json`, 'utf8')).exports !== undefined;
    } catch {
      return true; // unknown package: leave its specifier alone
    }
  };
  return {
    name: 'edgegrad-deep-import-extensions',
    renderChunk(code) {
      return code.replace(/(from |import\()'((?:@[^/']+\/)?[^/'.][^/']*)\/([^']+)'/g, (m, head, pkg, rest) =>
        (/\.[cm]?js$|\.json$/.test(rest) || hasExportsMap(pkg) ? m : `${head}'${pkg}/${rest}.js'`));
    },
  };
}

export default [
  {
    input: 'sdk/index.ts',
    output: { file: 'dist/edgegrad.js', format: 'es', sourcemap: true },
    external: [/^node:/],
    plugins: [
      typescript({ tsconfig: './tsconfig.json', include: ['sdk/**/*.ts'], declaration: false, sourceMap: true, outDir: 'dist' }),
      copyAssets(),
      extraEntries(),
    ],
  },
  {
    input: 'sdk/index.ts',
    output: { file: 'dist/edgegrad.d.ts', format: 'es' },
    plugins: [dts({ tsconfig: './tsconfig.json' }), deepImportExtensions()],
  },
];
