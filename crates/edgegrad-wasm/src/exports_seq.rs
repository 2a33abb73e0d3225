//! Exports for recurrent layers and attention.
