/**
 * Loading the peer engines in Node and in the Chromium bench page (bench/browser.ts, served from the
 * repository root): TensorFlow.js (wasm/XNNPACK and cpu backends) and ONNX Runtime Web.
 */
import type * as tfType from '@tensorflow/tfjs';
import type * as ortType from 'onnxruntime-web';

const inBrowser = typeof window !== 'undefined';

/** Where tfjs-backend-wasm's .wasm files are: node_modules, resolved in Node, served in the page. */
async function tfjsWasmDir(): Promise<string> {
  if (inBrowser) return '/node_modules/@tensorflow/tfjs-backend-wasm/dist/';
  const { createRequire } = await import('node:module');
  const { dirname } = await import('node:path');
  return `${dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))}/`;
}

/** tfjs on the requested backend ('wasm' = XNNPACK with SIMD, 'cpu' = plain JS). */
export async function loadTfjs(backend: 'wasm' | 'cpu', threads = 1): Promise<{ tf: typeof tfType; note?: string }> {
  const tf = await import('@tensorflow/tfjs');
  let note: string | undefined;
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(await tfjsWasmDir());
    if (threads > 1) wasm.setThreadsCount(threads);
  }
  await tf.setBackend(backend);
  await tf.ready();
  if (backend === 'wasm') {
    const flags = tf.env().features as Record<string, unknown>;
    if (!flags.WASM_HAS_MULTITHREAD_SUPPORT) note = `tfjs-wasm reports no thread support ${inBrowser ? 'in this page' : 'under Node'} (WASM_HAS_MULTITHREAD_SUPPORT=false): runs on 1 thread`;
  }
  return { tf, note };
}

/** ONNX Runtime Web's wasm backend with `threads` threads. */
export async function loadOrt(threads: number): Promise<typeof ortType> {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  if (inBrowser) ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  ort.env.logLevel = 'error';
  return ort;
}
