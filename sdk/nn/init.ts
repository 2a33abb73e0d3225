/**
 * Weight initializers, by name so model configs can store them. All draw from the seeded engine
 * RNG: an explicit `seed` gives the same weights in every runtime; without one, the global stream
 * (`manualSeed`) is used.
 */
import { ArgumentError } from '../errors.js';
import { describe } from '../args.js';
import { full, rand, randn, truncatedNormal, zeros } from '../creation.js';
import type { Tensor } from '../tensor.js';

/** Named initializers: Glorot/Xavier, He/Kaiming and LeCun, uniform or normal, from the layer's fans; or constant zeros/ones. */
export type InitializerName =
  | 'glorotUniform' | 'glorotNormal' | 'heUniform' | 'heNormal' | 'lecunUniform' | 'lecunNormal'
  | 'zeros' | 'ones';
/** A named initializer, or a constant, `uniform: [low, high]`, `normal: [mean, std]` or `truncatedNormal: [mean, std]` (cut at 2 std). */
export type Initializer =
  | InitializerName
  | { constant: number }
  | { uniform: [number, number] }
  | { normal: [number, number] }
  | { truncatedNormal: [number, number] };

/** Creates a tensor of `shape` initialised by `init` with the given fans. */
export function initialize(init: Initializer, shape: number[], fanIn: number, fanOut: number, seed?: number): Tensor {
  const o = seed === undefined ? undefined : { seed };
  if (typeof init === 'string') {
    switch (init) {
      case 'glorotUniform': {
        const lim = Math.sqrt(6 / (fanIn + fanOut));
        return rand(shape, -lim, lim, o);
      }
      case 'glorotNormal':
        return randn(shape, 0, Math.sqrt(2 / (fanIn + fanOut)), o);
      case 'heUniform': {
        const lim = Math.sqrt(6 / fanIn);
        return rand(shape, -lim, lim, o);
      }
      case 'heNormal':
        return randn(shape, 0, Math.sqrt(2 / fanIn), o);
      case 'lecunUniform': {
        const lim = Math.sqrt(3 / fanIn);
        return rand(shape, -lim, lim, o);
      }
      case 'lecunNormal':
        return randn(shape, 0, Math.sqrt(1 / fanIn), o);
      case 'zeros':
        return zeros(shape);
      case 'ones':
        return full(shape, 1);
    }
  } else if (init && typeof init === 'object') {
    if ('constant' in init) return full(shape, init.constant);
    if ('uniform' in init) return rand(shape, init.uniform[0], init.uniform[1], o);
    if ('normal' in init) return randn(shape, init.normal[0], init.normal[1], o);
    if ('truncatedNormal' in init) return truncatedNormal(shape, init.truncatedNormal[0], init.truncatedNormal[1], o);
  }
  throw new ArgumentError(`unknown initializer ${describe(init)}`);
}
