//! Recurrent cell kernels (SimpleRNN, LSTM, GRU) and their backward through time.
