/**
 * Recurrent layers: `SimpleRNN`, `LSTM`, `GRU` (PyTorch-style: stacking with `numLayers`, built-in
 * `bidirectional`), the Keras-style `Bidirectional` wrapper, and the functional `recurrent()`.
 *
 * Input layout is `[batch, time, features]`. Each layer and direction is ONE engine call for the
 * whole sequence: the input projection of every step is a single GEMM, the time loop and the
 * cell math run in Rust, and backward through time runs inside the engine's autograd. Nothing is
 * allocated per step in JavaScript.
 *
 * Weights follow PyTorch exactly — names (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
 * `bias_hh_l0`, `..._reverse`), layouts (`[gates * hidden, in]`) and gate orders (LSTM i, f, g,
 * o; GRU r, z, n with two biases) — so PyTorch state dicts load unchanged. Keras/tfjs weights map
 * by transposing (`kernel [in, gates * hidden]`); Keras' LSTM gate order i, f, c, o is the same,
 * Keras' GRU order z, r, h must be permuted to r, z, n (see `nn.interop.kerasRecurrentWeights`).
 *
 * Masking: `mask` `[batch, time]` (1 = real step, 0 = padding) or `lengths`. A masked step leaves
 * the state unchanged and outputs 0 (PyTorch's packed-sequence semantics), so the final state is
 * the state after each sequence's last real step, and the reverse direction of a right-padded
 * batch starts at each sequence's own end.
 */
import { checkLengths, checkSize, MAX_LAYERS, checkOptions } from '../args.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { tensor, zeros } from '../creation.js';
import { tidy } from '../memory.js';
import { concat, stack } from '../ops.js';
import { call } from '../runtime.js';
import { assertTensor, fromHandle, Tensor } from '../tensor.js';
import * as F from './functional.js';
import { initialize, type Initializer } from './init.js';
import { Module, moduleFromConfig, registerModule, type ModuleConfig } from './module.js';

/** The cells the engine runs. `gru` is PyTorch's (Keras `reset_after=True`); `gruResetBefore` is Keras' original form, the only one tfjs has. */
export type RecurrentCell = 'rnnTanh' | 'rnnRelu' | 'lstm' | 'gru' | 'gruResetBefore';
const CELL_CODE: Record<RecurrentCell, number> = { rnnTanh: 0, rnnRelu: 1, lstm: 2, gru: 3, gruResetBefore: 4 };
const GATES: Record<RecurrentCell, number> = { rnnTanh: 1, rnnRelu: 1, lstm: 4, gru: 3, gruResetBefore: 3 };

/** One layer-direction's weights, in PyTorch's layouts. */
export interface RecurrentWeights {
  /** `[gates * hidden, input]` */
  wIh: Tensor;
  /** `[gates * hidden, hidden]` */
  wHh: Tensor;
  /** `[gates * hidden]`, or null/absent for none. */
  bIh?: Tensor | null;
  /** `[gates * hidden]`, or null/absent for none. */
  bHh?: Tensor | null;
}

/** Options of the functional `recurrent()` (one layer, one direction). */
export interface RecurrentCallOptions {
  /** Initial hidden state `[batch, hidden]` (zeros when absent). */
  h0?: Tensor | null;
  /** Initial cell state `[batch, hidden]` (LSTM only). */
  c0?: Tensor | null;
  /** `[batch, time]`, 1 = real step, 0 = skipped (float32 or int32). */
  mask?: Tensor | null;
  /** Process time from last to first (outputs stay at their time positions). */
  reverse?: boolean;
}

/** What `recurrent()` returns. */
export interface RecurrentOutput {
  /** `[batch, time, hidden]`, 0 at masked steps. */
  output: Tensor;
  /** Final hidden state `[batch, hidden]`. */
  h: Tensor;
  /** Final cell state `[batch, hidden]` (LSTM), else null. */
  c: Tensor | null;
}

