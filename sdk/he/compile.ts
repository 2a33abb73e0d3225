/**
 * `eg.he.compile`: a trained `nn.Sequential` of linear layers and polynomial activations turned
 * into the plan an encrypted evaluator runs.
 *
 * Every run of consecutive linear layers (Linear, Conv2d, AvgPool2d, GlobalAvgPool2d, Flatten,
 * eval-mode BatchNorm, Dropout) is one affine map y = W·x + b on the flattened (NHWC, row-major)
 * vector. W and b are read off the plaintext model by probing: the run is applied to the zero input
 * and to each unit vector, so a convolution's im2col, a pooling window, BatchNorm's folded scale and
 * shift all end up in W on the plaintext side, exactly as the engine computes them. Each affine map
 * costs one multiplicative level; each polynomial activation one more:
 *
 * - a·x² + b·x + c: the preceding affine map is scaled by s = √|a|, leaving ±y² + (b/s)·y + c —
 *   one ciphertext squaring plus a plaintext product at the same scale, one rescale;
 * - a = 0 (a linear "activation") is folded into the neighbouring affine maps, costing nothing.
 *
 * Matrix products use Halevi–Shoup's diagonal method with baby-step/giant-step: with vectors padded
 * to a power-of-two period d, W·x = Σ_k diag_k(W) ⊙ rot(x, k) over the non-zero generalized
 * diagonals k; writing k = g·b₁ + j, the b₁ baby rotations rot(x, j) are shared and each giant group
 * is rotated once: (babies − 1) + (giants − 1) rotations per product instead of d − 1, with b₁ the
 * power of two minimizing that count for the layer's diagonals. `'batch'` packing adds one rotation
 * per product that feeds another product (see layout.ts).
 */
