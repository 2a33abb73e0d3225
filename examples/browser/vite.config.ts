import { defineConfig, type Plugin } from 'vite';

// The demo page, served cross-origin isolated so the threaded engine runs (SharedArrayBuffer).
// DEMO_ISOLATION=0 serves it without the headers: the page then runs the single-threaded build
// (what a host that cannot set headers gets); tests/e2e checks both.
const isolated = process.env.DEMO_ISOLATION !== '0';
const headers: Record<string, string> = isolated
  ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' }
  : {};
/**
 * The page imports the SDK's source, which package.json's `sideEffects` (written for dist/) would
 * mark side-effect free: a production build would then drop the SDK's side-effect imports (such as
 * `sdk/train/index.ts` importing the trainer that installs `fit`). Keep them.
 */
const sdkHasSideEffects: Plugin = {
  name: 'edgegrad-sdk-side-effects',
  transform: (_code, id) => (id.includes('/sdk/') ? { code: _code, map: null, moduleSideEffects: true } : null),
};

export default defineConfig({
  plugins: [sdkHasSideEffects],
  root: __dirname,
  server: { headers, fs: { allow: ['../..'] } },
  preview: { headers },
  // The engine's worker imports the runtime, which uses top-level await: ES module workers only.
  worker: { format: 'es' },
  // Top-level await in the page and the SDK.
  build: { target: 'es2022' },
  optimizeDeps: { esbuildOptions: { target: 'es2022' } },
});
