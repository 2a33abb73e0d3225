/**
 * Server side of `eg.he`: runs a compiled model on ciphertexts with only public material (the
 * relinearisation and Galois keys of a public bundle) — it has no secret key and cannot decrypt.
 *
 * Levels and scales: the input is first mod-switched down to the model's depth D, so the last
 * rescale lands on the decryption prime and no work is spent on unused primes. Stage t runs at
 * level D − t. An affine map multiplies by diagonals encoded at scale q (the prime its rescale then
 * divides by), so the ciphertext's scale is unchanged by it, and all products it adds share one
 * scale and level. A polynomial adds y² (scale s²) and (b/s)·y with b encoded at scale s (scale s²
 * too) at the same level, then rescales. Biases and constants are encoded at exactly the scale the
 * ciphertext has at that point, so every addition lines up.
 */
import type { CipherText } from 'node-seal/implementation/cipher-text';
import type { PlainText } from 'node-seal/implementation/plain-text';
import { checkOptions, describe } from '../args.js';
import { ArgumentError, DisposedError } from '../errors.js';
import type { AffineStage, CompiledModel, PolyStage } from './compile.js';
import { Ciphertext, HEContext, loadCiphertext, openBundle, registerCore, coreOf, type PublicKeys } from './context.js';
import { Core } from './core.js';
import { broadcast, checkLayout, compiledModels, type HELayout } from './layout.js';
import type { HEParams } from './params.js';
import { free, own, sealCall } from './seal.js';

/** Plaintext diagonals kept encoded between calls up to this many bytes (else encoded per call). */
const CACHE_BYTES = 384 * 1024 * 1024;

/** Checks that a context's parameters can run `compiled` (ArgumentError before any encryption). */
export function checkContext(compiled: CompiledModel, target: HEContext | HEParams): void {
  if (!compiledModels.has(compiled)) throw new ArgumentError(`eg.he.checkContext needs a CompiledModel, got ${describe(compiled)}`);
  const p = target instanceof HEContext ? target.params : target;
  if (p === null || typeof p !== 'object' || typeof p.maxDepth !== 'number') throw new ArgumentError(`eg.he.checkContext needs an HEContext or its params, got ${describe(target)}`);
  if (compiled.depth > p.maxDepth) {
    throw new ArgumentError(`eg.he: the model needs multiplicative depth ${compiled.depth} (${compiled.stages.filter((s) => s.kind === 'affine').length} affine maps + ${compiled.stages.filter((s) => s.kind === 'poly').length} activations) but the context allows ${p.maxDepth} (coeffModulusBits ${JSON.stringify(p.coeffModulusBits)}); use eg.he.contextForModel(compiled), which sizes the primes for it`);
  }
  checkLayout(compiled.layout, p.slots, 'eg.he');
}

interface AffinePlan {
  stage: AffineStage;
  level: number;
  /** giant step index → [baby j, diagonal values rotated by −g·b₁][] */
  groups: [number, [number, Float64Array][]][];
  /** Encoded diagonals, parallel to groups (null when not cached). */
  plains: PlainText[][] | null;
  scale: number;
  bias: PlainText | null;
}
interface PolyPlan {
  stage: PolyStage;
  level: number;
  b: PlainText | null;
  c: PlainText | null;
}

