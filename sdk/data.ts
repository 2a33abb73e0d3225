/**
 * Data utilities: one-hot encoding, seeded train/test splits, standardisation, and `Dataset`, which
 * streams (optionally shuffled) mini-batches from tensors or from any async source.
 */
import { ArgumentError, DTypeError, ShapeError } from './errors.js';
import { randperm, tensor } from './creation.js';
import { keep, tidy } from './memory.js';
import { noGrad } from './autograd.js';
import { assertTensor, Tensor } from './tensor.js';
import { checkFunction, checkOptions, describe } from './args.js';

/** int32 class indices (any shape) -> float32 one-hot with a trailing class axis. */
export function oneHot(labels: Tensor, numClasses: number): Tensor {
  assertTensor(labels, 'oneHot needs int32 labels (a Tensor)');
  if (labels.dtype !== 'int32') throw new DTypeError(`oneHot expects int32 labels, got ${labels.dtype}`);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new ArgumentError(`numClasses must be a positive integer, got ${describe(numClasses)}`);
  return tidy(() => {
    const eye = tensor(Float32Array.from({ length: numClasses * numClasses }, (_, i) => (i % (numClasses + 1) === 0 ? 1 : 0)), [numClasses, numClasses]);
    return eye.indexSelect(0, labels);
  });
}

/** A non-empty array of Tensors sharing their first dimension; returns that size. */
function checkSameLength(xs: Tensor[], who: string): number {
  if (!Array.isArray(xs) || xs.length === 0) throw new ArgumentError(`${who} needs a non-empty array of Tensors, got ${describe(xs)}`);
  for (const t of xs) assertTensor(t, `${who} needs Tensors`);
  const n = xs[0].shape[0];
  for (const t of xs) {
    if (t.rank < 1 || t.shape[0] !== n) throw new ShapeError(`all tensors need the same first (sample) dimension: got ${xs.map((x) => `[${x.shape.join(', ')}]`).join(' and ')}`);
  }
  return n;
}

/** Rows `indices` of each tensor. */
export function takeRows(xs: Tensor[], indices: Tensor | Int32Array): Tensor[] {
  if (!Array.isArray(xs)) throw new ArgumentError(`takeRows needs an array of Tensors, got ${describe(xs)}`);
  for (const t of xs) assertTensor(t, 'takeRows needs Tensors');
  if (!(indices instanceof Tensor || indices instanceof Int32Array)) throw new ArgumentError(`takeRows needs indices as an int32 Tensor or an Int32Array, got ${describe(indices)}`);
  const idx = indices instanceof Tensor ? indices : tensor(indices, [indices.length], 'int32');
  try {
    return xs.map((t) => noGrad(() => t.indexSelect(0, idx)));
  } finally {
    if (!(indices instanceof Tensor)) idx.dispose();
  }
}

/**
 * Splits tensors (sharing their first dimension) into train and test parts after a seeded
 * shuffle. Returns `[train..., test...]` in the order given, e.g. `[xTrain, yTrain, xTest, yTest]`.
 */
export function trainTestSplit(xs: Tensor[], o: { testSize?: number; seed?: number; shuffle?: boolean } = {}): Tensor[] {
  const n = checkSameLength(xs, 'trainTestSplit');
  o = checkOptions(o, 'trainTestSplit options');
  const testSize = o.testSize ?? 0.2;
  if (typeof testSize !== 'number') throw new ArgumentError(`testSize must be a number, got ${describe(testSize)}`);
  const nTest = testSize >= 1 ? Math.floor(testSize) : Math.round(n * testSize);
  if (!(nTest >= 1 && nTest < n)) throw new ArgumentError(`testSize ${testSize} leaves no train or no test samples out of ${n}`);
  const order = (o.shuffle ?? true)
    ? tidy(() => randperm(n, { seed: o.seed ?? 0 }).dataSync() as Int32Array)
    : Int32Array.from({ length: n }, (_, i) => i);
  const train = takeRows(xs, order.subarray(0, n - nTest));
  const test = takeRows(xs, order.subarray(n - nTest));
  return [...train, ...test];
}

/** Per-feature standardisation: learns mean and std over the first axis, then (x − mean) / std. */
export class Standardizer {
  /** Per-feature mean over the first axis, set by `fit` (null before). */
  mean: Tensor | null = null;
  /** Per-feature population standard deviation (floored at 1e-8), set by `fit` (null before). */
  std: Tensor | null = null;
  /** Learns `mean` and `std` of `x` over its first axis (replacing earlier ones); returns this. */
  fit(x: Tensor): this {
    assertTensor(x, 'Standardizer.fit needs a Tensor');
    this.dispose();
    tidy(() => {
      const m = x.mean(0);
      const s = x.sub(m).square().mean(0).sqrt().maximum(1e-8);
      this.mean = keep(m);
      this.std = keep(s);
    });
    return this;
  }
  /** `(x − mean) / std`, a new tensor; throws ArgumentError before `fit`. */
  transform(x: Tensor): Tensor {
    if (!this.mean || !this.std) throw new ArgumentError('Standardizer.transform() before fit()');
    assertTensor(x, 'Standardizer.transform needs a Tensor');
    return tidy(() => x.sub(this.mean!).div(this.std!));
  }
  /** `fit(x)` then `transform(x)`. */
  fitTransform(x: Tensor): Tensor {
    return this.fit(x).transform(x);
  }
  /** Frees `mean` and `std`. */
  dispose(): void {
    this.mean?.dispose();
    this.std?.dispose();
    this.mean = this.std = null;
  }
}

