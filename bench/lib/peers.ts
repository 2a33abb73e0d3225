/** Loading the peer engines in Node: TensorFlow.js (wasm/XNNPACK and cpu backends) and ONNX Runtime Web. */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type * as tfType from '@tensorflow/tfjs';
import type * as ortType from 'onnxruntime-web';

const require = createRequire(import.meta.url);

/** tfjs on the requested backend ('wasm' = XNNPACK with SIMD, 'cpu' = plain JS). */
export async function loadTfjs(backend: 'wasm' | 'cpu', threads = 1): Promise<{ tf: typeof tfType; note?: string }> {
  const tf = await import('@tensorflow/tfjs');
  let note: string | undefined;
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))}/`);
    if (threads > 1) wasm.setThreadsCount(threads);
  }
  await tf.setBackend(backend);
  await tf.ready();
  if (backend === 'wasm') {
    const flags = tf.env().features as Record<string, unknown>;
    if (!flags.WASM_HAS_MULTITHREAD_SUPPORT) note = 'tfjs-wasm reports no thread support under Node (WASM_HAS_MULTITHREAD_SUPPORT=false): runs on 1 thread';
  }
  return { tf, note };
}

/** ONNX Runtime Web's wasm backend with `threads` threads. */
export async function loadOrt(threads: number): Promise<typeof ortType> {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  ort.env.logLevel = 'error';
  return ort;
}
