import { defineConfig } from 'vite';

// The demo page, served cross-origin isolated so the threaded engine runs (SharedArrayBuffer).
const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
export default defineConfig({
  root: __dirname,
  server: { headers, fs: { allow: ['../..'] } },
  preview: { headers },
  // The engine's worker imports the runtime, which uses top-level await: ES module workers only.
  worker: { format: 'es' },
});
