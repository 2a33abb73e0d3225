//! Recurrent layers: SimpleRNN, LSTM and GRU sequences with the time loop in Rust.
