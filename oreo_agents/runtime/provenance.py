"""What produced a result: the versions of the packages whose numerics shape it, recorded in every
training checkpoint and rollout report.

A float that changes in the last bit between two releases of a kernel can send a run that learns
"late and all at once" somewhere else: the demo's SFT policy of one seed went from 50.0% to 58.0%
greedy test success between two sessions' installs of the same code (docs/results.md). Runs in
one install are bit-identical; across installs, compare results only with this record at hand.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("oreo", "torch", "transformers", "accelerate", "tokenizers", "numpy", "gymnasium")
# The lock file README's set-up installs from, at the root of a source checkout (editable
# installs); an install from a wheel has none.
LOCK_FILE = Path(__file__).resolve().parents[2] / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


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
    found["lock"] = lock_status()
    return found


@functools.cache  # the install does not change under a running process
def lock_status(path: Path = LOCK_FILE) -> dict[str, Any] | None:
    """``{"sha256": the lock file's hash, "differs": ["name lock-version != installed", ...]}``
    (an empty list when every pinned package is installed at its pinned version), or None where
    there is no lock file. Two results with the same hash and no differences were produced by the
    same package versions (torch apart: the lock leaves it to README's install line, which picks
    the CPU or CUDA build)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    differs = []
    for line in text.splitlines():
        match = _PIN.match(line)
        if match is None:
            continue
        name, pinned = match.groups()
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != pinned:
            differs.append(f"{name} {pinned} != {installed or 'not installed'}")
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "differs": differs}


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