function asFloatMask(m: Tensor): Tensor {
  return m.dtype === 'float32' ? m : m.cast('float32');
}

/**
 * One recurrent layer in one direction over a whole sequence `x` `[batch, time, input]`: a single
 * engine call (forward), backward through time inside the engine.
 */
export function recurrent(cell: RecurrentCell, x: Tensor, w: RecurrentWeights, o: RecurrentCallOptions = {}): RecurrentOutput {
  const code = CELL_CODE[cell];
  if (code === undefined) throw new ArgumentError(`unknown recurrent cell '${String(cell)}' (expected ${Object.keys(CELL_CODE).join(', ')})`);
  if (x.rank !== 3) throw new ShapeError(`${cell}: input must be [batch, time, features], got [${x.shape.join(', ')}]`);
  const h = (t?: Tensor | null) => (t ? t.handle : 0);
  const mask = o.mask ? asFloatMask(o.mask) : null;
  let packed: Tensor;
  try {
    packed = fromHandle(call((e) => e.op_rnn(code, x.handle, h(o.h0), h(o.c0), w.wIh.handle, w.wHh.handle, h(w.bIh), h(w.bHh), h(mask), o.reverse ?? false)));
  } finally {
    if (mask && mask !== o.mask) mask.dispose();
  }
  const [b, t] = x.shape;
  const hid = packed.shape[1];
  const bt = b * t;
  const ys = packed.slice([0, 0], [bt, hid]);
  const output = ys.reshape([b, t, hid]);
  ys.dispose();
  const hN = packed.slice([bt, 0], [bt + b, hid]);
  const cN = cell === 'lstm' ? packed.slice([bt + b, 0], [bt + 2 * b, hid]) : null;
  packed.dispose();
  return { output, h: hN, c: cN };
}

/**
 * Where an unrolled recurrent forward reports a projection: `kind` 0 is `x·W_ihᵀ + b_ih` over the
 * whole sequence (`input [B, T, in]`, `gates [B, T, G]`), 1 one step's `h_{t−1}·W_hhᵀ + b_hh`
 * (`[B, H]`, `[B, G]`); for the reset-before GRU, 1 covers only the r and z rows of `W_hh` and 2 is
 * the n rows' `(r ⊙ h_{t−1})·W_hnᵀ + b_hn` (`[B, H]`, `[B, H]`).
 */
export type GateTap = (kind: 0 | 1 | 2, input: Tensor, gates: Tensor) => void;

/**
 * `recurrent()` unrolled into engine ops, one step at a time (Opacus's DPLSTM idea): the same cell
 * maths as the fused kernel (within float rounding), with the input and recurrent projections as
 * separate tensors handed to `tap` before use, so per-example gradients (DP) can retain their
 * gradients and apply Linear's rule over the time axis. Slower than the fused kernel: used only
 * while a tap is set.
 */
