//! Fused, in-place optimizer updates (SGD, Adam/AdamW, RMSProp, Adagrad) and gradient clipping.
