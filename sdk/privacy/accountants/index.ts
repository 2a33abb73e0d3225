/**
 * Privacy accountants for DP-SGD (Opacus's `opacus.accountants`): how much privacy (ε at a given δ)
 * a run of the Poisson-subsampled Gaussian mechanism has spent, and the noise multiplier σ that
 * meets a target. Pure double-precision math (no tensors), usable on its own.
 *
 *   const acc = new RDPAccountant();
 *   acc.step({ noiseMultiplier: 1.1, sampleRate: 256 / 60000 }, 14062);   // 60 epochs of MNIST
 *   acc.getEpsilon(1e-5);                                                  // 2.60 (3.01 classic)
 */
import { checkInt, checkNumber, checkObject, describe } from '../../args.js';
import { ArgumentError } from '../../errors.js';
import { checkDelta, type Mechanism } from './accountant.js';
import { GaussianAccountant } from './gdp.js';
import { PRVAccountant, type PrvOptions } from './prv.js';
import { RDPAccountant } from './rdp.js';

export { Accountant, type AccountantState, type HistoryEntry, type Mechanism } from './accountant.js';
export { computeRdp, DEFAULT_ALPHAS, getPrivacySpent, RDPAccountant, type RdpConversion, type RdpEpsilonOptions } from './rdp.js';
export { MAX_PRV_GRID, PRVAccountant, type PrvEpsilon, type PrvOptions } from './prv.js';
export { computeMuPoisson, computeMuUniform, epsFromMu, GaussianAccountant } from './gdp.js';

const MECHANISMS: readonly Mechanism[] = ['rdp', 'prv', 'gdp'];

/** Opacus's `create_accountant`: a fresh accountant by mechanism name. */
export function createAccountant(mechanism: Mechanism): RDPAccountant | PRVAccountant | GaussianAccountant {
  switch (mechanism) {
    case 'rdp':
      return new RDPAccountant();
    case 'prv':
      return new PRVAccountant();
    case 'gdp':
      return new GaussianAccountant();
    default:
      throw new ArgumentError(`createAccountant: mechanism must be one of ${MECHANISMS.map((m) => `'${m}'`).join(', ')}, got ${describe(mechanism)}`);
  }
}

/** Largest σ tried before a target is declared unreachable (Opacus's MAX_SIGMA). */
const MAX_SIGMA = 1e6;

/** Options of `getNoiseMultiplier`; give `steps` or `epochs` (then steps = ⌊epochs/sampleRate⌋, as Opacus). */
export interface NoiseMultiplierOptions {
  /** Privacy budget ε to reach (> 0). */
  targetEpsilon: number;
  /** δ of the budget, in (0, 1). */
  targetDelta: number;
  /** Poisson sampling probability q = batchSize / N, in (0, 1]. */
  sampleRate: number;
  /** Number of noisy steps (give this or `epochs`). */
  steps?: number;
  /** Number of epochs; steps = ⌊epochs / sampleRate⌋ (give this or `steps`). */
  epochs?: number;
  /** 'rdp' (default, as Opacus), 'prv' or 'gdp'. */
  accountant?: Mechanism;
  /** The returned σ gives ε in [targetEpsilon − epsilonTolerance, targetEpsilon] (default 0.01). */
  epsilonTolerance?: number;
  /** PRV's `epsError`/`deltaError` when `accountant` is 'prv'. */
  prv?: PrvOptions;
}

/**
 * Opacus's `get_noise_multiplier`: the σ for which `steps` steps at sampling rate q spend at most
 * `targetEpsilon` at `targetDelta` (and at least targetEpsilon − epsilonTolerance), by doubling then
 * bisection. ArgumentError when no σ up to 1e6 reaches the target, or no privacy is spent at all
 * (q = 0 or no steps), so there is nothing to solve for.
 */