function unrolled(cell: RecurrentCell, x: Tensor, w: RecurrentWeights, o: RecurrentCallOptions, tap: GateTap): RecurrentOutput {
  const [b, t, n] = x.shape;
  const g = w.wIh.shape[0];
  const hid = w.wHh.shape[1];
  const proj = (a: Tensor, wt: Tensor, bias: Tensor | null | undefined): Tensor => {
    const p = a.matmul(wt.transpose());
    return bias ? p.add(bias) : p;
  };
  return tidy(() => {
    const gi = proj(x.reshape([b * t, n]), w.wIh, w.bIh).reshape([b, t, g]);
    tap(0, x, gi);
    const mask = o.mask ? asFloatMask(o.mask) : null;
    let h = o.h0 ?? zeros([b, hid]);
    let c = cell === 'lstm' ? o.c0 ?? zeros([b, hid]) : null;
    const outs: Tensor[] = new Array<Tensor>(t);
    const chunk = (a: Tensor, k: number): Tensor => a.slice([0, k * hid], [b, (k + 1) * hid]);
    // The reset-before GRU's recurrent weights in two row blocks: r|z (input h) and n (input r ⊙ h).
    const rows = (t0: Tensor | null | undefined, from: number, to: number): Tensor | null => (t0 ? t0.slice([from], [to]) : null);
    const rb = cell === 'gruResetBefore'
      ? { wRz: w.wHh.slice([0, 0], [2 * hid, hid]), wN: w.wHh.slice([2 * hid, 0], [g, hid]), bRz: rows(w.bHh, 0, 2 * hid), bN: rows(w.bHh, 2 * hid, g) }
      : null;
    for (let s = 0; s < t; s++) {
      const step = o.reverse ? t - 1 - s : s;
      const xi = gi.slice([0, step, 0], [b, step + 1, g]).reshape([b, g]);
      const hh = rb ? proj(h, rb.wRz, rb.bRz) : proj(h, w.wHh, w.bHh);
      tap(1, h, hh);
      let hNew: Tensor;
      let cNew: Tensor | null = null;
      if (cell === 'rnnTanh' || cell === 'rnnRelu') {
        const a = xi.add(hh);
        hNew = cell === 'rnnTanh' ? a.tanh() : a.relu();
      } else if (cell === 'lstm') {
        const a = xi.add(hh);
        cNew = chunk(a, 1).sigmoid().mul(c!).add(chunk(a, 0).sigmoid().mul(chunk(a, 2).tanh()));
        hNew = chunk(a, 3).sigmoid().mul(cNew.tanh());
      } else {
        const r = chunk(xi, 0).add(chunk(hh, 0)).sigmoid();
        const z = chunk(xi, 1).add(chunk(hh, 1)).sigmoid();
        let nn: Tensor;
        if (rb) {
          const rh = r.mul(h);
          const hn = proj(rh, rb.wN, rb.bN);
          tap(2, rh, hn);
          nn = chunk(xi, 2).add(hn).tanh();
        } else {
          nn = chunk(xi, 2).add(r.mul(chunk(hh, 2))).tanh();
        }
        hNew = z.neg().add(1).mul(nn).add(z.mul(h)); // (1 − z) ⊙ n + z ⊙ h
      }
      if (mask) {
        // A masked step keeps the state and outputs 0, as the fused kernel.
        const m = mask.slice([0, step], [b, step + 1]);
        const keepOld = m.neg().add(1);
        outs[step] = hNew.mul(m);
        h = outs[step].add(h.mul(keepOld));
        if (cNew) c = cNew.mul(m).add(c!.mul(keepOld));
      } else {
        outs[step] = hNew;
        h = hNew;
        if (cNew) c = cNew;
      }
    }
    return { output: stack(outs, 1), h, c };
  });
}

/** `[batch, time]` float mask from per-sequence lengths (1 for the first `lengths[b]` steps). */
export function lengthsToMask(lengths: ArrayLike<number>, time: number): Tensor {
  checkLengths(lengths, 'lengthsToMask');
  checkSize(time, 'lengthsToMask time');
  const b = lengths.length;
  const m = new Float32Array(b * time);
  for (let i = 0; i < b; i++) {
    const l = lengths[i];
    if (!Number.isInteger(l) || l < 0 || l > time) throw new ArgumentError(`sequence length ${l} (sequence ${i}) must be an integer between 0 and ${time}`);
    m.fill(1, i * time, i * time + l);
  }
  return tensor(m, [b, time]);
}

/** Per-call options of the recurrent layers' `forward` and `run`: initial states and masking. */
export interface RecurrentRunOptions {
  /**
   * Initial states, PyTorch's layout: `h` (and `c` for the LSTM) `[numLayers * numDirections,
   * batch, hidden]`; a `[batch, hidden]` tensor is accepted when there is one layer-direction.
   * An array `[h, c]` is accepted too.
   */
  initialState?: Tensor | Tensor[] | { h?: Tensor | null; c?: Tensor | null } | null;
  /** `[batch, time]`: 1 = real step, 0 = padding. */
  mask?: Tensor | null;
  /** Lengths of right-padded sequences (alternative to `mask`). */
  lengths?: ArrayLike<number>;
}

