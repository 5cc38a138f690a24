"""Math-verify worker: the process that `guard.py` starts and kills.

Run as a script (`python _worker.py FD`), never imported by the package: started by path, it
imports neither `oreo_envs` nor the caller's `__main__` (a training script that imports torch),
so it starts in well under a second and its memory limit is about math-verify alone.

Protocol over the socket FD (a `multiprocessing.connection.Connection`, bytes only, never
pickle): the worker sends `ready` once math-verify is imported, then answers each JSON
`[pred, gold]` request with `true` or `false`. It exits when the parent closes its end.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from functools import lru_cache
from multiprocessing.connection import Connection

# The address-space cap is set relative to what the fresh interpreter maps, so it means the
# same on every platform; 2 GiB is ample for sympy on any honest answer.
MEMORY_HEADROOM_BYTES = 2 * 1024**3


def _limit_memory(headroom: int) -> None:
    """Cap the address space at current size + `headroom`; skip silently where unsupported."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = mapped + headroom
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError, AttributeError):
        pass


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """Exit when the parent dies without closing the socket (SIGKILL) while we are computing."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _serve(conn) -> None:
    """Answer requests until the parent goes away."""
    # Only the LaTeX extractor: math-verify's ExprExtractionConfig runs sympy's parse_expr on
    # its input. Timeouts are None because math-verify's own use signal.alarm; the parent
    # bounds each request by killing this process instead.
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0)]

    @lru_cache(maxsize=4096)
    def parsed(answer: str) -> tuple:
        # Wrapping in \boxed{} makes math-verify take the whole string as one answer.
        return tuple(parse("\\boxed{" + answer + "}", config, parsing_timeout=None))

    conn.send_bytes(b"ready")
    while True:
        try:
            pred, gold = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            result = bool(verify(list(parsed(gold)), list(parsed(pred)), timeout_seconds=None))
        except Exception:  # MemoryError and RecursionError included: a failed comparison is False
            result = False
        conn.send_bytes(b"true" if result else b"false")


def main() -> None:
    """Entry point: `python _worker.py FD`."""
    # math-verify warns that its own timeout is off, once per process; that is intended here.
    logging.disable(logging.WARNING)
    _limit_memory(MEMORY_HEADROOM_BYTES)
    _exit_with_parent()
    conn = Connection(int(sys.argv[1]))
    try:
        _serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    # Running by path puts this package directory first on sys.path; drop it so our module
    # names (normalize, extract, ...) cannot shadow anything math-verify imports.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    main()
