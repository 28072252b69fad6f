"""Looking inside: how text became tokens, where each head attends, how surprised the model is."""