export function getNoiseMultiplier(o: NoiseMultiplierOptions): number {
  const where = 'getNoiseMultiplier';
  checkObject(o, where, '{ targetEpsilon, targetDelta, sampleRate, steps | epochs }');
  const target = checkNumber(o.targetEpsilon, `${where}: targetEpsilon`, { finite: true });
  if (!(target > 0)) throw new ArgumentError(`${where}: targetEpsilon must be > 0, got ${target}`);
  const delta = checkDelta(o.targetDelta, `${where}: targetDelta`);
  const q = checkNumber(o.sampleRate, `${where}: sampleRate`, { finite: true });
  if (!(q > 0 && q <= 1)) throw new ArgumentError(`${where}: sampleRate must be in (0, 1] (at 0 no privacy is spent and any σ works), got ${q}`);
  if ((o.steps === undefined) === (o.epochs === undefined)) throw new ArgumentError(`${where}: give either steps or epochs, not ${o.steps === undefined ? 'neither' : 'both'}`);
  let steps: number;
  if (o.steps !== undefined) {
    steps = checkInt(o.steps, `${where}: steps`, 1);
  } else {
    const epochs = checkNumber(o.epochs, `${where}: epochs`, { finite: true });
    if (!(epochs > 0)) throw new ArgumentError(`${where}: epochs must be > 0, got ${epochs}`);
    steps = Math.floor(epochs / q);
    if (!(steps >= 1 && steps <= 0x7fffffff)) throw new ArgumentError(`${where}: ${epochs} epochs at sampleRate ${q} make ${steps} steps (need 1 to ${0x7fffffff})`);
  }
  const tol = o.epsilonTolerance === undefined ? 0.01 : checkNumber(o.epsilonTolerance, `${where}: epsilonTolerance`, { finite: true });
  if (!(tol > 0)) throw new ArgumentError(`${where}: epsilonTolerance must be > 0, got ${tol}`);
  const mechanism = o.accountant ?? 'rdp';
  createAccountant(mechanism); // checks the name before any work
  const epsAt = (m: Mechanism, sigma: number): number => {
    const acc = createAccountant(m);
    acc.step({ noiseMultiplier: sigma, sampleRate: q }, steps);
    return acc instanceof PRVAccountant ? acc.getEpsilon(delta, o.prv) : acc.getEpsilon(delta);
  };
  // PRV costs a grid per call: bracket it around the RDP answer (PRV is the tighter, so its σ is
  // usually a little smaller), which takes a few calls instead of a dozen.
  // RDP's conversion has a floor (~0.1 at δ = 1e-5) that PRV has not: below it, search PRV alone.
  let seed: number | null = null;
  if (mechanism === 'prv') {
    try {
      seed = solve('rdp', 0, 10, Infinity, epsAt, target, tol / 4, steps, q, delta);
    } catch (e) {
      if (!(e instanceof ArgumentError)) throw e;
    }
  }
  if (seed === null) return solve(mechanism, 0, 10, Infinity, epsAt, target, tol, steps, q, delta);
  let low = seed * 0.85;
  let epsLow = epsAt(mechanism, low);
  while (epsLow <= target && low > 1e-6) {
    low *= 0.85;
    epsLow = epsAt(mechanism, low);
  }
  if (epsLow <= target) low = 0;
  return solve(mechanism, low, seed, epsLow <= target ? Infinity : epsLow, epsAt, target, tol, steps, q, delta);
}

/**
 * Opacus's search: double σHigh (from `high`) until ε(σHigh) <= target, then narrow [σLow, σHigh]
 * until target − tol <= ε(σHigh) <= target, keeping ε(σLow) > target. Each step is a secant step
 * aimed at the middle of that window (ε is smooth and falling in σ), kept at least a tenth of the
 * interval inside it, or a bisection while ε(σLow) is infinite.
 */
function solve(mechanism: Mechanism, low: number, high: number, epsLow: number, epsAt: (m: Mechanism, s: number) => number,
  target: number, tol: number, steps: number, q: number, delta: number): number {
  let epsHigh = epsAt(mechanism, high);
  while (epsHigh > target) {
    low = high;
    epsLow = epsHigh;
    high *= 2;
    if (high > MAX_SIGMA) throw new ArgumentError(`getNoiseMultiplier: targetEpsilon ${target} at delta ${delta} is unreachable: even σ = ${MAX_SIGMA} spends more over ${steps} steps at sampleRate ${q}`);
    epsHigh = epsAt(mechanism, high);
  }
  for (let i = 0; i < 200 && target - epsHigh > tol; i++) {
    const w = high - low;
    let sigma = low + 0.5 * w;
    if (Number.isFinite(epsLow)) {
      const aim = target - tol / 2;
      const secant = low + ((epsLow - aim) / (epsLow - epsHigh)) * w;
      sigma = Math.min(high - 0.1 * w, Math.max(low + 0.1 * w, secant));
    }
    const eps = epsAt(mechanism, sigma);
    if (eps <= target) {
      high = sigma;
      epsHigh = eps;
    } else {
      low = sigma;
      epsLow = eps;
    }
  }
  return high;
}

