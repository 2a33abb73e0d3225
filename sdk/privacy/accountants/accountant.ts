/**
 * What every privacy accountant shares (Opacus's `IAccountant`): a history of (σ, q, steps) runs of
 * the Poisson-subsampled Gaussian mechanism, `step`, `getEpsilon(delta)` and a JSON-safe state.
 */
import { checkInt, checkNumber, checkObject } from '../../args.js';
import { ArgumentError } from '../../errors.js';
import { v, validate } from '../../io/validate.js';

/** The accountants by Opacus's mechanism names. */
export type Mechanism = 'rdp' | 'prv' | 'gdp';

/** One run of `steps` identical steps of the sampled Gaussian mechanism (Opacus's history tuple). */
export interface HistoryEntry {
  /** σ: noise std divided by the clipping norm (the L2 sensitivity). */
  readonly noiseMultiplier: number;
  /** q: the probability that an example joins a batch (Poisson sampling). */
  readonly sampleRate: number;
  /** Number of consecutive steps with these parameters. */
  readonly steps: number;
}

/** `stateDict()`: the mechanism name and the history, plain JSON. */
export interface AccountantState {
  /** Which accountant the state belongs to (`'rdp'`, `'prv'` or `'gdp'`). */
  mechanism: Mechanism;
  /** The recorded steps, in order. */
  history: {
    /** σ of these steps. */
    noiseMultiplier: number;
    /** q of these steps. */
    sampleRate: number;
    /** Number of steps. */
    steps: number;
  }[];
}

/** Class names for messages (not `constructor.name`, which bundlers may rename). */
const LABEL: Record<Mechanism, string> = { rdp: 'RDPAccountant', prv: 'PRVAccountant', gdp: 'GaussianAccountant' };
/** Most steps one run holds (int32, as states store them); also the cap of `maxSteps`. */
export const MAX_STEPS = 0x7fffffff;

const STATE = v.object({
  mechanism: v.oneOf(['rdp', 'prv', 'gdp'] as const),
  history: v.array(v.object({
    noiseMultiplier: v.number({ min: 0 }),
    sampleRate: v.number({ min: 0, max: 1 }),
    steps: v.int({ min: 0, max: MAX_STEPS }),
  }), { max: 1 << 16 }),
});

/** σ >= 0 (finite) and q in [0, 1], or a typed error naming the argument. */
export function checkMechanism(where: string, o: unknown): { noiseMultiplier: number; sampleRate: number } {
  const p = checkObject<{ noiseMultiplier?: unknown; sampleRate?: unknown }>(o, `${where}`, '{ noiseMultiplier, sampleRate }');
  const sigma = checkNumber(p.noiseMultiplier, `${where}: noiseMultiplier`, { finite: true });
  if (sigma < 0) throw new ArgumentError(`${where}: noiseMultiplier must be >= 0, got ${sigma}`);
  const q = checkNumber(p.sampleRate, `${where}: sampleRate`, { finite: true });
  if (q < 0 || q > 1) throw new ArgumentError(`${where}: sampleRate must be in [0, 1], got ${q}`);
  return { noiseMultiplier: sigma, sampleRate: q };
}

/** δ in (0, 1). */
export function checkDelta(delta: unknown, where: string): number {
  const d = checkNumber(delta, `${where}: delta`, { finite: true });
  if (!(d > 0 && d < 1)) throw new ArgumentError(`${where}: delta must be in (0, 1), got ${d}`);
  return d;
}

/** A privacy budget `{ epsilon, delta }`: ε > 0 finite, δ in (0, 1). */
export function checkBudget(o: unknown, where: string): { epsilon: number; delta: number } {
  const b = checkObject<{ epsilon?: unknown; delta?: unknown }>(o, `${where}: budget`, '{ epsilon, delta }');
  const epsilon = checkNumber(b.epsilon, `${where}: budget epsilon`, { finite: true });
  if (!(epsilon > 0)) throw new ArgumentError(`${where}: budget epsilon must be > 0, got ${epsilon}`);
  return { epsilon, delta: checkDelta(b.delta, `${where}: budget`) };
}

/**
 * The largest k <= `k` with `fits(k)`, given fits(0): `k` comes from a closed form or a cheaper
 * grid and may be off by rounding, so step down a few times, then bisect.
 */
