/**
 * `eg.privacy`: differential privacy — per-example gradients, DP-SGD (`PrivacyEngine`), accountants and
 * privacy auditing. Issue 16; see README "Differential privacy".
 */
export {};