import { checkInt, checkOptions, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { tensor } from '../creation.js';
import { ArgumentError } from '../errors.js';
import { tidy } from '../memory.js';
import { AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, Sequential } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { PolyActivation, Square } from '../nn/polynomial.js';
import { isTensor, type Tensor } from '../tensor.js';
import { createEvaluator, type HEEvaluator } from './evaluator.js';
import { compiledModels, type HELayout, type Packing } from './layout.js';

/** Most inputs or outputs of one affine map (2^14: the widest vector 32768-degree slots hold). */
export const MAX_WIDTH = 16384;

/** An affine map y = W·x + b (W row-major [outSize, inSize], float64). */
export interface AffineStage {
  /** Discriminant. */
  kind: 'affine';
  /** Input values per example. */
  inSize: number;
  /** Output values per example. */
  outSize: number;
  /** W, row-major [outSize, inSize] (√|a| of a following activation folded in). */
  weight: Float64Array;
  /** b, [outSize]. */
  bias: Float64Array;
  /** Model paths folded into it. */
  layers: string[];
  /** Non-zero generalized diagonals k (W[i][(i + k) mod d] ≠ 0 for some i), ascending. */
  diagonals: number[];
  /** Baby-step size b₁ (a power of two). */
  babyStep: number;
  /** Rotations per ciphertext: baby + giant (+1 in batch packing when another product follows). */
  rotations: number;
  /** Whether the result is copied into the second half of each example block (batch packing). */
  duplicate: boolean;
}

/** A polynomial sign·y² + b·y + c (after folding √|a| into the preceding affine map). */
export interface PolyStage {
  /** Discriminant. */
  kind: 'poly';
  /** Values per example. */
  size: number;
  /** Sign of the x² coefficient a (its magnitude is folded into the affine map before). */
  sign: 1 | -1;
  /** Coefficient of y after folding: b / √|a|. */
  b: number;
  /** Constant term. */
  c: number;
  /** Model paths of the activation. */
  layers: string[];
}

/** One step of a compiled model; each costs one multiplicative level. */
export type Stage = AffineStage | PolyStage;

/** Options of `eg.he.compile`. */
export interface CompileOptions {
  /** Shape of one example, without the batch dimension (e.g. [30], or [8, 8, 1] NHWC for a CNN). */
  inputShape: number[];
  /** `'single'` (one example per ciphertext, lowest latency) or `'batch'` (many per ciphertext, highest throughput). Default 'single'. */
  packing?: Packing;
}

/** Suggestion per refused layer class. */
function suggestion(className: string): string {
  if (/^(ReLU|GELU|Sigmoid|Tanh|SiLU|ELU|LeakyReLU|Softplus|Mish|Hardswish)$/.test(className)) {
    return 'replace it with nn.PolyActivation (a trainable a·x² + b·x + c, ReLU-like by default) or nn.Square and retrain';
  }
  if (/MaxPool/.test(className)) return 'replace it with nn.AvgPool2d (a linear map, folded into the neighbouring layers)';
  if (/Softmax/.test(className)) return 'drop softmax: argmax of logits is unchanged';
  return 'only Linear, Conv2d, AvgPool2d, GlobalAvgPool2d, Flatten, BatchNorm (eval mode), Dropout, Square and PolyActivation can be evaluated on ciphertexts';
}

type Leaf = { path: string; module: Module; kind: 'linear' | 'poly' };

function leaves(m: Module, path: string, out: Leaf[]): Leaf[] {
  const name = path || '(model)';
  if (m instanceof Sequential) {
    for (const [n, c] of m.namedChildren()) leaves(c, path ? `${path}.${n}` : n, out);
    return out;
  }
  const refuse = (why: string) => new ArgumentError(`eg.he.compile: layer '${name}' (${m.className}) cannot be evaluated on ciphertexts: ${why}`);
  if (m instanceof Square || m instanceof PolyActivation) return out.push({ path: name, module: m, kind: 'poly' }), out;
  if (m instanceof Linear || m instanceof Conv2d) {
    if ((m.getConfig() as { activation?: unknown }).activation) throw refuse(`its fused activation is not a polynomial; ${suggestion('ReLU')}`);
    return out.push({ path: name, module: m, kind: 'linear' }), out;
  }
  if (m instanceof BatchNorm) {
    if (!(m.getConfig() as { trackRunningStats: boolean }).trackRunningStats) throw refuse('without running statistics it normalises by batch statistics, which is not a fixed affine map');
    return out.push({ path: name, module: m, kind: 'linear' }), out;
  }
  if (m instanceof AvgPool2d || m instanceof GlobalAvgPool2d || m instanceof Flatten || m instanceof Dropout) {
    return out.push({ path: name, module: m, kind: 'linear' }), out;
  }
  if (m.children().length > 0) throw refuse('custom container modules cannot be compiled (their forward may do anything); express the model as nn.Sequential');
  throw refuse(`CKKS computes only additions and multiplications; ${suggestion(m.className)}`);
}

/** W and b of a run of linear layers, by probing the plaintext model with the zero and unit inputs. */
function probe(run: Leaf[], shape: number[]): { weight: Float64Array; bias: Float64Array; outShape: number[] } {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array((n + 1) * n);
  for (let j = 0; j < n; j++) x[(j + 1) * n + j] = 1;
  return noGrad(() => tidy(() => {
    let h: Tensor = tensor(x, [n + 1, ...shape]);
    for (const l of run) h = l.module.forward(h);
    const outShape = h.shape.slice(1);
    const m = outShape.reduce((a, b) => a * b, 1);
    if (m > MAX_WIDTH) throw new ArgumentError(`eg.he.compile: layers ${run[0].path}..${run[run.length - 1].path} output ${m} values per example, more than the ${MAX_WIDTH} a ciphertext can hold`);
    const y = h.dataSync() as Float32Array;
    const weight = new Float64Array(m * n);
    const bias = new Float64Array(m);
    for (let i = 0; i < m; i++) bias[i] = y[i];
    for (let j = 0; j < n; j++) for (let i = 0; i < m; i++) weight[i * n + j] = y[(j + 1) * m + i] - y[i];
    return { weight, bias, outShape };
  }));
}

type Raw = { kind: 'affine'; inSize: number; outSize: number; weight: Float64Array; bias: Float64Array; layers: string[] }
  | { kind: 'poly'; size: number; a: number; b: number; c: number; layers: string[] };

/** (W2, b2) ∘ (W1, b1). */
function composeAffine(second: Raw & { kind: 'affine' }, first: Raw & { kind: 'affine' }): Raw & { kind: 'affine' } {
  const m = second.outSize;
  const k = second.inSize;
  const n = first.inSize;
  const w = new Float64Array(m * n);
  const b = Float64Array.from(second.bias);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k; t++) {
      const s = second.weight[i * k + t];
      if (s === 0) continue;
      b[i] += s * first.bias[t];
      for (let j = 0; j < n; j++) w[i * n + j] += s * first.weight[t * n + j];
    }
  }
  return { kind: 'affine', inSize: n, outSize: m, weight: w, bias: b, layers: [...first.layers, ...second.layers] };
}