export function settleDown(k: number, fits: (k: number) => boolean): number {
  for (let i = 0; i < 8 && k > 0; i++, k--) if (fits(k)) return k;
  let lo = 0;
  let hi = k + 1;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Base class of `RDPAccountant`, `PRVAccountant` and `GaussianAccountant`. */
export abstract class Accountant {
  /** Opacus's `mechanism()`: 'rdp', 'prv' or 'gdp'. */
  abstract readonly mechanism: Mechanism;
  #history: HistoryEntry[] = [];

  /** The runs of (σ, q, steps) accounted so far, oldest first; consecutive equal (σ, q) are merged. */
  get history(): readonly HistoryEntry[] {
    return this.#history;
  }

  /** Total mechanism steps accounted. */
  get totalSteps(): number {
    return this.#history.reduce((n, h) => n + h.steps, 0);
  }

  /**
   * Accounts `steps` (default 1) steps of the Poisson-subsampled Gaussian mechanism with noise
   * multiplier σ and sampling rate q (one per optimizer step of DP-SGD).
   */
  step(params: { noiseMultiplier: number; sampleRate: number }, steps = 1): void {
    const p = checkMechanism(`${LABEL[this.mechanism]}.step`, params);
    const n = checkInt(steps, `${LABEL[this.mechanism]}.step: steps`, 0, MAX_STEPS);
    if (n === 0) return;
    const last = this.#history.at(-1);
    this.checkStep(p, last);
    // Runs stay within the int32 counts a state may hold: a longer one continues in a new entry.
    if (last && last.noiseMultiplier === p.noiseMultiplier && last.sampleRate === p.sampleRate && last.steps + n <= MAX_STEPS) {
      this.#history[this.#history.length - 1] = { ...last, steps: last.steps + n };
    } else {
      this.#history.push({ ...p, steps: n });
    }
  }

  /** Hook for accountants that restrict the history (GDP needs constant σ and q); `last` is the latest run. */
  protected checkStep(_p: { noiseMultiplier: number; sampleRate: number }, _last: HistoryEntry | undefined): void {}

  /** ε spent so far at `delta` (an upper bound: the guarantee, not an estimate). */
  abstract getEpsilon(delta: number): number;

  /**
   * How many more steps of (σ, q) keep ε(budget.delta) <= budget.epsilon after the history so far
   * (0 when it is already spent or σ = 0; Infinity when q = 0; at most 2^31 − 1): what a training
   * loop needs to stop before the step that would cross a budget. Never over: every count returned is
   * checked with `getEpsilon`.
   */
  abstract maxSteps(params: { noiseMultiplier: number; sampleRate: number }, budget: { epsilon: number; delta: number }): number;

  /** ε after `k` more steps of `p`, from a copy (this accountant is left as it is). */
  protected epsilonAfter(p: { noiseMultiplier: number; sampleRate: number }, k: number, eps: (a: this) => number): number {
    const a = new (this.constructor as new () => this)();
    a.loadStateDict(this.stateDict());
    a.step(p, k);
    return eps(a);
  }

  /** The mechanism and history as plain JSON (for checkpoints). */
  stateDict(): AccountantState {
    return { mechanism: this.mechanism, history: this.#history.map((h) => ({ ...h })) };
  }

  /**
   * Restores `stateDict()`'s output. Checked before anything changes: ArgumentError on a malformed
   * state or one written by another mechanism's accountant.
   */
  loadStateDict(state: AccountantState): void {
    const where = `${LABEL[this.mechanism]}.loadStateDict`;
    const s = validate(STATE, state, `${where}: state`, ArgumentError);
    if (s.mechanism !== this.mechanism) throw new ArgumentError(`${where}: the state is of a '${s.mechanism}' accountant, this one is '${this.mechanism}'`);
    const history = s.history.filter((h) => h.steps > 0);
    history.forEach((h, i) => {
      if (i > 0) this.checkStep(h, history[i - 1]);
    });
    this.#history = history.map((h) => ({ noiseMultiplier: h.noiseMultiplier, sampleRate: h.sampleRate, steps: h.steps }));
  }

  /** A short description: `RDPAccountant(2 runs, 1500 steps)`. */
  toString(): string {
    return `${LABEL[this.mechanism]}(${this.#history.length} runs, ${this.totalSteps} steps)`;
  }
}
