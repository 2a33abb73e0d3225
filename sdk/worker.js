// Pool worker: instantiates the threaded engine on the shared memory it is handed, says "ready",
// then runs the engine's work loop, which sleeps in `memory.atomic.wait` between jobs and never
// returns. One file for Node `worker_threads` (data in `workerData`) and Web Workers (data in the
// first message).
//
// A panic in a task traps out of the loop. The engine has already taken this worker out of the
// job (its panic hook) and the calling thread reports the failure, so the worker only resets its
// shadow stack (a trap does not unwind it) and goes back to sleep in the loop: the pool keeps
// its strength and a panic in one call does not affect the next.
import { initSync, worker_entry } from './wasm/mt/edgegrad.js';

function start(data, post) {
  let exports;
  try {
    exports = initSync({ module: data.module, memory: data.memory });
  } catch (e) {
    post(`engine failed to load in worker: ${e && e.message}`);
    return;
  }
  post('ready');
  const sp = exports.__stack_pointer;
  const idle = sp instanceof WebAssembly.Global ? sp.value : 0;
  for (;;) {
    try {
      worker_entry(data.id);
      return; // the pool was shut down
    } catch (e) {
      if (!(e instanceof WebAssembly.RuntimeError) || !(sp instanceof WebAssembly.Global)) throw e;
      sp.value = idle;
    }
  }
}

const isNode = typeof process !== 'undefined' && process.versions != null && process.versions.node != null
  && typeof WorkerGlobalScope === 'undefined';
if (isNode) {
  // No top-level await: bundlers build workers as classic scripts by default (Vite's 'iife').
  const name = 'node:worker_threads';
  import(/* @vite-ignore */ name).then(({ parentPort, workerData }) => start(workerData, (m) => parentPort.postMessage(m)));
} else {
  self.onmessage = (ev) => {
    self.onmessage = null;
    start(ev.data, (m) => self.postMessage(m));
  };
}
