"""Input checks shared by the loss functions.

Losses receive tensors assembled by a data pipeline, and a wrong shape usually broadcasts quietly
into a wrong loss instead of failing. These checks turn such mistakes into clear errors.
"""

from __future__ import annotations

import torch


def check_float(name: str, x: torch.Tensor, ndim: int) -> None:
    """Raise ValueError unless `x` is a floating-point tensor with `ndim` dimensions."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")


def check_same_shape(**tensors: torch.Tensor) -> None:
    """Raise ValueError unless every keyword tensor has the same shape (names go in the message)."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name}={shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}")


def as_bool_mask(name: str, mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Return `mask` as a bool tensor after checking its shape and that it only holds 0 and 1.

    Args:
        name: Argument name, used in error messages.
        mask: Bool tensor, or an integer / float tensor of 0s and 1s.
        shape: The shape the mask must have.

    Returns:
        A bool tensor of `shape`.

    Raises:
        ValueError: On a wrong type or shape, or values other than 0 and 1.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex() or not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"{name} must be bool or hold only 0 and 1 (dtype {mask.dtype})")
    return mask.bool()


def check_logits_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ValueError unless logits are ``[B, T, V]`` float and labels ``[B, T]`` integer."""
    check_float("logits", logits, 3)
    if (
        not isinstance(labels, torch.Tensor)
        or labels.dtype.is_floating_point
        or (labels.dtype == torch.bool)
    ):
        raise ValueError(f"labels must be an integer tensor, got {getattr(labels, 'dtype', None)}")
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits [B, T] "
            f"{tuple(logits.shape[:2])}"
        )


def check_label_range(labels: torch.Tensor, vocab_size: int) -> None:
    """Raise ValueError if any label lies outside ``[0, vocab_size)``."""
    if labels.numel() and (labels.min() < 0 or labels.max() >= vocab_size):
        raise ValueError(
            f"labels must lie in [0, {vocab_size}), got min {int(labels.min())} "
            f"and max {int(labels.max())}"
        )
