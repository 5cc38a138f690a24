"""Models: the policy and its frozen reference, the value model (LM backbone + scalar head), the
value model as a batched scorer for search, and tiny random models built locally."""
