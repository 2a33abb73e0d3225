/**
 * Text helpers for language models: a character tokenizer, a seeded PRNG, random training
 * windows, and sampling (temperature, top-k) and generation for any model that maps int32 token
 * ids `[batch, time]` to logits `[batch, time, vocab]`.
 *
 * Sampling is reproducible everywhere: the softmax runs in the engine (identical bits in every
 * runtime) and the draw uses a seeded xorshift/mulberry generator and float64 sums, never
 * `Math.random` or `Math.exp`.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { tensor } from '../creation.js';
import { noGrad } from '../autograd.js';
import { tidy } from '../memory.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { assertModule, type Module } from './module.js';
import { checkFunction, checkLengths, checkSize, describe } from '../args.js';

/** A character-level vocabulary: every distinct character of a text, sorted by code unit. */
export class CharTokenizer {
  /** The vocabulary: token id i is `chars[i]`. */
  readonly chars: string[];
  readonly #index = new Map<string, number>();
  constructor(chars: string | string[]) {
    if (typeof chars !== 'string' && !(Array.isArray(chars) && chars.every((c) => typeof c === 'string'))) {
      throw new ArgumentError(`CharTokenizer needs its vocabulary as a string or an array of strings, got ${describe(chars)}`);
    }
    this.chars = typeof chars === 'string' ? [...chars] : chars.slice();
    this.chars.forEach((c, i) => {
      if (this.#index.has(c)) throw new ArgumentError(`CharTokenizer: character ${JSON.stringify(c)} appears twice in the vocabulary`);
      this.#index.set(c, i);
    });
  }
  /** The vocabulary of `text`. */
  static fromText(text: string): CharTokenizer {
    if (typeof text !== 'string') throw new ArgumentError(`CharTokenizer.fromText needs a string, got ${describe(text)}`);
    return new CharTokenizer([...new Set(text)].sort());
  }
  /** Number of tokens in the vocabulary. */
  get vocabSize(): number {
    return this.chars.length;
  }
  /** Token ids of each character of `text`; throws ArgumentError on a character outside the vocabulary. */
  encode(text: string): Int32Array {
    if (typeof text !== 'string') throw new ArgumentError(`CharTokenizer.encode needs a string, got ${describe(text)}`);
    const out = new Int32Array(text.length);
    let i = 0;
    for (const c of text) {
      const id = this.#index.get(c);
      if (id === undefined) throw new ArgumentError(`CharTokenizer: character ${JSON.stringify(c)} (position ${i}) is not in the vocabulary`);
      out[i++] = id;
    }
    return out.subarray(0, i);
  }
  /** The text of token ids; throws ArgumentError on an id outside the vocabulary. */
  decode(ids: ArrayLike<number>): string {
    checkLengths(ids, 'CharTokenizer.decode');
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const c = this.chars[ids[i]];
      if (c === undefined) throw new ArgumentError(`CharTokenizer: token id ${ids[i]} is outside the vocabulary (size ${this.vocabSize})`);
      s += c;
    }
    return s;
  }
  /** The vocabulary as one string: `new CharTokenizer(json.chars)` rebuilds the tokenizer. */
  toJSON(): { chars: string } {
    return { chars: this.chars.join('') };
  }
}

