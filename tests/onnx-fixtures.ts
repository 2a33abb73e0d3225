/**
 * ONNX test fixtures: ONNX Runtime as the oracle (onnxruntime-node in Node, onnxruntime-web's
 * wasm backend in Chromium), a structural checker for exported graphs, and error measures.
 */
import { expect } from 'vitest';
import type * as ortType from 'onnxruntime-web';
import * as eg from '../sdk/index.js';
import { isBrowser } from './helpers.js';
import { decodeModel, type ModelProto } from '../sdk/onnx/proto.js';

type Ort = typeof ortType;
let ort: Ort | null = null;

/** ONNX Runtime for this runtime (one thread). */
export async function loadOrt(): Promise<Ort> {
  if (ort) return ort;
  if (isBrowser) {
    const web = (await import('onnxruntime-web/wasm')) as unknown as Ort;
    web.env.wasm.numThreads = 1;
    // The bundle's own wasm URL does not survive Vite's dependency pre-bundling: serve it from the package.
    const dist = `${location.origin}/node_modules/onnxruntime-web/dist/`; // Vite serves the repository root
    web.env.wasm.wasmPaths = { mjs: `${dist}ort-wasm-simd-threaded.mjs`, wasm: `${dist}ort-wasm-simd-threaded.wasm` };
    web.env.logLevel = 'error';
    ort = web;
  } else {
    const name = 'onnxruntime-node'; // not a literal: the browser bundle must not resolve it
    ort = (await import(/* @vite-ignore */ name)) as Ort;
    ort.env.logLevel = 'error';
  }
  return ort;
}

/** Runs `bytes` in ONNX Runtime on `x` (and `extra` named inputs); returns the first output's values and shape. */
export async function runOrt(bytes: Uint8Array, x: eg.Tensor, inputName = 'input', extra: Record<string, eg.Tensor> = {}): Promise<{ data: Float32Array; dims: number[] }> {
  const o = await loadOrt();
  const session = await o.InferenceSession.create(bytes);
  try {
    const feed: Record<string, ortType.Tensor> = {};
    for (const [name, t] of Object.entries({ [inputName]: x, ...extra })) {
      feed[name] = new o.Tensor(t.dtype === 'int32' ? 'int32' : 'float32', t.dataSync() as Float32Array | Int32Array, t.shape);
    }
    const r = await session.run(feed);
    const out = r[session.outputNames[0]];
    return { data: Float32Array.from(out.data as Float32Array), dims: [...out.dims] };
  } finally {
    await session.release();
  }
}

/** max |a − b| (Infinity if the lengths differ). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * A small ONNX checker: opset declared, every node input defined before use (topological order),
 * value names produced once, value infos naming produced values with a rank, graph input and output
 * typed with shapes, every initializer's data matching its dims.
 */
export function checkStructure(bytes: Uint8Array): ModelProto {
  const m = decodeModel(bytes);
  expect(m.opsetImport.some((o) => (o.domain ?? '') === '' && o.version >= 17), 'default opset declared').toBe(true);
  expect(m.irVersion, 'IR version').toBeGreaterThanOrEqual(8);
  const g = m.graph;
  const defined = new Set<string>(['']);
  for (const t of g.initializer) {
    expect(defined.has(t.name!), `initializer ${t.name} defined once`).toBe(false);
    defined.add(t.name!);
    const n = (t.dims ?? []).reduce((a, b) => a * b, 1);
    const width = t.dataType === 1 || t.dataType === 6 ? 4 : t.dataType === 7 ? 8 : 1;
    expect(t.rawData?.length, `initializer ${t.name} data length`).toBe(n * width);
  }
  for (const v of g.input) {
    defined.add(v.name);
    expect(v.type?.tensorType?.shape?.dim?.length, `input ${v.name} has a shape`).toBeGreaterThan(0);
  }
  for (const n of g.node) {
    for (const x of n.input) expect(defined.has(x), `${n.name} (${n.opType}) reads ${x} after it is defined`).toBe(true);
    for (const y of n.output) {
      expect(defined.has(y), `${y} produced once`).toBe(false);
      defined.add(y);
    }
    expect(n.name, 'every node is named').toBeTruthy();
  }
  for (const v of [...(g.valueInfo ?? []), ...g.output]) {
    expect(defined.has(v.name), `value info ${v.name} names a produced value`).toBe(true);
    expect(v.type?.tensorType?.shape?.dim?.length, `value info ${v.name} has a shape`).toBeGreaterThan(0);
  }
  return m;
}
