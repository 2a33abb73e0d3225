/**
 * `eg.he`: encrypted inference with CKKS homomorphic encryption (Microsoft SEAL via node-seal).
 * A client encrypts features, a server evaluates a compiled model on the ciphertexts with public
 * keys only, the client decrypts the logits. The same code runs in Node and in browsers.
 *
 * ```ts
 * const compiled = eg.he.compile(model, { inputShape: [30] });       // server: Linear/Conv/AvgPool/BN + Square/PolyActivation
 * const ctx = await eg.he.contextForModel(compiled);                  // client: parameters sized for the depth
 * const client = ctx.generateKeys({ galois: compiled.galoisSteps });
 * const evaluator = await compiled.evaluator(client.publicBundle());  // server: public material only
 * const ct = client.encrypt(x, compiled.encryptOptions);
 * const logits = client.decrypt(evaluator.forward(ct));
 * ```
 */
export { compile, plaintextForward, CompiledModel } from './compile.js';
export type { CompileOptions, Stage, AffineStage, PolyStage } from './compile.js';
export { createContext, loadContext, loadClient, loadCiphertext, HEContext, HEClient, Ciphertext } from './context.js';
export type { GenerateKeysOptions, EncryptOptions, DecryptOptions, SerializeOptions, CiphertextMeta } from './context.js';
export { HEEvaluator, checkContext, createEvaluator } from './evaluator.js';
export type { HELayout, Packing } from './layout.js';
export { MAX_COEFF_BITS } from './params.js';
export type { ContextOptions, HEParams } from './params.js';
export { liveObjects } from './seal.js';
export { releasePool } from './core.js';

import { ArgumentError } from '../errors.js';
import { describe } from '../args.js';
import { CompiledModel } from './compile.js';
import { createContext, type HEContext } from './context.js';
import { checkContext, createEvaluator, type HEEvaluator } from './evaluator.js';
import { presetFor } from './params.js';

/** Options of `contextForModel`: fix the ring degree or security level instead of the smallest secure choice. */
export interface ModelContextOptions {
  /** Ring degree (default: the smallest that holds the model's depth and slots). */
  polyModulusDegree?: 8192 | 16384 | 32768;
  /** Bits of security (default 128). */
  securityLevel?: 128 | 192 | 256;
  /** Scale in bits (default: the largest of 40 down to 30 that fits with 20 bits of output headroom). */
  scale?: number;
}

/**
 * A context sized for a compiled model: one `scale`-bit prime per level of its depth, the smallest
 * ring degree whose security bound holds them and whose slots hold its layout. Decrypted outputs
 * (logits) must stay below 2^19 in magnitude (CKKS cannot detect an overflow of the last prime).
 */
export async function contextForModel(compiled: CompiledModel, opts: ModelContextOptions = {}): Promise<HEContext> {
  if (!(compiled instanceof CompiledModel)) throw new ArgumentError(`eg.he.contextForModel needs a CompiledModel (from eg.he.compile), got ${describe(compiled)}`);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new ArgumentError(`eg.he.contextForModel options must be an object, got ${describe(opts)}`);
  const ctx = await createContext(presetFor(compiled.depth, compiled.minSlots, opts));
  checkContext(compiled, ctx);
  return ctx;
}
