//! Activation functions beyond the basic unary ops (leaky ReLU, ELU, GELU, SiLU, softplus).
