import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The encrypted-inference page. `/api` is proxied to the inference server (server.ts, default
// 127.0.0.1:8787; HE_SERVER overrides), so the page and the server share an origin. The page is
// served cross-origin isolated so the threaded engine runs (SharedArrayBuffer).
const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // The page uses the SDK's source, like examples/browser (no dist build needed).
  resolve: { alias: { edgegrad: fileURLToPath(new URL('../../sdk/index.ts', import.meta.url)) } },
  server: { headers, fs: { allow: ['../..'] }, proxy: { '/api': process.env.HE_SERVER ?? 'http://127.0.0.1:8787' } },
  preview: { headers },
  // The engine's worker imports the runtime, which uses top-level await: ES module workers only.
  worker: { format: 'es' },
});