/** What the recurrent layers' `run` returns (PyTorch's `output, (h_n, c_n)`). */
export interface RecurrentResult {
  /** Outputs of the last layer `[batch, time, numDirections * hidden]` (0 at masked steps). */
  output: Tensor;
  /** Final hidden states `[numLayers * numDirections, batch, hidden]` (PyTorch's `h_n`). */
  h: Tensor;
  /** Final cell states (LSTM), same layout, else null. */
  c: Tensor | null;
}

/** Construction options of SimpleRNN, LSTM and GRU. */
export interface RecurrentOptions {
  /** Stacked layers (each feeds its output sequence to the next). Default 1. */
  numLayers?: number;
  /** Run a second, reversed direction and concatenate the outputs (PyTorch's `bidirectional`). */
  bidirectional?: boolean;
  /** Learn the biases `bias_ih` and `bias_hh` (default true). */
  bias?: boolean;
  /** Dropout on the outputs of every layer but the last (training only). */
  dropout?: number;
  /** `forward()` returns the whole output sequence (default) or, when false, the final state(s) of the last layer `[batch, numDirections * hidden]`. */
  returnSequences?: boolean;
  /** Process time from last to first (outputs stay in time order). */
  reverse?: boolean;
  /** Initial weights; default PyTorch's uniform(-1/sqrt(hidden), 1/sqrt(hidden)) for every weight and bias. */
  weightInit?: Initializer;
  /** Seed for the initial weights and the dropout masks (default: the global stream). */
  seed?: number;
}

