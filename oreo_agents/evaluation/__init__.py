"""Evaluating policies: `oreo rollout`'s strategies (greedy, sampling, value-guided beam search,
best-of-K and value-guided acting), its metrics, reports and plots."""