function diagonalAffine(size: number, scaleBy: number, shift: number, layers: string[]): Raw & { kind: 'affine' } {
  const weight = new Float64Array(size * size);
  for (let i = 0; i < size; i++) weight[i * size + i] = scaleBy;
  return { kind: 'affine', inSize: size, outSize: size, weight, bias: new Float64Array(size).fill(shift), layers };
}

/** Folds linear polynomials and adjacent affine maps, and √|a| into the affine map before each square. */
function fold(raw: Raw[]): (Raw & { kind: 'affine' } | PolyStage)[] {
  // 1. a = 0: b·y + c is affine.
  const lin = raw.map((s) => (s.kind === 'poly' && s.a === 0 ? diagonalAffine(s.size, s.b, s.c, s.layers) : s));
  // 2. Adjacent affine maps compose into one.
  const merged: Raw[] = [];
  for (const s of lin) {
    const prev = merged[merged.length - 1];
    if (s.kind === 'affine' && prev?.kind === 'affine') merged[merged.length - 1] = composeAffine(s, prev);
    else merged.push(s);
  }
  // 3. Squares: scale the affine map before by √|a| (inserting an identity map where none is).
  const out: (Raw & { kind: 'affine' } | PolyStage)[] = [];
  for (const s of merged) {
    if (s.kind === 'affine') {
      out.push(s);
      continue;
    }
    const root = Math.sqrt(Math.abs(s.a));
    const last = out[out.length - 1];
    const prev = last?.kind === 'affine' ? last : diagonalAffine(s.size, 1, 0, []);
    if (prev !== last) out.push(prev);
    const scaled = { ...prev, weight: prev.weight.map((w) => w * root), bias: prev.bias.map((b) => b * root) };
    out[out.length - 1] = scaled;
    out.push({ kind: 'poly', size: s.size, sign: s.a < 0 ? -1 : 1, b: s.b / root, c: s.c, layers: s.layers });
  }
  return out;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Non-zero diagonals of W padded to d×d, and the baby step minimising the rotations. */
function plan(s: Raw & { kind: 'affine' }, d: number): { diagonals: number[]; babyStep: number; rotations: number } {
  const mark = new Uint8Array(d);
  for (let i = 0; i < s.outSize; i++) {
    for (let j = 0; j < s.inSize; j++) if (s.weight[i * s.inSize + j] !== 0) mark[(j - i + d) % d] = 1;
  }
  const diagonals: number[] = [];
  for (let k = 0; k < d; k++) if (mark[k]) diagonals.push(k);
  let best = { babyStep: 1, rotations: Infinity };
  for (let b1 = 1; b1 <= d; b1 *= 2) {
    const babies = new Set(diagonals.map((k) => k % b1));
    const giants = new Set(diagonals.map((k) => Math.floor(k / b1)));
    const r = babies.size - (babies.has(0) ? 1 : 0) + giants.size - (giants.has(0) ? 1 : 0);
    if (r < best.rotations) best = { babyStep: b1, rotations: r };
  }
  return { diagonals, babyStep: best.babyStep, rotations: diagonals.length ? best.rotations : 0 };
}

/** Set while `compile` constructs its result: the constructor is not public API. */
let constructing = false;

/** A model compiled for encrypted inference (see `eg.he.compile`). */
export class CompiledModel {
  /** @internal */
  constructor(
    /** The evaluation plan: one entry per multiplicative level. */
    readonly stages: readonly Stage[],
    /** Values per input example (flattened `inputShape`). */
    readonly inputSize: number,
    /** Values per output example (logits). */
    readonly outputSize: number,
    /** Slot layout ciphertexts must have (`client.encrypt(x, compiled.encryptOptions)`). */
    readonly layout: HELayout,
    /** Example shape given at compile time. */
    readonly inputShape: readonly number[],
  ) {
    if (!constructing) throw new ArgumentError('CompiledModel is made by eg.he.compile(model, { inputShape }), not with new');
    compiledModels.add(this);
  }
  /**
   * The server-side evaluator for a client's public bundle (`client.publicBundle()` bytes): loads
   * only public keys (`hasSecretKey` is false) and encodes the model's weights. Refuses, before any
   * encryption, a bundle whose context is too shallow for the model or lacks its rotation keys.
   */
  evaluator(bundle: Uint8Array): Promise<HEEvaluator> {
    return createEvaluator(this, bundle);
  }
  /** Multiplicative depth: levels the evaluation consumes (one per affine map and per activation). */
  get depth(): number {
    return this.stages.length;
  }
  /** Slot packing (`'single'` or `'batch'`). */
  get packing(): Packing {
    return this.layout.packing;
  }
  /** What a client passes to `encrypt` for this model: `{ packing, period }`. */
  get encryptOptions(): HELayout {
    return { ...this.layout };
  }
  /** Rotation steps the server needs Galois keys for (pass as `generateKeys({ galois })`). */
  get galoisSteps(): number[] {
    const steps = new Set<number>();
    for (const s of this.stages) {
      if (s.kind !== 'affine') continue;
      for (const k of s.diagonals) {
        if (k % s.babyStep) steps.add(k % s.babyStep);
        const g = k - (k % s.babyStep);
        if (g) steps.add(g);
      }
      if (s.duplicate) steps.add(-this.layout.period);
    }
    return [...steps].sort((a, b) => a - b);
  }
  /** Rotations one forward pass performs per SEAL ciphertext (sum over the affine maps). */
  get rotationCount(): number {
    return this.stages.reduce((a, s) => a + (s.kind === 'affine' ? s.rotations : 0), 0);
  }
  /** Slots a context needs: the period ('single') or twice it ('batch'). */
  get minSlots(): number {
    return this.layout.packing === 'single' ? this.layout.period : 2 * this.layout.period;
  }
  /** Examples per ciphertext under a context with `slots` slots. */
  examplesPerCiphertext(slots: number): number {
    checkInt(slots, 'CompiledModel.examplesPerCiphertext: slots', 1, 16384);
    return this.layout.packing === 'single' ? 1 : Math.floor(slots / (2 * this.layout.period));
  }
  /** A human-readable table of the plan: per level, the layers, sizes, diagonals and rotations. */
  describe(): string {
    const rows = this.stages.map((s, i) => s.kind === 'affine'
      ? `  level ${i + 1}: affine ${s.inSize} -> ${s.outSize} [${s.layers.join(', ') || 'scale for the next square'}]: ${s.diagonals.length} diagonals, baby step ${s.babyStep}, ${s.rotations} rotations${s.duplicate ? ' (incl. 1 to re-duplicate)' : ''}`
      : `  level ${i + 1}: ${s.sign < 0 ? '-' : ''}y² ${s.b ? `+ ${s.b.toPrecision(4)}·y ` : ''}${s.c ? `+ ${s.c.toPrecision(4)} ` : ''}[${s.layers.join(', ')}] on ${s.size} values`);
    return [`eg.he compiled model: ${this.inputSize} -> ${this.outputSize}, depth ${this.depth}, ${this.layout.packing} packing (period ${this.layout.period}), ${this.rotationCount} rotations per ciphertext, Galois steps [${this.galoisSteps.join(', ')}]`, ...rows].join('\n');
  }
}

/**
 * Compiles a trained model for encrypted inference. Supported: nn.Linear, nn.Conv2d (any stride,
 * padding, dilation, groups), nn.AvgPool2d, nn.GlobalAvgPool2d, nn.Flatten, nn.BatchNorm* (eval
 * mode, folded), nn.Dropout (identity), nn.Square, nn.PolyActivation, nested in nn.Sequential.
 * Anything else is refused with an ArgumentError naming the layer and a polynomial replacement.
 * The model's weights are read now: later training does not change the compiled model.
 */
export function compile(model: Module, opts: CompileOptions): CompiledModel {
  if (!(model instanceof Module)) throw new ArgumentError(`eg.he.compile needs an nn.Module, got ${describe(model)}`);
  checkOptions(opts, 'eg.he.compile options');
  if (opts === undefined) throw new ArgumentError('eg.he.compile needs options { inputShape }');
  const shape = opts.inputShape;
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 8 || !shape.every((d) => Number.isInteger(d) && d >= 1 && d <= MAX_WIDTH)) {
    throw new ArgumentError(`eg.he.compile: inputShape must be the shape of one example (1 to 8 positive sizes, no batch dimension), got ${describe(shape)}`);
  }
  const inputSize = shape.reduce((a, b) => a * b, 1);
  if (inputSize > MAX_WIDTH) throw new ArgumentError(`eg.he.compile: inputShape [${shape.join(', ')}] has ${inputSize} values per example, more than the ${MAX_WIDTH} a ciphertext can hold`);
  const packing = opts.packing ?? 'single';
  if (packing !== 'single' && packing !== 'batch') throw new ArgumentError(`eg.he.compile: packing must be 'single' or 'batch', got ${describe(packing)}`);

  const list = leaves(model, '', []);
  if (!list.some((l) => l.kind === 'linear' || l.kind === 'poly')) throw new ArgumentError('eg.he.compile: the model has no layers');
  // Probe in evaluation mode (BatchNorm's running statistics, Dropout off), restoring modes after.
  const modes = [...model.namedModules()].map(([, m]) => [m, m.training] as const);
  model.eval();
  const raw: Raw[] = [];
  try {
    let cur = [...shape];
    for (let i = 0; i < list.length;) {
      const l = list[i];
      const size = cur.reduce((a, b) => a * b, 1);
      if (l.kind === 'poly') {
        const c = l.module instanceof PolyActivation ? l.module.coefficients() : { a: 1, b: 0, c: 0 };
        raw.push({ kind: 'poly', size, ...c, layers: [l.path] });
        i++;
        continue;
      }
      let j = i;
      while (j < list.length && list[j].kind === 'linear') j++;
      const run = list.slice(i, j);
      const { weight, bias, outShape } = probe(run, cur);
      raw.push({ kind: 'affine', inSize: size, outSize: bias.length, weight, bias, layers: run.map((r) => r.path) });
      cur = outShape;
      i = j;
    }
  } finally {
    for (const [m, t] of modes) m.training = t;
  }
  const folded = fold(raw);
  const widths = folded.flatMap((s) => (s.kind === 'affine' ? [s.inSize, s.outSize] : [s.size]));
  const period = nextPow2(Math.max(...widths));
  const lastAffine = folded.map((s) => s.kind).lastIndexOf('affine');
  const stages: Stage[] = folded.map((s, i) => {
    if (s.kind === 'poly') return s;
    const p = plan(s, period);
    const duplicate = packing === 'batch' && i < lastAffine;
    return { ...s, ...p, rotations: p.rotations + (duplicate ? 1 : 0), duplicate };
  });
  const last = folded[folded.length - 1];
  const outputSize = last.kind === 'affine' ? last.outSize : last.size;
  constructing = true;
  try {
    return new CompiledModel(stages, inputSize, outputSize, { packing, period }, [...shape]);
  } finally {
    constructing = false;
  }
}

