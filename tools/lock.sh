#!/usr/bin/env bash
# Refresh requirements.lock: the exact versions, with hashes, that README's set-up installs.
#
#   pip install uv && bash tools/lock.sh                          # resolves torch on PyTorch's CPU index
#   TORCH_WHEELS=/opt/wheels bash tools/lock.sh                   # or from a folder holding its CPU wheel
#
# The lock is for CPython 3.11 on x86-64 Linux (where CI runs and the results were measured); other
# platforms install from pyproject.toml's ranges. torch is resolved as its CPU build, so the lock
# holds torch's own dependencies but none of the CUDA packages, and torch itself is left out: README
# installs it by version from the index that suits the machine (CPU or CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=2.13.0
source_args=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
if [ -n "${TORCH_WHEELS:-}" ]; then source_args=(--find-links "$TORCH_WHEELS"); fi
constraint=$(mktemp)
trap 'rm -f "$constraint"' EXIT
echo "torch==$TORCH+cpu" > "$constraint"
uv pip compile pyproject.toml --extra dev --extra alfworld --generate-hashes \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  "${source_args[@]}" -c "$constraint" --no-emit-package torch \
  --custom-compile-command "bash tools/lock.sh" --quiet -o requirements.lock
echo "wrote requirements.lock ($(grep -c '==' requirements.lock) pins; torch $TORCH left to README's install line)"
