// Pool worker: instantiates the threaded engine on the shared memory it is handed, says "ready",
// then runs the engine's work loop, which sleeps in `memory.atomic.wait` between jobs and never
// returns. One file for Node `worker_threads` (data in `workerData`) and Web Workers (data in the
// first message).
import { initSync, worker_entry } from './wasm/mt/edgegrad.js';

function start(data, post) {
  try {
    initSync({ module: data.module, memory: data.memory });
  } catch (e) {
    post(`engine failed to load in worker: ${e && e.message}`);
    return;
  }
  post('ready');
  worker_entry(data.id);
}

const isNode = typeof process !== 'undefined' && process.versions != null && process.versions.node != null
  && typeof WorkerGlobalScope === 'undefined';
if (isNode) {
  const name = 'node:worker_threads';
  const { parentPort, workerData } = await import(/* @vite-ignore */ name);
  start(workerData, (m) => parentPort.postMessage(m));
} else {
  self.onmessage = (ev) => {
    self.onmessage = null;
    start(ev.data, (m) => self.postMessage(m));
  };
}