/**
 * The compiled arithmetic in float64 plaintext: what the encrypted evaluation approximates
 * (for checking; equal to the model's own forward up to float32 rounding). Returns `[n, outputs]`.
 */
export function plaintextForward(compiled: CompiledModel, x: Tensor | number[][]): Tensor {
  if (!(compiled instanceof CompiledModel)) throw new ArgumentError(`eg.he.plaintextForward needs a CompiledModel, got ${describe(compiled)}`);
  let rows: Float64Array;
  let n: number;
  const f = compiled.inputSize;
  if (isTensor(x)) {
    n = x.rank <= 1 ? 1 : x.shape[0];
    if (x.size !== n * f) throw new ArgumentError(`eg.he.plaintextForward: expected examples of ${f} values, got shape [${x.shape.join(', ')}]`);
    rows = Float64Array.from(x.dataSync() as ArrayLike<number>);
  } else if (Array.isArray(x) && x.every((r) => Array.isArray(r) && r.length === f)) {
    n = x.length;
    rows = Float64Array.from(x.flat());
  } else throw new ArgumentError(`eg.he.plaintextForward needs a Tensor or number[][] of examples with ${f} values, got ${describe(x)}`);
  let cur = rows;
  let width = f;
  for (const s of compiled.stages) {
    if (s.kind === 'affine') {
      const next = new Float64Array(n * s.outSize);
      for (let e = 0; e < n; e++) {
        for (let i = 0; i < s.outSize; i++) {
          let acc = s.bias[i];
          for (let j = 0; j < s.inSize; j++) acc += s.weight[i * s.inSize + j] * cur[e * width + j];
          next[e * s.outSize + i] = acc;
        }
      }
      cur = next;
      width = s.outSize;
    } else {
      cur = cur.map((y) => s.sign * y * y + s.b * y + s.c);
    }
  }
  return tensor(Float32Array.from(cur), [n, width]);
}
