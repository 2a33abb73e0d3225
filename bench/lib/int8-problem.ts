/**
 * The int8 GEMM problem of bench/workloads/int8-gemm.ts as a prepared closure: A `[n, n]` int8
 * activations (scale 1/127, zero point 0) times B `[n, n]` int8 weights (symmetric per output
 * column, packed once), requantized to int8 per column (scale 0.05, zero point 0). A and B are
 * `randomFloats(n*n, 1)` and `randomFloats(n*n, 2)` quantized. `run` computes it once (and frees
 * the result), `free` releases the operands.
 */
import * as eg from 'edgegrad';
import { randomFloats } from '../harness.js';

export function int8GemmProblem(n: number): { run: () => void; free: () => void } {
  const Q = eg.compress.int8;
  const xq = { scale: 1 / 127, zeroPoint: 0 };
  const oq = { scale: 0.05, zeroPoint: 0 };
  const [aq, wq, ws] = eg.tidy(() => {
    const a = eg.tensor(randomFloats(n * n, 1), [n, n]);
    const bt = eg.tensor(randomFloats(n * n, 2), [n, n]).transpose().contiguous(); // weights as [out, in]
    return [Q.quantizeTensor(a, xq), ...Q.quantizePerChannel(bt, 0)];
  });
  const packed = Q.packWeights(wq, 0);
  const c = Q.layerConstants(wq, ws, null, 0, xq, oq);
  return {
    run: () => Q.qlinear(aq, packed, n, { c, out: oq, relu: false }).dispose(),
    free: () => eg.dispose([aq, wq, ws, packed, c.offsets, c.mult, c.scales].filter((t): t is eg.Tensor => !!t)),
  };
}
