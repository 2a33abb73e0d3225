/**
 * The determinism program: one fixed, seeded workload whose outputs are hashed into one digest that
 * must be bitwise identical on every engine (Node 20/22/24, Bun, Chromium, Firefox), in both builds
 * (simd, simd-threads) and for thread counts 1–4. Every runner imports this module: the Vitest
 * files (Node, Chromium, Firefox) pass the SDK they import, the standalone runner (Bun, other Node
 * versions) passes the SDK or the bundle. It touches every op family, trains a small CNN, runs it
 * through int8 post-training quantization, draws seeded random numbers, attributes with Integrated
 * Gradients and Grad-CAM and takes seeded DP-SGD steps.
 */
import type * as Edgegrad from '../../sdk/index.js';

/** The SDK namespace (the source in tests, or the bundle `dist/edgegrad.js`). */
export type EG = typeof Edgegrad;

/** One part of the program and the SHA-256 (hex) of its outputs' bytes. */
export interface PartDigest {
  part: string;
  digest: string;
}

/** The digest of the whole program (SHA-256 over the parts' digests, in order) and each part's. */
export interface ProgramDigest {
  digest: string;
  parts: PartDigest[];
}

/** A row of the engine table: which engine, build and thread count gave which digest. */
export interface DigestRow {
  engine: string;
  build: string;
  threads: number;
  digest: string;
  /** Parts whose digest differed from the expected one (empty when all match). */
  mismatched: string[];
}

/** Hex SHA-256 of the concatenated bytes of some typed arrays (WebCrypto: Node, Bun and browsers). */
export async function sha256(arrays: ArrayBufferView[]): Promise<string> {
  const total = arrays.reduce((n, a) => n + a.byteLength, 0);
  const buf = new Uint8Array(total);
  let off = 0;
  for (const a of arrays) {
    buf.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off);
    off += a.byteLength;
  }
  const h = await globalThis.crypto.subtle.digest('SHA-256', buf);
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, '0')).join('');
}

type Part = (eg: EG) => ArrayBufferView[] | Promise<ArrayBufferView[]>;

const data = (t: Edgegrad.Tensor): ArrayBufferView => t.dataSync() as ArrayBufferView;
const paramBytes = (m: Edgegrad.nn.Module): ArrayBufferView[] => m.parameters().map((p) => data(p));

/** Seeded draws from every generator, by explicit seed and from the global stream. */
const random: Part = (eg) => eg.tidy(() => {
  eg.manualSeed(1234);
  return [
    eg.rand([257], -2, 3, { seed: 1 }), eg.randn([33, 17], 0.5, 2, { seed: 2 }), eg.truncatedNormal([301], 0, 1, { seed: 3 }),
    eg.bernoulli([129], 0.3, { seed: 4 }), eg.randint([211], -5, 9, { seed: 5 }), eg.randperm(97, { seed: 6 }),
    eg.randn([65]), eg.rand([31]),
  ].map(data);
});

/** Elementwise math (transcendentals through the engine's own vector code), broadcasting and comparisons. */
const elementwise: Part = (eg) => eg.tidy(() => {
  const a = eg.randn([19, 23], 0, 1.5, { seed: 10 });
  const b = eg.rand([23], 0.2, 2, { seed: 11 });
  const p = a.abs().add(0.05);
  return [
    a.add(b), a.sub(b), a.mul(b), a.div(b), p.pow(b), a.maximum(b), a.minimum(0.25), a.neg(), a.exp(), p.log(), p.sqrt(),
    a.square(), a.clamp(-0.7, 0.9), a.affine(1.5, -0.25), a.relu(), a.sigmoid(), a.tanh(), a.leakyRelu(0.1), a.elu(), a.gelu(),
    a.silu(), a.softplus(), a.equal(b), a.notEqual(0), a.less(b), a.lessEqual(b), a.greater(b), a.greaterEqual(b),
    eg.where(a.greater(0), a, b.mul(-1)),
  ].map(data);
});

/** Matmuls (plain, batched with broadcasting, transposed operands), reductions and softmaxes. */
const linalg: Part = (eg) => eg.tidy(() => {
  const a = eg.randn([3, 37, 45], 0, 1, { seed: 20 });
  const b = eg.randn([45, 29], 0, 1, { seed: 21 });
  const c = eg.randn([3, 29, 45], 0, 1, { seed: 22 });
  const m = a.matmul(b);
  return [
    m, a.matmulT(c, false, true), eg.randn([130, 70], 0, 1, { seed: 23 }).matmul(eg.randn([70, 90], 0, 1, { seed: 24 })),
    m.sum(), m.sum(1), m.mean([0, 2], true), m.max(-1), m.min(0), m.argMax(-1), m.softmax(-1), m.logSoftmax(1),
  ].map(data);
});

