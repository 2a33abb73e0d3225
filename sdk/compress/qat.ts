/**
 * Quantization-aware training. `prepareQAT(model)` traces the model (BatchNorm folded into the
 * conv/linear weights with its running statistics, ReLU fused) into a `QATModel`: a Module whose
 * trainable parameters are the folded weights and biases, and whose forward pass simulates the
 * int8 model exactly where it matters:
 * - weights go through per-channel symmetric fake quantization (the same scales and rounding as
 *   `quantizePerChannel`),
 * - every activation an int8 op would produce (and the input) goes through per-tensor asymmetric
 *   fake quantization, with its range tracked by an exponential moving average of batch min/max
 *   (optionally initialised by calibration),
 * both with straight-through gradients (zero where a value was clipped). Train it with `fit` or
 * any loop, then `convertQAT(qat)` (or `qat.toQuantized()`) gives the same `QuantizedModel` that
 * post-training quantization gives, with the learned weights and observed ranges.
 */
import { ArgumentError } from '../errors.js';
import { noGrad } from '../autograd.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { assertModule, Module } from '../nn/module.js';
import { checkOptions, describe } from '../args.js';
import * as E from './engine.js';
import { checkGraphArg, disposeGraph, isQuantPoint, runFloat, sampleShape, traceModel, type FloatGraph } from './graph.js';
import { calibrateRanges, QuantizedModel, type CalibrationOptions } from './quantize.js';

/** Options of `prepareQAT`: calibration of the fake-quantization ranges plus the input shape. */
export interface QATOptions extends CalibrationOptions {
  /** Per-sample input shape (default: `calibrationData`'s). */
  inputShape?: number[];
  /** Samples that initialise the activation ranges (recommended). */
  calibrationData?: Tensor;
  /** Weight of each batch in the moving-average ranges (default 0.01). */
  momentum?: number;
}

export class QATModel extends Module {
  readonly #graph: FloatGraph;
  readonly #ranges = new Map<number, [number, number]>();
  readonly #momentum: number;
  /** When false, activation ranges stay fixed (typical for the last epochs of QAT). */
  observersEnabled = true;

  constructor(graph: FloatGraph, ranges: Map<number, [number, number]> | null, momentum = 0.01) {
    super();
    checkGraphArg(graph, 'QATModel');
    if (ranges !== null && ranges !== undefined && !(ranges instanceof Map)) throw new ArgumentError(`QATModel: ranges must be a Map or null, got ${describe(ranges)}`);
    if (!(momentum > 0 && momentum <= 1)) throw new ArgumentError(`momentum must be in (0, 1], got ${momentum}`);
    this.#graph = graph;
    this.#momentum = momentum;
    if (ranges) for (const [v, r] of ranges) this.#ranges.set(v, [r[0], r[1]]);
    graph.nodes.forEach((n, i) => {
      if (n.op !== 'linear' && n.op !== 'conv') return;
      this.registerParameter(`n${i}_weight`, n.weight);
      if (n.bias) this.registerParameter(`n${i}_bias`, n.bias);
    });
  }

  /** The traced graph (its layers' tensors are this module's parameters). */
  get graph(): FloatGraph {
    return this.#graph;
  }

  /** The current `[lo, hi]` range of each quantized activation (by value index). */
  ranges(): Map<number, [number, number]> {
    return new Map([...this.#ranges].map(([v, r]) => [v, [r[0], r[1]] as [number, number]]));
  }

  #observe(v: number, t: Tensor): [number, number] {
    const r = this.#ranges.get(v);
    if ((this.training && this.observersEnabled) || !r) {
      const [a, b] = E.minMax(t);
      if (!r) this.#ranges.set(v, [a, b]);
      else this.#ranges.set(v, [r[0] + this.#momentum * (a - r[0]), r[1] + this.#momentum * (b - r[1])]);
    }
    return this.#ranges.get(v)!;
  }

  forward(x: Tensor): Tensor {
    assertTensor(x, 'QATModel.forward needs a Tensor');
    const g = this.#graph;
    return runFloat(g, x, {
      weight: (n) => E.fakeQuantPerChannel(n.weight, n.op === 'linear' ? 0 : 3),
      value: (v, t) => {
        if (!isQuantPoint(g, v)) return undefined;
        const [a, b] = this.#observe(v, t);
        return E.fakeQuant(t, E.chooseQParams(a, b));
      },
    });
  }

  /** The int8 model with the current weights and ranges. */
  toQuantized(): QuantizedModel {
    const q = new Map<number, E.QParams>();
    for (let v = 0; v < this.#graph.shapes.length; v++) {
      if (!isQuantPoint(this.#graph, v)) continue;
      const r = this.#ranges.get(v);
      if (!r) throw new ArgumentError(`QAT: activation ${v} was never observed: run the model (train or calibrate) before converting`);
      q.set(v, E.chooseQParams(r[0], r[1]));
    }
    return noGrad(() => QuantizedModel.fromFloatGraph(this.#graph, q));
  }

  override dispose(): void {
    super.dispose();
    disposeGraph(this.#graph);
  }
}

/** A `QATModel` for `model` (see the module docs). `model` itself is not changed. */
export function prepareQAT(model: Module, o: QATOptions = {}): QATModel {
  assertModule(model, 'prepareQAT');
  o = checkOptions(o, 'prepareQAT options');
  const shape = o.inputShape ?? (o.calibrationData ? sampleShape(o.calibrationData) : undefined);
  if (!shape) throw new ArgumentError('prepareQAT needs inputShape or calibrationData');
  const wasTraining = model.training;
  model.eval();
  let g: FloatGraph | null = null;
  try {
    g = traceModel(model, shape);
    const ranges = o.calibrationData ? calibrateRanges(g, o.calibrationData, o) : null;
    const m = new QATModel(g, ranges, o.momentum);
    g = null;
    return m;
  } finally {
    if (g) disposeGraph(g);
    model.train(wasTraining);
  }
}

/** The int8 model of a quantization-aware-trained `QATModel`. */
export function convertQAT(m: QATModel): QuantizedModel {
  if (!(m instanceof QATModel)) throw new ArgumentError('convertQAT needs a QATModel (from prepareQAT)');
  return m.toQuantized();
}