/** An encrypted-inference evaluator for one compiled model and one client's public keys. */
export class HEEvaluator {
  #keys: PublicKeys | null;
  readonly #compiled: CompiledModel;
  readonly #plans: (AffinePlan | PolyPlan)[];
  /** @internal */
  constructor(compiled: CompiledModel, keys: PublicKeys) {
    if (!compiledModels.has(compiled) || !(keys?.core instanceof Core)) throw new ArgumentError('HEEvaluator is made by compiled.evaluator(bundle) or eg.he.createEvaluator(), not with new');
    this.#compiled = compiled;
    this.#keys = keys;
    this.#plans = [];
    try {
      this.#plans = prepare(compiled, keys.core);
    } catch (e) {
      free(keys.relin, keys.galois);
      keys.core.release();
      throw e;
    }
    registerCore(this, () => this.#live('HEEvaluator'));
  }
  #live(what: string): Core {
    if (!this.#keys) throw new DisposedError(`${what}: this HEEvaluator was disposed`);
    return this.#keys.core;
  }
  /** Always false: an evaluator is built from public material only. */
  get hasSecretKey(): boolean {
    return false;
  }
  /** The context's parameters. */
  get params(): HEParams {
    return { ...this.#live('HEEvaluator.params').params };
  }
  /** The compiled model it runs. */
  get compiled(): CompiledModel {
    return this.#compiled;
  }

  /** Runs the model on an encrypted input; returns encrypted logits (`[count, outputSize]` once decrypted). */
  forward(c: Ciphertext): Ciphertext {
    const core = this.#live('HEEvaluator.forward');
    if (!(c instanceof Ciphertext)) throw new ArgumentError(`HEEvaluator.forward needs a Ciphertext, got ${describe(c)}`);
    const m = c.meta;
    const want = this.#compiled.layout;
    if (m.packing !== want.packing || m.period !== want.period || m.features !== this.#compiled.inputSize) {
      throw new ArgumentError(`HEEvaluator.forward: the ciphertext holds ${m.features} values in ${m.packing} packing with period ${m.period}; the model needs ${this.#compiled.inputSize} in ${want.packing} packing with period ${want.period} (encrypt with compiled.encryptOptions)`);
    }
    const other = coreOf(c, 'HEEvaluator.forward');
    if (other !== core && JSON.stringify(other.params) !== JSON.stringify(core.params)) throw new ArgumentError('HEEvaluator.forward: the ciphertext was made under other parameters than the public bundle');
    if (c.level < this.#compiled.depth) throw new ArgumentError(`HEEvaluator.forward: the ciphertext has ${c.level} levels left, the model needs ${this.#compiled.depth}`);
    const out: CipherText[] = [];
    try {
      for (const chunk of c.chunks) out.push(this.#run(core, chunk));
    } catch (e) {
      free(...out);
      throw e;
    }
    try {
      return new Ciphertext(core, out, { ...m, features: this.#compiled.outputSize });
    } catch (e) {
      free(...out);
      throw e;
    }
  }

  /** `forward` on wire bytes: ciphertext bytes in, result bytes out (what an HTTP handler calls). */
  forwardBytes(bytes: Uint8Array, opts?: { compression?: 'zstd' | 'none' }): Uint8Array {
    checkOptions(opts, 'HEEvaluator.forwardBytes options');
    this.#live('HEEvaluator.forwardBytes');
    const input = loadCiphertext(this, bytes);
    try {
      const result = this.forward(input);
      try {
        return result.toBytes(opts);
      } finally {
        result.dispose();
      }
    } finally {
      input.dispose();
    }
  }

  #run(core: Core, input: CipherText): CipherText {
    const { seal, evaluator: ev } = core;
    const keys = this.#keys!;
    let x = own(seal.CipherText());
    try {
      sealCall('eg.he: mod switch', () => ev.cipherModSwitchTo(input, core.levels[this.#compiled.depth].parmsId, x), ArgumentError);
      for (const p of this.#plans) {
        const next = 'groups' in p ? affine(core, keys, p, x, this.#compiled.layout) : poly(core, keys, p, x);
        free(x);
        x = next;
      }
      return x;
    } catch (e) {
      free(x);
      if (e instanceof ArgumentError || e instanceof DisposedError) throw e;
      throw new ArgumentError(`eg.he: encrypted evaluation failed: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  /** Frees the keys and the encoded model. */
  dispose(): void {
    if (!this.#keys) return;
    for (const p of this.#plans) {
      if ('groups' in p) {
        free(p.bias);
        if (p.plains) for (const g of p.plains) free(...g);
      } else free(p.b, p.c);
    }
    free(this.#keys.relin, this.#keys.galois);
    this.#keys.core.release();
    this.#keys = null;
  }
}

/** Rotates a slot vector right by r (slot t gets v[t − r]). */
function rotateRight(v: Float64Array, r: number): Float64Array {
  const n = v.length;
  const s = ((r % n) + n) % n;
  if (s === 0) return v;
  const out = new Float64Array(n);
  out.set(v.subarray(0, n - s), s);
  out.set(v.subarray(n - s), 0);
  return out;
}

/** Encodes everything the plan needs that does not depend on the input. */
function prepare(compiled: CompiledModel, core: Core): (AffinePlan | PolyPlan)[] {
  checkContext(compiled, core.params);
  const slots = core.slots;
  const layout = compiled.layout;
  const d = layout.period;
  const n = core.params.polyModulusDegree;
  // Bytes of all diagonals if cached: one plaintext of (level + 1) primes each.
  let bytes = 0;
  compiled.stages.forEach((s, t) => {
    if (s.kind === 'affine') bytes += s.diagonals.length * n * 8 * (compiled.depth - t + 1);
  });
  const cache = bytes <= CACHE_BYTES;
  const plans: (AffinePlan | PolyPlan)[] = [];
  let scale = 2 ** core.params.scaleBits;
  try {
    compiled.stages.forEach((s, t) => {
      const level = compiled.depth - t;
      const q = core.levels[level].prime;
      if (s.kind === 'affine') {
        const b1 = s.babyStep;
        const groups = new Map<number, [number, Float64Array][]>();
        for (const k of s.diagonals) {
          const g = k - (k % b1);
          const diag = new Float64Array(d);
          for (let i = 0; i < s.outSize; i++) {
            const j = (i + k) % d;
            if (j < s.inSize) diag[i] = s.weight[i * s.inSize + j];
          }
          const full = broadcastDiag(diag, layout, slots);
          if (!groups.has(g)) groups.set(g, []);
          groups.get(g)!.push([k % b1, rotateRight(full, g)]);
        }
        const list = [...groups.entries()].sort((a, b) => a[0] - b[0]);
        const plan: AffinePlan = { stage: s, level, groups: list, plains: null, scale: q, bias: null };
        plans.push(plan);
        if (cache) plan.plains = list.map(([, js]) => js.map(([, vals]) => core.encode(vals, q, level)));
        // After the product (scale s·q) and the rescale by q, the scale is s·q/q (SEAL's arithmetic).
        scale = (scale * q) / q;
        if (s.bias.some((b) => b !== 0)) plan.bias = core.encode(broadcast(s.bias, layout, slots), scale, level - 1);
      } else {
        const plan: PolyPlan = { stage: s, level, b: null, c: null };
        plans.push(plan);
        const sq = scale * scale;
        if (s.b !== 0) plan.b = core.encode(broadcast(new Float64Array(s.size).fill(s.b), layout, slots), scale, level);
        if (s.c !== 0) plan.c = core.encode(broadcast(new Float64Array(s.size).fill(s.c), layout, slots), sq, level);
        scale = sq / q;
      }
    });
  } catch (e) {
    for (const p of plans) {
      if ('groups' in p) {
        free(p.bias);
        if (p.plains) for (const g of p.plains) free(...g);
      } else free(p.b, p.c);
    }
    throw e;
  }
  return plans;
}

/** A diagonal (length d) placed as the data is: repeated ('single') or in the first half of each block ('batch'). */
function broadcastDiag(diag: Float64Array, l: HELayout, slots: number): Float64Array {
  if (l.packing === 'single') return broadcast(diag, l, slots);
  const out = new Float64Array(slots);
  for (let base = 0; base + 2 * l.period <= slots; base += 2 * l.period) out.set(diag, base);
  return out;
}

function affine(core: Core, keys: PublicKeys, p: AffinePlan, x: CipherText, layout: HELayout): CipherText {
  const { seal, evaluator: ev } = core;
  const babies = new Map<number, CipherText>([[0, x]]);
  const made: CipherText[] = [];
  let total: CipherText | null = null;
  const prod = own(seal.CipherText());
  try {
    for (const [, js] of p.groups) {
      for (const [j] of js) {
        if (babies.has(j)) continue;
        const r = own(seal.CipherText());
        made.push(r);
        ev.rotateVector(x, j, keys.galois, r);
        babies.set(j, r);
      }
    }
    for (let gi = 0; gi < p.groups.length; gi++) {
      const [g, js] = p.groups[gi];
      const acc = own(seal.CipherText());
      try {
        for (let ji = 0; ji < js.length; ji++) {
          const [j, vals] = js[ji];
          const plain = p.plains ? p.plains[gi][ji] : core.encode(vals, p.scale, p.level);
          try {
            if (ji === 0) ev.multiplyPlain(babies.get(j)!, plain, acc);
            else {
              ev.multiplyPlain(babies.get(j)!, plain, prod);
              ev.add(acc, prod, acc);
            }
          } finally {
            if (!p.plains) free(plain);
          }
        }
        if (g !== 0) ev.rotateVector(acc, g, keys.galois, acc);
      } catch (e) {
        free(acc);
        throw e;
      }
      if (!total) total = acc;
      else {
        ev.add(total, acc, total);
        free(acc);
      }
    }
    if (!total) throw new ArgumentError('eg.he: an affine map with no non-zero weights cannot be evaluated on a ciphertext (its output is a constant: fold it into the bias)');
  } catch (e) {
    free(total);
    throw e;
  } finally {
    free(prod, ...made);
  }
  const out: CipherText = total;
  try {
    ev.rescaleToNext(out, out);
    if (p.stage.duplicate) {
      const copy = own(seal.CipherText());
      try {
        ev.rotateVector(out, -layout.period, keys.galois, copy);
        ev.add(out, copy, out);
      } finally {
        free(copy);
      }
    }
    if (p.bias) ev.addPlain(out, p.bias, out);
    return out;
  } catch (e) {
    free(out);
    throw e;
  }
}

function poly(core: Core, keys: PublicKeys, p: PolyPlan, x: CipherText): CipherText {
  const { seal, evaluator: ev } = core;
  const sq = own(seal.CipherText());
  try {
    ev.square(x, sq);
    ev.relinearize(sq, keys.relin, sq);
    if (p.stage.sign < 0) ev.negate(sq, sq);
    if (p.b) {
      const t = own(seal.CipherText());
      try {
        ev.multiplyPlain(x, p.b, t);
        ev.add(sq, t, sq);
      } finally {
        free(t);
      }
    }
    if (p.c) ev.addPlain(sq, p.c, sq);
    ev.rescaleToNext(sq, sq);
    return sq;
  } catch (e) {
    free(sq);
    throw e;
  }
}

/** Loads a client's public bundle and prepares `compiled` for it (see `CompiledModel.evaluator`). */
export async function createEvaluator(compiled: CompiledModel, bundle: Uint8Array): Promise<HEEvaluator> {
  if (!compiledModels.has(compiled)) throw new ArgumentError(`eg.he.createEvaluator needs a CompiledModel, got ${describe(compiled)}`);
  if (!(bundle instanceof Uint8Array)) throw new ArgumentError(`eg.he: the evaluator needs a public bundle (Uint8Array from client.publicBundle()), got ${describe(bundle)}`);
  const keys = await openBundle(bundle);
  // Check depth and Galois coverage before encoding anything.
  try {
    checkContext(compiled, keys.core.params);
    if (keys.steps) {
      const have = new Set(keys.steps);
      const missing = compiled.galoisSteps.filter((s) => !have.has(s));
      if (missing.length) throw new ArgumentError(`eg.he: the public bundle lacks Galois keys for rotation steps [${missing.join(', ')}]; generate keys with ctx.generateKeys({ galois: compiled.galoisSteps })`);
    }
  } catch (e) {
    free(keys.relin, keys.galois);
    keys.core.release();
    throw e;
  }
  return new HEEvaluator(compiled, keys);
}

