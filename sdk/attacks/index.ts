/**
 * `eg.attacks`: adversarial attacks as probes of a model's robustness, and the base adversarial
 * training builds on. `FGSM`, `PGD` (L∞ and L2), `DeepFool` and `CarliniWagnerL2` take a Module or
 * a differentiable function of a batch, and `perturb(x, y)` returns `{ adversarial, success, norm }`.
 */
export { Attack } from './common.js';
export type { AttackLoss, AttackOptions, AttackResult, ClipValues, NormKind } from './common.js';
export { FGSM, PGD } from './gradient.js';
export type { FGSMOptions, PGDOptions } from './gradient.js';
export { DeepFool } from './deepfool.js';
export type { DeepFoolOptions } from './deepfool.js';
export { CarliniWagnerL2 } from './cw.js';
export type { CarliniWagnerL2Options } from './cw.js';
export { APGDCE, APGDT } from './apgd.js';
export type { APGDOptions, APGDTOptions } from './apgd.js';
export { SquareAttack } from './square.js';
export type { SquareAttackOptions, SquareAttackResult } from './square.js';