/** Shared machinery of SimpleRNN, LSTM and GRU. */
export abstract class Recurrent extends Module {
  /** Features per input step (the last input dimension). */
  readonly inputSize: number;
  /** Size of the hidden state. */
  readonly hiddenSize: number;
  /** Stacked layers. */
  readonly numLayers: number;
  /** 2 when bidirectional, else 1. */
  readonly numDirections: 1 | 2;
  /** The cell the engine runs. */
  readonly cell: RecurrentCell;
  /** The construction options. */
  protected readonly opts: RecurrentOptions;
  /** The seed the weights were initialized from (undefined: unseeded). */
  get initSeed(): number | undefined {
    return this.opts.seed;
  }
  /**
   * Null unless per-example gradients are being captured (eg.privacy): then the forward runs the
   * unrolled cell and reports each projection with `part` = 3 · (layer · numDirections + direction) + kind (see `GateTap`).
   */
  gateTap: ((part: number, input: Tensor, gates: Tensor) => void) | null = null;
  #dropoutCalls = 0;
  /** Seeded draws so far, kept in checkpoints so a resumed run draws the same masks. */
  override getExtraState(): { calls: number } {
    return { calls: this.#dropoutCalls };
  }
  override setExtraState(s: unknown): void {
    this.#dropoutCalls = this.readCallCount(s);
  }

  constructor(cell: RecurrentCell, inputSize: number, hiddenSize: number, opts: RecurrentOptions) {
    super();
    opts = checkOptions(opts, 'recurrent layer options');
    for (const [v, what] of [[inputSize, 'inputSize'], [hiddenSize, 'hiddenSize'], [opts.numLayers ?? 1, 'numLayers']] as const) {
      checkSize(v, `${this.className}: ${what}`, 1);
    }
    if ((opts.numLayers ?? 1) > MAX_LAYERS) throw new ArgumentError(`${this.className}: numLayers must be at most ${MAX_LAYERS}, got ${opts.numLayers}`);
    const p = opts.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new ArgumentError(`${this.className}: dropout must be in [0, 1), got ${p}`);
    this.cell = cell;
    this.inputSize = inputSize;
    this.hiddenSize = hiddenSize;
    this.numLayers = opts.numLayers ?? 1;
    this.numDirections = opts.bidirectional ? 2 : 1;
    this.opts = opts;
    const g = GATES[cell] * hiddenSize;
    const k = 1 / Math.sqrt(hiddenSize);
    const init: Initializer = opts.weightInit ?? { uniform: [-k, k] };
    let n = 0;
    const seed = () => (opts.seed === undefined ? undefined : opts.seed * 101 + n++);
    for (let l = 0; l < this.numLayers; l++) {
      const inSize = l === 0 ? inputSize : hiddenSize * this.numDirections;
      for (let d = 0; d < this.numDirections; d++) {
        const sfx = `l${l}${d === 1 ? '_reverse' : ''}`;
        this.registerParameter(`weight_ih_${sfx}`, initialize(init, [g, inSize], inSize, g, seed()));
        this.registerParameter(`weight_hh_${sfx}`, initialize(init, [g, hiddenSize], hiddenSize, g, seed()));
        if (opts.bias ?? true) {
          this.registerParameter(`bias_ih_${sfx}`, initialize(opts.weightInit ? 'zeros' : init, [g], inSize, g, seed()));
          this.registerParameter(`bias_hh_${sfx}`, initialize(opts.weightInit ? 'zeros' : init, [g], hiddenSize, g, seed()));
        }
      }
    }
  }

  /** Whether `forward` returns the whole output sequence (true, the default) or the final state. */
  get returnSequences(): boolean {
    return this.opts.returnSequences ?? true;
  }

  /** The weights of layer `l`, direction `d` (0 forward, 1 reverse). */
  weights(l: number, d = 0): RecurrentWeights {
    const sfx = `l${l}${d === 1 ? '_reverse' : ''}`;
    const b = this.opts.bias ?? true;
    return {
      wIh: this.param(`weight_ih_${sfx}`), wHh: this.param(`weight_hh_${sfx}`),
      bIh: b ? this.param(`bias_ih_${sfx}`) : null, bHh: b ? this.param(`bias_hh_${sfx}`) : null,
    };
  }

  #initial(o: RecurrentRunOptions, batch: number): { h: (Tensor | null)[]; c: (Tensor | null)[]; owned: Tensor[] } {
    const n = this.numLayers * this.numDirections;
    const none = { h: new Array<Tensor | null>(n).fill(null), c: new Array<Tensor | null>(n).fill(null), owned: [] as Tensor[] };
    const s = o.initialState;
    if (!s) return none;
    let h: Tensor | null | undefined;
    let c: Tensor | null | undefined;
    if (s instanceof Tensor) h = s;
    else if (Array.isArray(s)) [h, c] = s;
    else ({ h, c } = s);
    if (c && this.cell !== 'lstm') throw new ArgumentError(`${this.className} has no cell state: pass only h as its initial state`);
    const owned: Tensor[] = [];
    const split = (t: Tensor | null | undefined, what: string): (Tensor | null)[] => {
      if (!t) return new Array(n).fill(null);
      const want = `[${n}, ${batch}, ${this.hiddenSize}]`;
      if (t.rank === 2 && n === 1 && t.shape[0] === batch && t.shape[1] === this.hiddenSize) return [t];
      if (t.rank !== 3 || t.shape[0] !== n || t.shape[1] !== batch || t.shape[2] !== this.hiddenSize) {
        throw new ShapeError(`${this.className}: initial ${what} must be [numLayers * numDirections, batch, hidden] = ${want}, got [${t.shape.join(', ')}]`);
      }
      return Array.from({ length: n }, (_, i) => {
        const v = t.slice([i, 0, 0], [i + 1, batch, this.hiddenSize]);
        const r = v.reshape([batch, this.hiddenSize]);
        v.dispose();
        owned.push(r);
        return r;
      });
    };
    return { h: split(h, 'hidden state h'), c: split(c, 'cell state c'), owned };
  }

