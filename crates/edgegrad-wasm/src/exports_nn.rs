//! Exports for activations, normalisation and optimizers.
