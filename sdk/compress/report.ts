/**
 * `compressionReport(model)`: parameters, zeros, bytes on disk, accuracy and latency of a float,
 * pruned, int8 or binary model, optionally against a baseline's figures.
 */
import { ArgumentError } from '../errors.js';
import { noGrad } from '../autograd.js';
import { tidy } from '../memory.js';
import type { Tensor } from '../tensor.js';
import { checkFunction, checkInt, checkOptions, describe } from '../args.js';
import { Module } from '../nn/module.js';
import { serializeModel } from '../io/model-io.js';
import * as E from './engine.js';
import { QuantizedModel } from './quantize.js';
import { BinaryModel } from './binary.js';
import { evalAccuracy } from './distill.js';

/** What `compressionReport` measures for one model. */
export interface CompressionStats {
  /** Label of the model in the report (`ReportOptions.name`). */
  name: string;
  /** Representation of the weights: float32, int8 (QuantizedModel) or binary (BinaryModel). */
  kind: 'float32' | 'int8' | 'binary';
  /** Weight and bias elements. */
  parameters: number;
  /** Parameters that are not exactly zero. */
  nonzeroParameters: number;
  /** Fraction of the parameters that are exactly zero. */
  sparsity: number;
  /** Size of the saved model (float: model.json + model.safetensors; int8/binary: the one file). */
  bytesOnDisk: number;
  /**
   * For sparse float models: the size with a bitmask encoding of the zeros (1 bit per weight plus
   * the non-zero values) — an estimate of what a sparse format would take, not a file edgegrad writes.
   */
  sparseBytes?: number;
  /** Top-1 accuracy on `ReportOptions.data`, in [0, 1] (only with `data`). */
  accuracy?: number;
  /** Median wall time of one forward pass over the latency batch (ms). */
  latencyMs?: number;
  /** Rows of the batch `latencyMs` was measured on. */
  latencyBatch?: number;
  /** Against `baseline`: its size / this size, this accuracy - its accuracy, its latency / this latency. */
  vsBaseline?: {
    /** Baseline bytes on disk / these bytes. */
    sizeRatio: number;
    /** This accuracy minus the baseline's. */
    accuracyDelta?: number;
    /** Baseline latency / this latency. */
    speedup?: number;
  };
}

/** Options of `compressionReport`. */
export interface ReportOptions {
  /** Label of the model in the report (default: `int8`, `binary`, or the float model's class name). */
  name?: string;
  /** `[x, int32 labels]` for the accuracy. */
  data?: [Tensor, Tensor];
  /** Batch size of the accuracy evaluation (default 256). */
  batchSize?: number;
  /**
   * A batch to time forward passes on (median of `reps`, after `warmup`). With `against` (the
   * baseline model), the two are timed alternately and `vsBaseline.speedup` is the ratio of those
   * medians: machine speed drift then hits both alike.
   */
  latency?: {
    /** The batch to run. */
    x: Tensor;
    /** Timed passes; the median is reported (default 20). */
    reps?: number;
    /** Untimed passes first (default 3). */
    warmup?: number;
    /** The baseline model, timed alternately with this one. */
    against?: Model;
  };
  /** Another model's stats to compare against (fills `vsBaseline`). */
  baseline?: CompressionStats;
}