  /** Runs every layer and direction; returns the last layer's outputs and every final state. */
  #runAll(x: Tensor, o: RecurrentRunOptions): { output: Tensor; hs: Tensor[]; cs: Tensor[] } {
    assertTensor(x, `${this.className} needs a Tensor input`);
    if (x.rank !== 3 || x.shape[2] !== this.inputSize) {
      throw new ShapeError(`${this.className} expects input [batch, time, ${this.inputSize}], got [${x.shape.join(', ')}]`);
    }
    const [batch, time] = x.shape;
    if (o.mask && o.lengths) throw new ArgumentError(`${this.className}: pass either mask or lengths, not both`);
    const mask = o.lengths ? lengthsToMask(o.lengths, time) : o.mask ?? null;
    const init = this.#initial(o, batch);
    const hs: Tensor[] = [];
    const cs: Tensor[] = [];
    let input = x;
    try {
      for (let l = 0; l < this.numLayers; l++) {
        const outs: Tensor[] = [];
        for (let d = 0; d < this.numDirections; d++) {
          const i = l * this.numDirections + d;
          const ro: RecurrentCallOptions = { h0: init.h[i], c0: init.c[i], mask, reverse: (d === 1) !== (this.opts.reverse ?? false) };
          const tap = this.gateTap;
          const r = tap ? unrolled(this.cell, input, this.weights(l, d), ro, (kind, a, g) => tap(3 * i + kind, a, g)) : recurrent(this.cell, input, this.weights(l, d), ro);
          outs.push(r.output);
          hs.push(r.h);
          if (r.c) cs.push(r.c);
        }
        let out = outs.length === 1 ? outs[0] : concat(outs, -1);
        if (outs.length > 1) outs.forEach((t) => t.dispose());
        const p = this.opts.dropout ?? 0;
        if (l < this.numLayers - 1 && p > 0 && this.training) {
          const seed = this.opts.seed === undefined ? undefined : this.opts.seed * 1_000_003 + this.#dropoutCalls++;
          const dropped = F.dropout(out, p, true, seed);
          out.dispose();
          out = dropped;
        }
        if (input !== x) input.dispose();
        input = out;
      }
    } finally {
      if (mask && mask !== o.mask) mask.dispose();
      init.owned.forEach((t) => t.dispose());
    }
    return { output: input, hs, cs };
  }

  /** Outputs and final states (PyTorch's `output, (h_n, c_n)`). */
  run(x: Tensor, o: RecurrentRunOptions = {}): RecurrentResult {
    const { output, hs, cs } = this.#runAll(x, o);
    const h = stack(hs, 0);
    const c = cs.length ? stack(cs, 0) : null;
    hs.forEach((t) => t.dispose());
    cs.forEach((t) => t.dispose());
    return { output, h, c };
  }

  /**
   * The output sequence `[batch, time, numDirections * hidden]`, or with `returnSequences: false`
   * the final hidden state of the last layer `[batch, numDirections * hidden]` (both directions
   * concatenated).
   */
  forward(x: Tensor, o: RecurrentRunOptions = {}): Tensor {
    const { output, hs, cs } = this.#runAll(x, o);
    cs.forEach((t) => t.dispose());
    if (this.returnSequences) {
      hs.forEach((t) => t.dispose());
      return output;
    }
    output.dispose();
    const last = hs.slice(hs.length - this.numDirections);
    const r = last.length === 1 ? last[0] : concat(last, -1);
    hs.forEach((t) => t !== r && t.dispose());
    return r;
  }

  override getConfig(): Record<string, unknown> {
    const { seed: _s, ...rest } = this.opts;
    return { inputSize: this.inputSize, hiddenSize: this.hiddenSize, ...rest };
  }
}

