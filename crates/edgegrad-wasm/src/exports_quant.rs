//! Exports for quantized inference and compression.
