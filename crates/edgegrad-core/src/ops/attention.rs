//! Attention: scaled dot-product attention with masks, returning the weights of every head.