/** Elman RNN: `h = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)` (or relu). */
export class SimpleRNN extends Recurrent {
  constructor(inputSize: number, hiddenSize: number, opts: RecurrentOptions & { nonlinearity?: 'tanh' | 'relu' } = {}) {
    checkOptions(opts, 'SimpleRNN options');
    const nl = opts.nonlinearity ?? 'tanh';
    if (nl !== 'tanh' && nl !== 'relu') throw new ArgumentError(`SimpleRNN nonlinearity must be 'tanh' or 'relu', got '${String(nl)}'`);
    super(nl === 'relu' ? 'rnnRelu' : 'rnnTanh', inputSize, hiddenSize, opts);
  }
}

/** Long short-term memory (PyTorch's `nn.LSTM`, batch first; gates i, f, g, o). */
export class LSTM extends Recurrent {
  constructor(inputSize: number, hiddenSize: number, opts: RecurrentOptions = {}) {
    checkOptions(opts, 'LSTM options');
    super('lstm', inputSize, hiddenSize, opts);
  }
}

/**
 * Gated recurrent unit (PyTorch's `nn.GRU`, batch first; gates r, z, n). `resetAfter: false`
 * selects Keras' original form (reset gate applied before the recurrent product), the one
 * TensorFlow.js implements.
 */
export class GRU extends Recurrent {
  constructor(inputSize: number, hiddenSize: number, opts: RecurrentOptions & { resetAfter?: boolean } = {}) {
    checkOptions(opts, 'GRU options');
    super(opts.resetAfter === false ? 'gruResetBefore' : 'gru', inputSize, hiddenSize, opts);
  }
}

/** How `Bidirectional` combines the two directions: concatenate features, sum, multiply or average. */
export type MergeMode = 'concat' | 'sum' | 'mul' | 'ave';

/**
 * Keras-style wrapper: runs `layer` forward and a copy of it (same configuration, its own
 * weights) in reverse, and merges their outputs (or final states, when the layer does not return
 * sequences). Submodules are `forward_layer` and `backward_layer`.
 */
