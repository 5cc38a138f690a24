"""Run math-verify in a persistent worker process, bounded in time and memory.

math-verify's own timeout uses `signal.alarm`, which only works on the main thread, and sympy can
spin or allocate without limit on adversarial LaTeX (`10^{10^{10^{10}}}`). So each comparison
goes to one long-lived worker process (`_worker.py`) over a socket; if it does not answer within
the timeout it is killed, the comparison counts as not equivalent, and the next comparison starts
a fresh worker. The worker caps its own address space (see `_worker.MEMORY_HEADROOM_BYTES`).

The worker is a plain `subprocess` running `_worker.py` by path rather than a `multiprocessing`
child: spawn and forkserver children re-import the caller's `__main__` (often a training script
that imports torch), which is slow, can re-run unguarded script code, and would count against the
worker's memory cap. The socket end is a `multiprocessing.connection.Connection`, as with `Pipe`,
carrying JSON bytes.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
from pathlib import Path

from oreo_envs.sandbox import WorkerProcess

logger = logging.getLogger(__name__)

_WORKER_SCRIPT = Path(__file__).with_name("_worker.py")
# Start-up (interpreter + sympy + math-verify imports) is not charged to a comparison's timeout:
# it is paid once, or once after each kill, and takes a fraction of a second on an idle core.
STARTUP_TIMEOUT_S = 60.0


class MathVerifyWorker(WorkerProcess):
    """One lazily started worker process, shared by all threads through a lock.

    Calls from several threads are served one at a time; each call's `timeout` starts when its
    turn comes, so a call that queues behind others can take longer than its own timeout.
    """

    def equivalent(self, pred: str, gold: str, timeout: float) -> bool:
        """Ask math-verify whether `pred` equals `gold`; False on timeout, crash or error.

        Args:
            pred: Normalised predicted answer (LaTeX, without `$`).
            gold: Normalised gold answer.
            timeout: Seconds to wait for the worker's verdict.
        """
        if timeout <= 0:
            return False
        with self._lock:
            if not self._ensure_started():
                return False
            try:
                self._conn.send_bytes(json.dumps([pred, gold]).encode())
                if self._conn.poll(timeout):
                    # JSON, never pickle: the worker parses model output, and what it sends
                    # back must not be able to run code here.
                    return self._conn.recv_bytes(16) == b"true"
                logger.debug("math-verify took over %.1fs; restarting its worker", timeout)
            except Exception:
                # The worker died (a C-level stack overflow, the memory cap) or the request could
                # not be sent; either way a reply may still be in flight, so start afresh.
                logger.debug("math-verify worker failed; restarting it", exc_info=True)
            self._stop()
            return False

    def start(self) -> bool:
        """Start the worker now rather than on the first comparison; True if it is running."""
        with self._lock:
            return self._ensure_started()

    def _ensure_started(self) -> bool:
        if self._running():
            return True
        try:
            self._spawn(_WORKER_SCRIPT)
        except (OSError, ValueError):  # ValueError: no pass_fds on this platform
            logger.warning("could not start the math-verify worker", exc_info=True)
            return False
        try:
            if self._conn.poll(STARTUP_TIMEOUT_S) and self._conn.recv_bytes(16) == b"ready":
                return True
        except (EOFError, OSError):
            pass
        logger.warning("the math-verify worker did not start; LaTeX answers will grade False")
        self._stop()
        return False


_WORKER = MathVerifyWorker()
atexit.register(_WORKER.close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKER.forget_after_fork)


def math_verify_equivalent(pred: str, gold: str, timeout: float) -> bool:
    """`MathVerifyWorker.equivalent` on the process-wide worker."""
    return _WORKER.equivalent(pred, gold, timeout)


def warmup() -> bool:
    """Start the process-wide worker ahead of the first LaTeX comparison (well under a second)."""
    return _WORKER.start()


def shutdown() -> None:
    """Stop the process-wide worker; the next comparison that needs it starts a new one."""
    _WORKER.close()


def worker_pid() -> int | None:
    """Process id of the process-wide worker, or None when it is not running."""
    return _WORKER.pid