/** Views, copies and gathers. */
const shapes: Part = (eg) => eg.tidy(() => {
  const a = eg.randn([4, 5, 6], 0, 1, { seed: 30 });
  const idx = eg.tensor([2, 0, 3, 3], [4], 'int32');
  return [
    a.reshape([20, 6]), a.permute([2, 0, 1]).contiguous(), a.transpose(0, 2).contiguous(), a.slice([1, 1, 2], [2, 3, 3]).contiguous(),
    a.expandDims(1).expand([4, 3, 5, 6]).contiguous(), eg.concat([a, a.mul(2)], 1), eg.stack([a, a.neg()], 0),
    a.indexSelect(1, idx), a.gather(2, eg.randint([4, 5, 2], 0, 6, { seed: 31 })), a.flatten(), a.cast('int32'),
  ].map(data);
});

/** Layers forward and backward: conv, pooling, norms, embedding, recurrent cells, attention. */
const layers: Part = (eg) => {
  const { nn } = eg;
  const mods: Edgegrad.nn.Module[] = [];
  const out = eg.tidy(() => {
    const img = eg.randn([3, 9, 9, 2], 0, 1, { seed: 40 }).requiresGrad_();
    const conv = new nn.Sequential(
      new nn.Conv2d(2, 4, 3, { padding: 'same', seed: 41 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(4, 6, 2, { stride: 2, seed: 42 }), new nn.AvgPool2d(2), new nn.Flatten(),
    );
    const seq = eg.randn([2, 7, 8], 0, 1, { seed: 43 }).requiresGrad_();
    const lstm = new nn.LSTM(8, 5, { seed: 44 });
    const gru = new nn.GRU(8, 5, { seed: 45, bidirectional: true });
    const mha = new nn.MultiHeadAttention(8, 2, { seed: 46 });
    const ln = new nn.LayerNorm(8);
    const emb = new nn.Embedding(11, 8, { seed: 47 });
    mods.push(conv, lstm, gru, mha, ln, emb);
    const ids = eg.tensor([1, 4, 10, 0, 7, 7], [2, 3], 'int32');
    const ys = [conv.forward(img), lstm.forward(seq), gru.forward(seq), mha.forward(ln.forward(seq)), emb.forward(ids)];
    ys.reduce((s: Edgegrad.Tensor, y) => s.add(y.tanh().sum()), eg.scalar(0)).backward();
    return [...ys.map(data), data(img.grad!), data(seq.grad!), ...mods.flatMap((m) => m.parameters().map((p) => data(p.grad!)))];
  });
  mods.forEach((m) => m.dispose());
  return out;
};

/** A small CNN (the digits model's shape) on synthetic 8x8 images, in the layout the demo uses. */
function cnn(eg: EG): Edgegrad.nn.Sequential {
  const { nn } = eg;
  return new nn.Sequential(
    new nn.Conv2d(1, 8, 3, { padding: 'same', bias: false, seed: 51 }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(8, 8, 3, { padding: 'same', bias: false, seed: 52 }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Dropout(0.2, 53), new nn.Linear(32, 4, { seed: 54 }),
  );
}

const crossEntropy = (eg: EG) => (l: Edgegrad.Tensor, y: Edgegrad.Tensor) =>
  eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true, labelSmoothing: 0.05 });

/** Seeded images whose class is the brightest quadrant. */
function images(eg: EG, n: number, seed: number): [Edgegrad.Tensor, Edgegrad.Tensor] {
  return eg.tidy(() => {
    const x = eg.rand([n, 8, 8, 1], 0, 1, { seed });
    const q = x.reshape([n, 2, 4, 2, 4]).permute([0, 1, 3, 2, 4]).reshape([n, 4, 16]).mean(-1);
    return [x, q.argMax(-1).cast('int32')];
  });
}

/**
 * Trains the CNN (Adam, seeded shuffles and dropout, a cosine schedule) for two epochs, then
 * quantizes it to int8, predicts, and attributes with Integrated Gradients and Grad-CAM.
 */
const trainQuantizeExplain = async (eg: EG, out: Record<string, ArrayBufferView[]>): Promise<void> => {
  const [x, y] = images(eg, 96, 60);
  const model = cnn(eg);
  const opt = new eg.optim.Adam(model.parameters(), { lr: 3e-3 });
  model.compile({ optimizer: opt, loss: crossEntropy(eg), metrics: ['accuracy'] });
  const sched = new eg.optim.CosineAnnealingLR(opt, 2);
  const hist = await model.fit(x, y, { epochs: 2, batchSize: 16, seed: 61, verbose: 0, callbacks: [new eg.train.LearningRateScheduler(sched)] });
  out.training = [...paramBytes(model), ...model.namedBuffers().map(([, b]) => data(b)), Float64Array.from(hist.history.loss)];
  model.eval();
  const calibration = x.slice([0, 0, 0, 0], [48, 8, 8, 1]);
  const q = eg.compress.quantize(model, calibration);
  out.int8 = eg.tidy(() => [data(q.predict(x)), data(model.predict(x))]);
  out.explain = eg.tidy(() => {
    const probe = x.slice([0, 0, 0, 0], [6, 8, 8, 1]);
    const target = Array.from(y.slice([0], [6]).dataSync() as Int32Array);
    const ig = new eg.explain.IntegratedGradients(model).attribute(probe, { target, nSteps: 16 });
    const cam = new eg.explain.LayerGradCam(model, '4').attribute(probe, { target, reluAttributions: true, upsample: 'bilinear' });
    return [data(ig), data(cam)];
  });
  q.dispose();
  model.dispose();
  opt.dispose();
  eg.dispose([x, y, calibration]);
};

/**
 * Seeded DP-SGD (per-example clipping, Gaussian noise, Poisson batches) through fit for one epoch.
 * The accountant's ε is left out: it is computed with `Math.log`/`Math.exp`, whose last bits differ
 * between JavaScript engines.
 */
const privacy: Part = async (eg) => {
  const [x, y] = images(eg, 64, 70);
  const model = new eg.nn.Sequential(new eg.nn.Flatten(), new eg.nn.Linear(64, 12, { seed: 71 }), new eg.nn.Tanh(), new eg.nn.Linear(12, 4, { seed: 72 }));
  const engine = new eg.privacy.PrivacyEngine({ accountant: 'rdp' });
  const pt = engine.makePrivate({ model, optimizer: new eg.optim.SGD(model.parameters(), { lr: 0.2, momentum: 0.9 }), data: [x, y],
    batchSize: 16, noiseMultiplier: 1.1, maxGradNorm: 0.7, seed: 73 });
  model.compile({ optimizer: pt.optimizer, loss: crossEntropy(eg) });
  await model.fit(pt.data, { epochs: 1, trainStep: pt.trainStep, verbose: 0 });
  const w = paramBytes(model);
  model.dispose();
  pt.optimizer.dispose();
  eg.dispose([x, y]);
  return w;
};

/**
 * Runs the whole program once on the engine `eg` (initialised by the caller, threads set) and
 * returns its digest. Frees everything it creates.
 */
export async function runProgram(eg: EG): Promise<ProgramDigest> {
  const outputs: Record<string, ArrayBufferView[]> = {};
  for (const [name, part] of [['random', random], ['elementwise', elementwise], ['linalg', linalg], ['shapes', shapes], ['layers', layers]] as const) {
    outputs[name] = await part(eg);
  }
  await trainQuantizeExplain(eg, outputs);
  outputs.privacy = await privacy(eg);
  const parts: PartDigest[] = [];
  for (const [part, arrays] of Object.entries(outputs)) parts.push({ part, digest: await sha256(arrays) });
  const all = new TextEncoder().encode(parts.map((p) => `${p.part}:${p.digest}`).join('\n'));
  return { digest: await sha256([all]), parts };
}

/** The names of the parts whose digest differs from `expected`'s (all of them when the list differs). */
export function mismatchedParts(got: ProgramDigest, expected: ProgramDigest): string[] {
  const want = new Map(expected.parts.map((p) => [p.part, p.digest]));
  const bad = got.parts.filter((p) => want.get(p.part) !== p.digest).map((p) => p.part);
  return got.parts.length === expected.parts.length ? bad : [...new Set([...bad, ...expected.parts.map((p) => p.part)])];
}

/** Thread counts every runner tries with the threaded build. */
export const THREAD_COUNTS = [1, 2, 3, 4] as const;

/**
 * Runs the program under the engine's current build for each thread count in `threads` (1 only for
 * the single-threaded build) and returns one table row per run.
 */
export async function runRows(eg: EG, engine: string, expected: ProgramDigest, threads: readonly number[] = THREAD_COUNTS): Promise<DigestRow[]> {
  const info = eg.backendInfo();
  const counts = info.build === 'simd' ? [1] : threads.filter((t) => t <= info.maxThreads);
  const rows: DigestRow[] = [];
  for (const t of counts) {
    eg.setNumThreads(t);
    const got = await runProgram(eg);
    rows.push({ engine, build: info.build, threads: t, digest: got.digest, mismatched: mismatchedParts(got, expected) });
  }
  return rows;
}

/** The rows as a fixed-width text table. */
export function formatTable(rows: DigestRow[]): string {
  const head = ['engine', 'build', 'threads', 'digest (first 16 hex)', 'parts off'];
  const body = rows.map((r) => [r.engine, r.build, String(r.threads), r.digest.slice(0, 16), r.mismatched.join(',') || '-']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