export class Bidirectional extends Module {
  /** How the two directions' outputs are combined (default `'concat'`). */
  readonly mergeMode: MergeMode;
  constructor(layer: Recurrent, opts: { mergeMode?: MergeMode; backwardLayer?: Recurrent } = {}) {
    checkOptions(opts, 'Bidirectional options');
    super();
    if (!(layer instanceof Recurrent)) throw new ArgumentError('Bidirectional wraps a SimpleRNN, LSTM or GRU');
    if (layer.numDirections !== 1) throw new ArgumentError('Bidirectional wraps a one-directional layer (this one is already bidirectional)');
    this.mergeMode = opts.mergeMode ?? 'concat';
    if (!['concat', 'sum', 'mul', 'ave'].includes(this.mergeMode)) throw new ArgumentError(`unknown mergeMode '${this.mergeMode}'`);
    this.registerModule('forward_layer', layer);
    let back = opts.backwardLayer;
    if (!back) {
      const c = layer.toConfig();
      const cfg = c.config as RecurrentOptions;
      // The config leaves the seed out (a saved model has its weights); a seeded layer's backward copy is
      // seeded too (from another stream than the forward layer's), so the whole wrapper is reproducible.
      const seed = layer.initSeed === undefined ? undefined : layer.initSeed * 7919 + 1;
      back = moduleFromConfig({ className: c.className, config: { ...cfg, reverse: !(cfg.reverse ?? false), ...(seed === undefined ? {} : { seed }) } }) as Recurrent;
    }
    this.registerModule('backward_layer', back);
  }
  /** The wrapped layer, run forward in time (submodule `forward_layer`). */
  get forwardLayer(): Recurrent {
    return this.getModule('forward_layer') as Recurrent;
  }
  /** The layer run in reverse (submodule `backward_layer`). */
  get backwardLayer(): Recurrent {
    return this.getModule('backward_layer') as Recurrent;
  }
  #merge(a: Tensor, b: Tensor): Tensor {
    switch (this.mergeMode) {
      case 'concat': return concat([a, b], -1);
      case 'sum': return a.add(b);
      case 'mul': return a.mul(b);
      default: {
        const s = a.add(b);
        const r = s.mul(0.5);
        s.dispose();
        return r;
      }
    }
  }
  /** Splits `[2L, B, H]` initial states between the directions; the views it makes go into `owned`. */
  #split(o: RecurrentRunOptions, owned: Tensor[]): [RecurrentRunOptions, RecurrentRunOptions] {
    const s = o.initialState;
    if (!s) return [o, o];
    const halves = (t: Tensor | null | undefined): [Tensor | null, Tensor | null] => {
      if (!t) return [null, null];
      const n = t.shape[0];
      if (t.rank !== 3 || n % 2 !== 0) throw new ShapeError(`Bidirectional: initial states must be [2 * numLayers, batch, hidden], got [${t.shape.join(', ')}]`);
      const e = t.shape.slice(1);
      const parts: [Tensor, Tensor] = [t.slice([0, 0, 0], [n / 2, ...e]), t.slice([n / 2, 0, 0], [n, ...e])];
      owned.push(...parts);
      return parts;
    };
    let h: Tensor | null | undefined;
    let c: Tensor | null | undefined;
    if (s instanceof Tensor) h = s;
    else if (Array.isArray(s)) [h, c] = s;
    else ({ h, c } = s);
    const [hf, hb] = halves(h);
    const [cf, cb] = halves(c);
    return [{ ...o, initialState: { h: hf, c: cf } }, { ...o, initialState: { h: hb, c: cb } }];
  }
  /** Merged outputs and both directions' final states (forward layers first). */
  run(x: Tensor, o: RecurrentRunOptions = {}): RecurrentResult {
    const owned: Tensor[] = [];
    try {
      const [of, ob] = this.#split(o, owned);
      const f = this.forwardLayer.run(x, of);
      const b = this.backwardLayer.run(x, ob);
      const output = this.#merge(f.output, b.output);
      const h = concat([f.h, b.h], 0);
      const c = f.c && b.c ? concat([f.c, b.c], 0) : null;
      for (const t of [f.output, b.output, f.h, b.h, f.c, b.c]) t?.dispose();
      return { output, h, c };
    } finally {
      owned.forEach((t) => t.dispose());
    }
  }
  forward(x: Tensor, o: RecurrentRunOptions = {}): Tensor {
    const owned: Tensor[] = [];
    try {
      const [of, ob] = this.#split(o, owned);
      const a = this.forwardLayer.forward(x, of);
      const b = this.backwardLayer.forward(x, ob);
      const r = this.#merge(a, b);
      a.dispose();
      b.dispose();
      return r;
    } finally {
      owned.forEach((t) => t.dispose());
    }
  }
  override getConfig(): Record<string, unknown> {
    return { layer: this.forwardLayer.toConfig(), backwardLayer: this.backwardLayer.toConfig(), mergeMode: this.mergeMode };
  }
}

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('SimpleRNN', (c: Cfg) => new SimpleRNN(c.inputSize, c.hiddenSize, c));
registerModule('LSTM', (c: Cfg) => new LSTM(c.inputSize, c.hiddenSize, c));
registerModule('GRU', (c: Cfg) => new GRU(c.inputSize, c.hiddenSize, c));
registerModule('Bidirectional', (c: Cfg) => new Bidirectional(moduleFromConfig(c.layer as ModuleConfig) as Recurrent, {
  mergeMode: c.mergeMode, backwardLayer: c.backwardLayer ? moduleFromConfig(c.backwardLayer as ModuleConfig) as Recurrent : undefined,
}));