/** Scales into [0, 1] per feature using the min and max over the first axis. */
export function minMaxScale(x: Tensor): Tensor {
  assertTensor(x, 'minMaxScale needs a Tensor');
  return tidy(() => {
    const lo = x.min(0);
    const range = x.max(0).sub(lo).maximum(1e-8);
    return x.sub(lo).div(range);
  });
}

/** Largest shuffle seed: epoch seeds `seed * 100003 + epoch` stay exact doubles for 10^9 epochs. */
const MAX_DATA_SEED = Math.floor((Number.MAX_SAFE_INTEGER - 1e9) / 100_003);

/** One mini-batch: inputs and optional targets (rows aligned). */
export interface Batch {
  /** Inputs of the batch, `[batch, ...]`. */
  x: Tensor;
  /** Targets of the batch, `[batch, ...]` (absent for unlabeled data). */
  y?: Tensor;
}

/**
 * A source of mini-batches. `Dataset.fromTensors(x, y)` slices tensors; `Dataset.fromGenerator`
 * wraps any async iterator of batches (streaming from disk or network). Batches are new tensors:
 * the consumer disposes them (`fit` does).
 */
export class Dataset {
  private constructor(
    private readonly source: (epoch: number, skip: number) => AsyncIterable<Batch>,
    /** Samples per epoch, or null when unknown (generators). */
    readonly size: number | null,
  ) {}

  /** Mini-batches of `x` (and `y`) rows: `batchSize` (default 32), reshuffled per epoch when `shuffle` (default false; `seed` default 0), dropping a last partial batch when `dropLast`. Throws if `x` and `y` differ in rows. */
  static fromTensors(x: Tensor, y?: Tensor, o: { batchSize?: number; shuffle?: boolean; seed?: number; dropLast?: boolean } = {}): Dataset {
    const n = checkSameLength(y === undefined || y === null ? [x] : [x, y], 'Dataset.fromTensors');
    o = checkOptions(o, 'Dataset.fromTensors options');
    const bs = o.batchSize ?? 32;
    if (!Number.isInteger(bs) || bs < 1) throw new ArgumentError(`batchSize must be a positive integer, got ${describe(bs)}`);
    const seed = o.seed ?? 0;
    // Each epoch's order comes from the stream seeded (seed, epoch), so a resumed run needs no state for it.
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > MAX_DATA_SEED) throw new ArgumentError(`seed must be an integer in [0, ${MAX_DATA_SEED}], got ${describe(seed)}`);
    const source = (epoch: number, skip: number): AsyncIterable<Batch> => ({
      async *[Symbol.asyncIterator]() {
        const order = o.shuffle
          ? tidy(() => randperm(n, { seed: seed * 100_003 + epoch }).dataSync() as Int32Array)
          : Int32Array.from({ length: n }, (_, i) => i);
        const end = o.dropLast ? n - (n % bs) : n;
        for (let s = skip * bs; s < end; s += bs) {
          const [bx, by] = takeRows(y ? [x, y] : [x], order.subarray(s, Math.min(s + bs, n)));
          yield { x: bx, y: by };
        }
      },
    });
    return new Dataset(source, Math.ceil((o.dropLast ? n - (n % bs) : n) / bs));
  }

  /** `make(epoch)` returns the batches of one epoch. */
  static fromGenerator(make: (epoch: number) => AsyncIterable<Batch> | Iterable<Batch>, batchesPerEpoch: number | null = null): Dataset {
    checkFunction(make, 'Dataset.fromGenerator: make');
    if (batchesPerEpoch !== null && !(Number.isInteger(batchesPerEpoch) && batchesPerEpoch >= 0)) {
      throw new ArgumentError(`Dataset.fromGenerator: batchesPerEpoch must be a non-negative integer or null, got ${describe(batchesPerEpoch)}`);
    }
    return new Dataset((epoch, skip) => {
      const it = make(epoch);
      return {
        async *[Symbol.asyncIterator]() {
          let i = 0;
          for await (const b of it as AsyncIterable<Batch>) {
            // A generator cannot jump ahead: batches before `skip` are made and freed.
            if (i++ < skip) {
              b.x.dispose();
              b.y?.dispose();
            } else yield b;
          }
        },
      };
    }, batchesPerEpoch);
  }

  /** The batches of epoch `epoch` (shuffling depends on it), from its batch `skip` on (a resumed epoch). */
  batches(epoch = 0, skip = 0): AsyncIterable<Batch> {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new ArgumentError(`epoch must be a non-negative integer, got ${describe(epoch)}`);
    if (!Number.isSafeInteger(skip) || skip < 0) throw new ArgumentError(`skip must be a non-negative integer, got ${describe(skip)}`);
    return this.source(epoch, skip);
  }
}
