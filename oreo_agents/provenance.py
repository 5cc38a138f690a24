"""What produced a result: the versions of the packages whose numerics shape it, recorded in every
training checkpoint and rollout report.

A float that changes in the last bit between two releases of a kernel can send a run that learns
"late and all at once" somewhere else: the demo's SFT policy of one seed went from 50.0% to 58.0%
greedy test success between two sessions' installs of the same code (docs/results.md). Runs in
one install are bit-identical; across installs, compare results only with this record at hand.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

PACKAGES = ("oreo", "torch", "transformers", "accelerate", "tokenizers", "numpy", "gymnasium")


def software() -> dict[str, Any]:
    """``{"python": ..., package: version or None (not installed), ..., "torch_threads": n,
    "cpu": model name, "machine": architecture}``: CPU kernels choose their instructions (and so
    their rounding) by the processor, so the same versions on another CPU may differ too."""
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
    found["cpu"] = _cpu_model() or platform.processor() or None
    found["machine"] = platform.machine()
    return found


def _cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), or ""."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
