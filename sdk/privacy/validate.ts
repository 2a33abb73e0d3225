/**
 * Which models DP-SGD can train (Opacus's `ModuleValidator.validate` / `fix`): every example's
 * gradient must be computable on its own, so a layer whose output mixes examples (BatchNorm's batch
 * statistics) is refused, and so is a layer with trainable parameters the engine has no per-example
 * gradient rule for. `fix` swaps BatchNorm for GroupNorm, which normalises within each example.
 */
import { assertModule, Module } from '../nn/module.js';
import { BatchNorm, BatchNorm1d } from '../nn/layers.js';
import { GroupNorm } from '../nn/groupnorm.js';
import { hasPerSampleRule } from './grad-sample.js';

/** One reason a model cannot be trained with DP-SGD as it is. */
export interface ValidationProblem {
  /** Dotted path of the layer in the model (`''` for the model itself), e.g. `features.2`. */
  path: string;
  /** The layer's class name, e.g. `BatchNorm2d`. */
  layer: string;
  /** Why it cannot be trained (and what to use instead, where there is a replacement). */
  reason: string;
}

/** The trainable parameters a module registers itself (not those of its submodules). */
function ownTrainable(m: Module): string[] {
  return m.namedParameters().filter(([n, p]) => !n.includes('.') && p.requiresGrad).map(([n]) => n);
}

/**
 * The problems that stop DP-SGD from training `model` (empty: it can): every BatchNorm (its batch
 * statistics mix examples, whether trainable or not — `fix(model)` replaces it), and every layer
 * with trainable parameters of its own that has no per-example gradient rule (freeze it, or build
 * the model from supported layers: see README "Differential privacy").
 */
export function validate(model: Module): ValidationProblem[] {
  assertModule(model, 'privacy.validate');
  const problems: ValidationProblem[] = [];
  for (const [path, m] of model.namedModules()) {
    if (m instanceof BatchNorm) {
      problems.push({ path, layer: m.className, reason: 'BatchNorm mixes examples: each output depends on the whole batch\'s statistics, so no per-example gradient exists (eg.privacy.fix(model) replaces it by GroupNorm)' });
      continue;
    }
    const own = ownTrainable(m);
    if (own.length > 0 && !hasPerSampleRule(m)) {
      problems.push({ path, layer: m.className, reason: `no per-example gradient rule for ${m.className} (trainable ${own.join(', ')}): freeze it or use supported layers` });
    }
  }
  return problems;
}

/** The largest number of groups ≤ 32 that divides `c` (Opacus's `min(32, C)` when that divides C). */
function groupsFor(c: number): number {
  for (let g = Math.min(32, c); g > 1; g--) if (c % g === 0) return g;
  return 1;
}

/**
 * Replaces every BatchNorm of `model` by a GroupNorm in place, disposing the BatchNorm (same eps and
 * affine, fresh weights, as Opacus's `ModuleValidator.fix`), and returns the model — or the new
 * GroupNorm when `model` itself is a BatchNorm. BatchNorm2d becomes `GroupNorm(min(32, C), C)` (the
 * largest group count ≤ 32 dividing C). BatchNorm1d becomes `GroupNorm(1, C)`: its `[N, C]` input has
 * no positions, so Opacus's C groups of one value each would normalise every value to 0.
 * Sequential, Graph and custom modules then save and load with their GroupNorms; a built-in family
 * whose config only says `batchNorm: true` (VGG, ResNet) would rebuild BatchNorm from that config, so
 * to reload one, rebuild it, `fix` it and load the weights with `loadWeights`.
 */
export function fix<M extends Module>(model: M): M | GroupNorm {
  assertModule(model, 'privacy.fix');
  const replace = (bn: BatchNorm): GroupNorm => {
    const cfg = bn.getConfig() as { eps: number; affine: boolean };
    // BatchNorm1d sees [N, C]: no positions, so C groups would normalise each value by itself (always 0).
    const groups = bn instanceof BatchNorm1d ? 1 : groupsFor(bn.numFeatures);
    const gn = new GroupNorm(groups, bn.numFeatures, { eps: cfg.eps, affine: cfg.affine });
    gn.train(bn.training);
    return gn;
  };
  if (model instanceof BatchNorm) {
    const gn = replace(model);
    model.dispose();
    return gn;
  }
  const byPath = new Map(model.namedModules());
  for (const [path, m] of byPath) {
    if (!(m instanceof BatchNorm)) continue;
    const dot = path.lastIndexOf('.');
    const parent = byPath.get(path.slice(0, Math.max(dot, 0)))!;
    const name = path.slice(dot + 1);
    const gn = replace(m);
    parent.registerModule(name, gn); // disposes the BatchNorm
    // A custom module may also hold the layer in a field (`readonly bn = this.registerModule(...)`).
    const fields = parent as unknown as Record<string, unknown>;
    for (const k of Object.keys(fields)) if (fields[k] === m) fields[k] = gn;
  }
  return model;
}
