/**
 * `eg.robust`: adversarial training, robustness evaluation, certification (randomized smoothing) and
 * hardening (input guards, feature squeezing, model integrity). Issue 15; see README "Robustness".
 */
export {};