type Model = Module | QuantizedModel | BinaryModel;

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median ms of `fn` over `reps` runs after `warmup` runs. */
export function timeMs(fn: () => void, reps = 20, warmup = 3): number {
  checkFunction(fn, 'timeMs: fn');
  checkInt(reps, 'timeMs: reps', 1);
  checkInt(warmup, 'timeMs: warmup', 0);
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

function forwardOnce(m: Model, x: Tensor): void {
  if (m instanceof Module) {
    const was = m.training;
    m.eval();
    try {
      tidy(() => noGrad(() => m.forward(x)));
    } finally {
      m.train(was);
    }
  } else tidy(() => m.forward(x));
}

/** Figures for one model (see `CompressionStats`). */
export function compressionReport(model: Model, o: ReportOptions = {}): CompressionStats {
  o = checkOptions(o, 'compressionReport options');
  let stats: CompressionStats;
  if (model instanceof QuantizedModel) {
    const ts = model.tensors();
    let params = 0;
    let zeros = 0;
    for (const [k, t] of Object.entries(ts)) {
      if (k.endsWith('.weight_scale')) continue;
      params += t.size;
      zeros += E.countZeros(t);
    }
    stats = { name: o.name ?? 'int8', kind: 'int8', parameters: params, nonzeroParameters: params - zeros, sparsity: params ? zeros / params : 0, bytesOnDisk: model.byteSize() };
  } else if (model instanceof BinaryModel) {
    const p = model.numParameters();
    stats = { name: o.name ?? 'binary', kind: 'binary', parameters: p, nonzeroParameters: p, sparsity: 0, bytesOnDisk: model.byteSize() };
  } else if (model instanceof Module) {
    const art = serializeModel(model);
    const jsonBytes = new TextEncoder().encode(JSON.stringify(art.json, null, 2)).length;
    let params = 0;
    let zeros = 0;
    let sparse = 0;
    for (const [, p] of model.namedParameters()) {
      const z = E.countZeros(p);
      params += p.size;
      zeros += z;
      sparse += z > 0 ? Math.ceil(p.size / 8) + 4 * (p.size - z) : 4 * p.size;
    }
    for (const [, b] of model.namedBuffers()) sparse += 4 * b.size;
    stats = { name: o.name ?? model.className, kind: 'float32', parameters: params, nonzeroParameters: params - zeros, sparsity: params ? zeros / params : 0, bytesOnDisk: jsonBytes + art.weights.length };
    if (zeros / Math.max(params, 1) > 0.01) stats.sparseBytes = jsonBytes + sparse;
  } else {
    throw new ArgumentError(`compressionReport needs a Module, QuantizedModel or BinaryModel, got ${describe(model)}`);
  }
  if (o.data) stats.accuracy = evalAccuracy(model, o.data[0], o.data[1], o.batchSize ?? 256);
  let interleavedSpeedup: number | undefined;
  if (o.latency) {
    const { x, against } = o.latency;
    const reps = o.latency.reps ?? 20;
    const warmup = o.latency.warmup ?? 3;
    if (against) {
      for (let i = 0; i < warmup; i++) {
        forwardOnce(model, x);
        forwardOnce(against, x);
      }
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let i = 0; i < reps; i++) {
        let t0 = performance.now();
        forwardOnce(model, x);
        ours.push(performance.now() - t0);
        t0 = performance.now();
        forwardOnce(against, x);
        theirs.push(performance.now() - t0);
      }
      stats.latencyMs = median(ours);
      interleavedSpeedup = median(theirs) / stats.latencyMs;
    } else {
      stats.latencyMs = timeMs(() => forwardOnce(model, x), reps, warmup);
    }
    stats.latencyBatch = x.shape[0];
  }
  if (o.baseline) {
    const b = o.baseline;
    stats.vsBaseline = {
      sizeRatio: b.bytesOnDisk / stats.bytesOnDisk,
      ...(b.accuracy !== undefined && stats.accuracy !== undefined ? { accuracyDelta: stats.accuracy - b.accuracy } : {}),
      ...(interleavedSpeedup !== undefined ? { speedup: interleavedSpeedup }
        : b.latencyMs !== undefined && stats.latencyMs !== undefined ? { speedup: b.latencyMs / stats.latencyMs } : {}),
    };
  }
  return stats;
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

/** A Markdown table of several reports. */
export function formatCompressionTable(rows: CompressionStats[]): string {
  if (!Array.isArray(rows) || rows.some((r) => r === null || typeof r !== 'object')) {
    throw new ArgumentError(`formatCompressionTable needs an array of compressionReport results, got ${describe(rows)}`);
  }
  const head = '| model | kind | parameters | sparsity | size on disk | size ratio | accuracy | Δ accuracy (points) | latency (ms) | speed-up |';
  const lines = rows.map((r) => `| ${r.name} | ${r.kind} | ${r.parameters} | ${(100 * r.sparsity).toFixed(1)}% | ${kb(r.bytesOnDisk)}${r.sparseBytes ? ` (sparse ≈ ${kb(r.sparseBytes)})` : ''} | ${r.vsBaseline ? `${r.vsBaseline.sizeRatio.toFixed(2)}x` : '—'} | ${r.accuracy !== undefined ? `${(100 * r.accuracy).toFixed(2)}%` : '—'} | ${r.vsBaseline?.accuracyDelta !== undefined ? (100 * r.vsBaseline.accuracyDelta).toFixed(2) : '—'} | ${r.latencyMs !== undefined ? `${r.latencyMs.toFixed(2)} (batch ${r.latencyBatch})` : '—'} | ${r.vsBaseline?.speedup !== undefined ? `${r.vsBaseline.speedup.toFixed(2)}x` : '—'} |`);
  return [head, '|---|---|---|---|---|---|---|---|---|---|', ...lines].join('\n');
}