/** A seeded generator of floats in [0, 1) (mulberry32): the same stream in every JS engine. */
export function seededRandom(seed: number): () => number {
  if (typeof seed !== 'number' || !Number.isFinite(seed)) throw new ArgumentError(`seededRandom needs a finite number seed, got ${describe(seed)}`);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A batch of `batchSize` random windows of `blockSize + 1` tokens from `data`: inputs `x` and
 * next-token targets `y`, both int32 `[batchSize, blockSize]`.
 */
export function randomWindows(data: Int32Array, batchSize: number, blockSize: number, random: () => number): { x: Tensor; y: Tensor } {
  checkLengths(data, 'randomWindows');
  checkSize(batchSize, 'randomWindows batchSize');
  checkSize(blockSize, 'randomWindows blockSize');
  checkFunction(random, 'randomWindows random');
  if (data.length <= blockSize + 1) throw new ShapeError(`randomWindows: ${data.length} tokens are too few for windows of ${blockSize + 1}`);
  const xs = new Int32Array(batchSize * blockSize);
  const ys = new Int32Array(batchSize * blockSize);
  for (let b = 0; b < batchSize; b++) {
    const o = Math.floor(random() * (data.length - blockSize - 1));
    xs.set(data.subarray(o, o + blockSize), b * blockSize);
    ys.set(data.subarray(o + 1, o + blockSize + 1), b * blockSize);
  }
  return { x: tensor(xs, [batchSize, blockSize], 'int32'), y: tensor(ys, [batchSize, blockSize], 'int32') };
}

/** Options of `sampleLogits` and `generate`. */
export interface SampleOptions {
  /** Divides the logits; lower is more conservative. 0 picks the most likely token. Default 1. */
  temperature?: number;
  /** Sample only among the k most likely tokens. */
  topK?: number;
  /** Source of uniform draws (default: `seededRandom(seed ?? 0)`). */
  random?: () => number;
  /** Seed of the default `random` (default 0): the same seed samples the same tokens in every runtime. */
  seed?: number;
}

/** Draws a token id from a row of logits `[vocab]` (any shape with one row of logits is accepted). */
export function sampleLogits(logits: Tensor, o: SampleOptions & { random: () => number }): number {
  assertTensor(logits, 'sampleLogits needs the logits as a Tensor');
  if (o === null || typeof o !== 'object') throw new ArgumentError(`sampleLogits needs options { random, temperature?, topK? }, got ${describe(o)}`);
  checkFunction(o.random, 'sampleLogits random');
  const t = o.temperature ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) throw new ArgumentError(`temperature must be a finite number >= 0, got ${t}`);
  if (t === 0) return tidy(() => logits.reshape([-1]).argMax(0).item());
  const probs = tidy(() => logits.reshape([-1]).mul(1 / t).softmax(-1).dataSync());
  let ids = Array.from(probs.keys());
  if (o.topK !== undefined) {
    if (!Number.isInteger(o.topK) || o.topK < 1) throw new ArgumentError(`topK must be a positive integer, got ${o.topK}`);
    ids.sort((a, b) => probs[b] - probs[a] || a - b);
    ids = ids.slice(0, o.topK);
  }
  let total = 0;
  for (const i of ids) total += probs[i];
  let u = o.random() * total;
  for (const i of ids) {
    u -= probs[i];
    if (u < 0) return i;
  }
  return ids[ids.length - 1];
}

/**
 * Autoregressive generation: appends `maxNewTokens` sampled tokens to `context`, feeding the
 * model at most its last `blockSize` tokens each time. Runs in evaluation mode without
 * gradients. Returns only the new tokens.
 */
export function generate(model: Module, context: ArrayLike<number>, maxNewTokens: number, o: SampleOptions & { blockSize: number }): Int32Array {
  assertModule(model, 'generate');
  checkLengths(context, 'generate context');
  checkSize(maxNewTokens, 'generate maxNewTokens');
  if (o === null || typeof o !== 'object') throw new ArgumentError(`generate needs options { blockSize, ... }, got ${describe(o)}`);
  if (o.random !== undefined) checkFunction(o.random, 'generate random');
  if (!Number.isInteger(o.blockSize) || o.blockSize < 1) throw new ArgumentError(`generate needs a positive blockSize, got ${o.blockSize}`);
  if (context.length === 0) throw new ArgumentError('generate needs at least one context token');
  const random = o.random ?? seededRandom(o.seed ?? 0);
  const seq = Array.from(context);
  const out = new Int32Array(maxNewTokens);
  const wasTraining = model.training;
  model.eval();
  try {
    for (let i = 0; i < maxNewTokens; i++) {
      const ctx = seq.slice(-o.blockSize);
      const next = tidy(() => noGrad(() => {
        const logits = model.forward(tensor(Int32Array.from(ctx), [1, ctx.length], 'int32'));
        const v = logits.shape[logits.rank - 1];
        const last = logits.slice([0, ctx.length - 1, 0], [1, ctx.length, v]);
        return sampleLogits(last, { ...o, random });
      }));
      seq.push(next);
      out[i] = next;
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}
