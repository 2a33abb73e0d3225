/**
 * `GroupNorm` (PyTorch's `nn.GroupNorm`, channels-last): normalises each example over groups of
 * channels and all its positions, so unlike BatchNorm no statistic mixes examples — the layer
 * differentially private training uses in BatchNorm's place (`eg.privacy.fix`).
 */
import { checkBool, checkNumber, checkOptions, checkSize } from '../args.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { full, zeros } from '../creation.js';
import { tidy } from '../memory.js';
import { assertTensor, Tensor } from '../tensor.js';
import { Module, registerModule } from './module.js';

/** Options of `GroupNorm` (PyTorch's names and defaults). */
export interface GroupNormOptions {
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** Learnable per-channel scale (`weight`, ones) and shift (`bias`, zeros); default true. */
  affine?: boolean;
}

/**
 * Group normalisation over channels-last input `[N, C]`, `[N, L, C]` or `[N, H, W, C]` (any rank ≥ 2,
 * channels last): the C channels are split into `numGroups` consecutive groups and each example's
 * group is normalised by the mean and (biased) variance over its channels and all positions, then
 * scaled and shifted per channel — PyTorch's `nn.GroupNorm(num_groups, num_channels, eps, affine)`
 * with the channel axis moved last. Works the same in training and evaluation (no running statistics).
 */
export class GroupNorm extends Module {
  /** Groups the channels are split into; divides `numChannels`. */
  readonly numGroups: number;
  /** Channels C (the last input dimension). */
  readonly numChannels: number;
  /** Added to the variance before the square root. */
  readonly eps: number;
  /** Whether the layer has a learnable `weight` and `bias`. */
  readonly affine: boolean;
  constructor(numGroups: number, numChannels: number, opts: GroupNormOptions = {}) {
    checkOptions(opts, 'GroupNorm options');
    super();
    this.numGroups = checkSize(numGroups, 'GroupNorm numGroups', 1);
    this.numChannels = checkSize(numChannels, 'GroupNorm numChannels', 1);
    if (numChannels % numGroups !== 0) throw new ShapeError(`GroupNorm: numGroups (${numGroups}) must divide numChannels (${numChannels})`);
    this.eps = opts.eps === undefined ? 1e-5 : checkNumber(opts.eps, 'GroupNorm eps', { finite: true });
    if (!(this.eps >= 0)) throw new ArgumentError(`GroupNorm eps must be >= 0, got ${this.eps}`);
    this.affine = opts.affine === undefined ? true : checkBool(opts.affine, 'GroupNorm affine');
    if (this.affine) {
      this.registerParameter('weight', full([numChannels], 1));
      this.registerParameter('bias', zeros([numChannels]));
    }
  }
  /** The per-channel scale (null without `affine`). */
  get weight(): Tensor | null {
    return this.hasParam('weight') ? this.param('weight') : null;
  }
  /** The per-channel shift (null without `affine`). */
  get bias(): Tensor | null {
    return this.hasParam('bias') ? this.param('bias') : null;
  }
  /**
   * The normalised input before the affine step, `(x - mean) / sqrt(var + eps)` per example and
   * group (same shape as `x`). Per-example gradients of `weight`/`bias` are sums over positions of
   * `dy · normalize(x)` and `dy`.
   */
  normalize(x: Tensor): Tensor {
    assertTensor(x, 'GroupNorm needs a Tensor input');
    const C = this.numChannels;
    if (x.rank < 2 || x.shape[x.rank - 1] !== C) {
      throw new ShapeError(`GroupNorm expects channels-last input [N, ..., ${C}], got [${x.shape.join(', ')}]`);
    }
    const n = x.shape[0];
    const positions = x.shape.slice(1, -1).reduce((a, b) => a * b, 1);
    const g = this.numGroups;
    return tidy(() => {
      // [N, positions, groups, channels per group]: the statistics reduce axes 1 and 3, per example and group.
      const xr = x.reshape([n, positions, g, C / g]);
      const d = xr.sub(xr.mean([1, 3], true));
      const std = d.square().mean([1, 3], true).add(this.eps).sqrt();
      return d.div(std).reshape(x.shape);
    });
  }
  forward(x: Tensor): Tensor {
    const w = this.weight;
    const b = this.bias;
    return tidy(() => {
      const xhat = this.normalize(x);
      return w && b ? xhat.mul(w).add(b) : xhat;
    });
  }
  override getConfig() {
    return { numGroups: this.numGroups, numChannels: this.numChannels, eps: this.eps, affine: this.affine };
  }
}

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('GroupNorm', (c: Cfg) => new GroupNorm(c.numGroups, c.numChannels, { eps: c.eps, affine: c.affine }));
