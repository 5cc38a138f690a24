"""Episodes and what training makes of them: the episode store, converters of published
formats, tokenization into action/step masks, and batching for one algorithm."""
