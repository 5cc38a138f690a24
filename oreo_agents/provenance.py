"""What produced a result: the versions of the packages whose numerics shape it, recorded in every
training checkpoint and rollout report.

A float that changes in the last bit between two releases of a kernel can send a run that learns
"late and all at once" somewhere else: the demo's SFT policy of one seed went from 50.0% to 58.0%
greedy test success between two installs of the same code (docs/results.md). Runs in one install
are bit-identical; across installs, compare results only with their versions at hand.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

PACKAGES = ("oreo", "torch", "transformers", "accelerate", "tokenizers", "numpy", "gymnasium")


def software() -> dict[str, Any]:
    """``{"python": ..., package: version or None (not installed), ..., "torch_threads": n}``."""
    found: dict[str, Any] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        import torch

        found["torch_threads"] = torch.get_num_threads()
    except ImportError:
        found["torch_threads"] = None
    return found
