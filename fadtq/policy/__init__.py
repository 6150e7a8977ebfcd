"""The policy layer: loading a model and its processor, the tensors of a forward pass, completion
log-probabilities, the prompt cache and the model families behind them. Generation, training,
evaluation and serving build on it; it imports none of them."""
