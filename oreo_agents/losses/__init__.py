"""Pure loss functions: tensors in, (loss, metrics) out (STYLE.md 2)."""
