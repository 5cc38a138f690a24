"""Generation backends: batched prompts in, K sampled continuations out."""
