/**
 * Gaussian differential privacy through the central limit theorem (Dong, Roth & Su 2019; Bu, Dong,
 * Long & Su 2020): Opacus's `GaussianAccountant` and `analysis/gdp.py`.
 *
 * T steps of DP-SGD with Poisson sampling rate q and noise σ are asymptotically μ-GDP with
 * μ = q·√(T(e^{1/σ²} − 1)); μ-GDP gives (ε, δ(ε))-DP for every ε with
 * δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2), solved here for ε. An approximation (a limit in T), not
 * a bound: it can under-report ε for few steps or large q, so prefer 'prv' for guarantees.
 */
import { checkBool, checkInt, checkNumber, checkObject, checkOptions } from '../../args.js';
import { ArgumentError } from '../../errors.js';
import { Accountant, checkBudget, checkDelta, checkMechanism, MAX_STEPS, settleDown, type HistoryEntry, type Mechanism } from './accountant.js';
import { logNormCdf, normCdf } from './math.js';

interface MuArgs {
  steps: number;
  noiseMultiplier: number;
  sampleRate: number;
}

function checkMuArgs(o: unknown, where: string): MuArgs {
  checkObject(o, where, '{ steps, noiseMultiplier, sampleRate }');
  const p = checkMechanism(where, o);
  return { ...p, steps: checkInt((o as MuArgs).steps, `${where}: steps`, 0, 0x7fffffff) };
}

/** μ of T steps with Poisson sampling (Bu et al. 2020, Theorem 4); ∞ when σ = 0. */
export function computeMuPoisson(o: MuArgs): number {
  const { steps, noiseMultiplier: s, sampleRate: q } = checkMuArgs(o, 'computeMuPoisson');
  if (q === 0 || steps === 0) return 0;
  return s === 0 ? Infinity : Math.sqrt(Math.expm1(1 / (s * s))) * Math.sqrt(steps) * q;
}

/** μ of T steps with uniform (shuffled, fixed-size) batches (Bu et al. 2020, Theorem 3); ∞ when σ = 0. */
export function computeMuUniform(o: MuArgs): number {
  const { steps, noiseMultiplier: s, sampleRate: q } = checkMuArgs(o, 'computeMuUniform');
  if (q === 0 || steps === 0) return 0;
  if (s === 0) return Infinity;
  const c = q * Math.sqrt(steps);
  return Math.SQRT2 * c * Math.sqrt(Math.exp(1 / (s * s)) * normCdf(1.5 / s) + 3 * normCdf(-0.5 / s) - 2);
}

/** δ(ε) of μ-GDP, the second term in log space so e^ε never overflows. */
export function deltaEpsMu(eps: number, mu: number): number {
  return normCdf(-eps / mu + mu / 2) - Math.exp(eps + logNormCdf(-eps / mu - mu / 2));
}

/** The ε at which μ-GDP gives `delta` (bisection to full precision; δ(ε) falls in ε). 0 if δ(0) <= delta. */
export function epsFromMu(mu: number, delta: number): number {
  checkNumber(mu, 'epsFromMu: mu');
  if (!(mu >= 0)) throw new ArgumentError(`epsFromMu: mu must be >= 0, got ${mu}`);
  checkDelta(delta, 'epsFromMu');
  if (mu === 0) return 0;
  if (!Number.isFinite(mu)) return Infinity;
  if (deltaEpsMu(0, mu) <= delta) return 0;
  let lo = 0;
  let hi = 1;
  while (deltaEpsMu(hi, mu) > delta) {
    lo = hi;
    hi *= 2;
    if (hi > 1e12) return Infinity;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (deltaEpsMu(mid, mu) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

/**
 * Opacus's `GaussianAccountant`: ε from the GDP central-limit approximation. σ and q must stay
 * constant over the run (the CLT is for identical steps): a step with other values is an ArgumentError.
 */
export class GaussianAccountant extends Accountant {
  readonly mechanism: Mechanism = 'gdp';

  protected override checkStep(p: { noiseMultiplier: number; sampleRate: number }, last: HistoryEntry | undefined): void {
    if (last && (last.noiseMultiplier !== p.noiseMultiplier || last.sampleRate !== p.sampleRate)) {
      throw new ArgumentError(`GaussianAccountant: noiseMultiplier and sampleRate must stay constant (had ${last.noiseMultiplier} and ${last.sampleRate}, got ${p.noiseMultiplier} and ${p.sampleRate}); use 'rdp' or 'prv' for varying ones`);
    }
  }

  /** μ of the run so far (Poisson sampling unless `poisson: false`). */
  getMu(o?: { poisson?: boolean }): number {
    o = checkOptions(o, 'GaussianAccountant.getMu options');
    const poisson = o.poisson === undefined ? true : checkBool(o.poisson, 'GaussianAccountant.getMu: poisson');
    const h = this.history.at(-1);
    if (!h) return 0;
    return (poisson ? computeMuPoisson : computeMuUniform)(h);
  }

  /** ε at `delta` (Opacus's `get_epsilon(delta, poisson=True)`); 0 before any step. */
  getEpsilon(delta: number, o?: { poisson?: boolean }): number {
    const d = checkDelta(delta, 'GaussianAccountant.getEpsilon');
    return epsFromMu(this.getMu(o), d);
  }

  /**
   * See `Accountant.maxSteps`. μ grows as √T, so the largest μ within the budget (ε rises with μ)
   * gives T in closed form. σ and q must be the run's (ArgumentError otherwise).
   */
  maxSteps(params: { noiseMultiplier: number; sampleRate: number }, budget: { epsilon: number; delta: number }, o?: { poisson?: boolean }): number {
    const where = 'GaussianAccountant.maxSteps';
    const p = checkMechanism(where, params);
    const b = checkBudget(budget, where);
    o = checkOptions(o, `${where} options`);
    const poisson = o.poisson === undefined ? true : checkBool(o.poisson, `${where}: poisson`);
    this.checkStep(p, this.history.at(-1));
    const fits = (k: number) => this.epsilonAfter(p, k, (a) => a.getEpsilon(b.delta, { poisson })) <= b.epsilon;
    if (!fits(0)) return 0;
    if (p.sampleRate === 0) return Infinity;
    if (p.noiseMultiplier === 0) return 0;
    let lo = 0;
    let hi = 1;
    while (epsFromMu(hi, b.delta) <= b.epsilon) {
      lo = hi;
      hi *= 2;
    }
    for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
      const mid = 0.5 * (lo + hi);
      if (epsFromMu(mid, b.delta) <= b.epsilon) lo = mid;
      else hi = mid;
    }
    const mu1 = (poisson ? computeMuPoisson : computeMuUniform)({ ...p, steps: 1 });
    const total = Math.floor((lo / mu1) ** 2);
    return settleDown(Math.max(0, Math.min(total - this.totalSteps, MAX_STEPS)), fits);
  }
}
