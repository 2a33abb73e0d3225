/**
 * One SEAL CKKS context with what every side needs from it: the encoder, an evaluator, and per
 * level (SEAL's chain index, 0 = only the decryption prime left) its parms id and the prime a
 * rescale at that level divides by. Shared by reference count between a context, its clients,
 * ciphertexts and evaluators, so disposing one never frees what another still uses.
 */
import type { CipherText } from 'node-seal/implementation/cipher-text';
import type { CKKSEncoder } from 'node-seal/implementation/ckks-encoder';
import type { Context } from 'node-seal/implementation/context';
import type { Evaluator } from 'node-seal/implementation/evaluator';
import type { ParmsIdType } from 'node-seal/implementation/parms-id-type';
import type { PlainText } from 'node-seal/implementation/plain-text';
import { ArgumentError, DisposedError } from '../errors.js';
import type { HEParams } from './params.js';
import { adjustLive, free, loadSeal, own, sealCall, withTemp, type SEALLibrary } from './seal.js';

/** A level of the modulus chain. */
export interface Level {
  /** SEAL's parms id of this level (owned). */
  parmsId: ParmsIdType;
  /** The prime a rescale from this level divides by (the last one still in the chain). */
  prime: number;
}

/** Contexts by parameters: SEAL builds a context in about 1.5 s (its NTT tables), so one per parameter set is shared and up to `MAX_IDLE` unused ones are kept. */
const registry = new Map<string, Core>();
const MAX_IDLE = 4;

/** Frees the SEAL contexts kept for reuse after their last user was disposed. */
export function releasePool(): void {
  for (const [key, core] of registry) {
    if (core.alive) continue;
    registry.delete(key);
    core.destroy();
  }
}

export class Core {
  #refs = 1;
  private constructor(
    readonly seal: SEALLibrary,
    readonly params: HEParams,
    readonly context: Context,
    readonly encoder: CKKSEncoder,
    readonly evaluator: Evaluator,
    readonly levels: Level[],
  ) {}

  /** A context for checked parameters (loads SEAL on first use). */
  static async create(params: HEParams): Promise<Core> {
    const seal = await loadSeal();
    const key = JSON.stringify(params);
    const known = registry.get(key);
    if (known) {
      if (!known.alive) adjustLive(known.#owned());
      known.#refs++;
      return known;
    }
    const core = Core.createWith(seal, params);
    registry.set(key, core);
    return core;
  }

  /** SEAL objects this core owns (levels' parms ids, context, encoder, evaluator). */
  #owned(): number {
    return this.levels.length + 3;
  }

  private static createWith(seal: SEALLibrary, p: HEParams): Core {
    const level = p.securityLevel === 128 ? seal.SecurityLevel.tc128 : p.securityLevel === 192 ? seal.SecurityLevel.tc192 : seal.SecurityLevel.tc256;
    const parms = own(seal.EncryptionParameters(seal.SchemeType.ckks));
    let context: Context | null = null;
    try {
      sealCall('eg.he: SEAL refused the parameters', () => {
        parms.setPolyModulusDegree(p.polyModulusDegree);
        withTemp(seal.CoeffModulus.Create(p.polyModulusDegree, Int32Array.from(p.coeffModulusBits)), (m) => parms.setCoeffModulus(m));
        context = own(seal.Context(parms, true, level));
      }, ArgumentError);
      const ctx = context as unknown as Context;
      if (!ctx.parametersSet()) throw new ArgumentError(`eg.he: SEAL refused the parameters ${JSON.stringify(p.coeffModulusBits)} at N = ${p.polyModulusDegree}`);
      const levels: Level[] = new Array(p.maxDepth + 1);
      let data = own(ctx.firstContextData);
      for (;;) {
        const index = data.chainIndex;
        const primes = withTemp(data.parms, (pr) => pr.coeffModulus);
        levels[index] = { parmsId: own(data.parmsId), prime: Number(primes[primes.length - 1]) };
        if (index === 0) break;
        const next = own(data.nextContextData);
        free(data);
        data = next;
      }
      free(data);
      const encoder = own(seal.CKKSEncoder(ctx));
      const evaluator = own(seal.Evaluator(ctx));
      return new Core(seal, p, ctx, encoder, evaluator, levels);
    } catch (e) {
      free(context);
      throw e;
    } finally {
      free(parms);
    }
  }

  get alive(): boolean {
    return this.#refs > 0;
  }
  /** Throws DisposedError once the last holder let go. */
  check(what: string): this {
    if (this.#refs <= 0) throw new DisposedError(`${what}: its eg.he context was disposed`);
    return this;
  }
  retain(): this {
    this.check('eg.he');
    this.#refs++;
    return this;
  }
  release(): void {
    if (this.#refs <= 0) return;
    if (--this.#refs > 0) return;
    adjustLive(-this.#owned()); // no wrapper holds it now
    const idle = [...registry.values()].filter((c) => !c.alive).length;
    if (registry.get(JSON.stringify(this.params)) === this && idle <= MAX_IDLE) return; // kept for reuse
    this.destroy();
  }
  /** @internal Frees the SEAL objects (an idle core whose objects are no longer counted as live). */
  destroy(): void {
    if (this.#refs > 0) return;
    adjustLive(this.#owned());
    if (registry.get(JSON.stringify(this.params)) === this) registry.delete(JSON.stringify(this.params));
    for (const l of this.levels) free(l.parmsId);
    free(this.evaluator, this.encoder, this.context);
  }

  get slots(): number {
    return this.params.slots;
  }
  get topLevel(): number {
    return this.params.maxDepth;
  }

  /** Encodes `values` (length = slots) at `scale`, at chain index `level` (owned plaintext). */
  encode(values: Float64Array, scale: number, level: number): PlainText {
    const plain = own(this.seal.PlainText());
    try {
      sealCall('eg.he: encoding', () => {
        this.encoder.encode(values, scale, plain);
        if (level !== this.topLevel) this.evaluator.plainModSwitchTo(plain, this.levels[level].parmsId, plain);
      }, ArgumentError);
      return plain;
    } catch (e) {
      free(plain);
      throw e;
    }
  }

  /** SEAL's chain index of a ciphertext (its remaining multiplicative levels). */
  levelOf(ct: CipherText): number {
    return withTemp(ct.parmsId, (pid) => withTemp(this.context.getContextData(pid), (d) => d.chainIndex));
  }

  /** The largest serialisations these parameters produce, for checks before SEAL loads bytes. */
  bounds(): { ciphertext: number; publicKey: number; keySwitchKey: number; secretKey: number } {
    const n = this.params.polyModulusDegree;
    const k = this.params.coeffModulusBits.length; // key level: all primes
    const slack = (b: number) => Math.ceil(b * 1.01) + 65536;
    return {
      ciphertext: slack(2 * n * (k - 1) * 8),
      publicKey: slack(2 * n * k * 8),
      keySwitchKey: slack((k - 1) * (2 * n * k * 8 + 1024)),
      secretKey: slack(n * k * 8),
    };
  }
}
