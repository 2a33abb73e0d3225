/**
 * conv2d 1x56x56x64 with 64 3x3 filters, same padding: forward, and forward+backward (gradients
 * for input and filters). edgegrad (NHWC) against tfjs (NHWC) and ONNX Runtime Web (NCHW, forward).
 */
import * as eg from 'edgegrad';
import { main, measure, timeIt, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadOrt, loadTfjs } from '../lib/peers.js';
import { buildModel, DT } from '../lib/onnx.js';

const [N, H, W, C, K] = [1, 56, 56, 64, 64];
const FLOPS = 2 * N * H * W * K * C * 9; // forward multiply-adds x2
const SIZE = '1x56x56x64 k3x3x64';

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'tfjs-wasm', threads: 1 }, { engine: 'tfjs-cpu', threads: 1 },
    { engine: 'ort-web', threads: 1 }, { engine: 'ort-web', threads: 2 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    const rec = (workload: string, ms: number, flops: number, note?: string) =>
      out.push({ workload, engine: job.engine, size: SIZE, threads: job.threads, medianMs: ms, gflops: Number.isFinite(ms) ? flops / (ms * 1e6) : null, note });
    const xv = randomFloats(N * H * W * C, 1);
    const wv = randomFloats(9 * C * K, 2).map((v) => v * 0.1);
    const gv = randomFloats(N * H * W * K, 3);
    if (job.engine === 'edgegrad') {
      await eg.init({ threads: job.threads });
      eg.setNumThreads(job.threads);
      const x = eg.tensor(xv, [N, H, W, C]);
      const w = eg.tensor(wv, [3, 3, C, K]);
      const F = eg.nn.functional;
      rec('conv2d', await measure(() => eg.noGrad(() => F.conv2d(x, w, null, { padding: 'same' })).dispose()), FLOPS);
      x.requiresGrad_();
      w.requiresGrad_();
      const gy = eg.tensor(gv, [N, H, W, K]);
      rec('conv2d-fwd-bwd', await measure(() => {
        eg.tidy(() => F.conv2d(x, w, null, { padding: 'same' }).backward(gy));
        x.zeroGrad();
        w.zeroGrad();
      }), 3 * FLOPS);
    } else if (job.engine.startsWith('tfjs')) {
      const { tf } = await loadTfjs(job.engine === 'tfjs-wasm' ? 'wasm' : 'cpu');
      const x = tf.tensor4d(xv, [N, H, W, C]);
      const w = tf.tensor4d(wv, [3, 3, C, K]);
      rec('conv2d', await measure(() => tf.conv2d(x, w, 1, 'same').dispose()), FLOPS);
      const gy = tf.tensor4d(gv, [N, H, W, K]);
      const grads = tf.grads((a: import('@tensorflow/tfjs').Tensor, b: import('@tensorflow/tfjs').Tensor) => tf.conv2d(a as never, b as never, 1, 'same'));
      try {
        const step = () => grads([x, w], gy).forEach((t) => t.dispose());
        // tfjs-cpu takes ~30 s per pass here: 3 timed reps after 1 warm-up keep the bench under 10 minutes.
        if (job.engine === 'tfjs-cpu') rec('conv2d-fwd-bwd', await timeIt(step, 3, 1), 3 * FLOPS, 'median of 3 reps (slow peer)');
        else rec('conv2d-fwd-bwd', await measure(step), 3 * FLOPS);
      } catch (e) {
        rec('conv2d-fwd-bwd', NaN, 0, `failed: ${(e as Error).message.split('\n')[0]}`);
      }
    } else {
      const ort = await loadOrt(job.threads);
      // NCHW / OIHW: the same arithmetic in ONNX's layout.
      const wOihw = new Float32Array(K * C * 9);
      for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) for (let ci = 0; ci < C; ci++) for (let co = 0; co < K; co++) {
        wOihw[((co * C + ci) * 3 + ky) * 3 + kx] = wv[((ky * 3 + kx) * C + ci) * K + co];
      }
      const model = buildModel({
        nodes: [{ op: 'Conv', inputs: ['X', 'W'], outputs: ['Y'], attrs: [{ name: 'pads', ints: [1, 1, 1, 1] }, { name: 'kernel_shape', ints: [3, 3] }] }],
        inputs: [{ name: 'X', elemType: DT.FLOAT, shape: [N, C, H, W] }],
        outputs: [{ name: 'Y', elemType: DT.FLOAT, shape: [N, K, H, W] }],
        initializers: [{ name: 'W', dims: [K, C, 3, 3], dataType: DT.FLOAT, data: wOihw }],
      });
      const s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      const feed = { X: new ort.Tensor('float32', xv, [N, C, H, W]) };
      rec('conv2d', await measure(async () => { await s.run(feed); }), FLOPS, 'NCHW; forward only (inference engine)');
    }
    return out;
  },
};
export default workload;
await main(workload, import.meta.url);
