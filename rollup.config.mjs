// Bundles the SDK for Node and browsers: one ESM file plus its type declarations, with the two
// wasm engines, their glue and the pool worker copied beside it, so `new URL('./…', import.meta.url)`
// finds them wherever the package is served from — no path configuration for users.
import { readFileSync } from 'node:fs';
import typescript from '@rollup/plugin-typescript';
import { dts } from 'rollup-plugin-dts';

const assets = [
  'worker.js',
  'wasm/mt/edgegrad.js',
  'wasm/mt/edgegrad_bg.wasm',
  'wasm/st/edgegrad.js',
  'wasm/st/edgegrad_bg.wasm',
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

export default [
  {
    input: 'sdk/index.ts',
    output: { file: 'dist/edgegrad.js', format: 'es', sourcemap: true },
    external: [/^node:/],
    plugins: [
      typescript({ tsconfig: './tsconfig.json', include: ['sdk/**/*.ts'], declaration: false, sourceMap: true, outDir: 'dist' }),
      copyAssets(),
    ],
  },
  {
    input: 'sdk/index.ts',
    output: { file: 'dist/edgegrad.d.ts', format: 'es' },
    plugins: [dts({ tsconfig: './tsconfig.json' })],
  },
];
