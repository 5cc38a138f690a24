"""Run a task library's scorer on model output in a confined worker process.

A task library's own scorer is code that was not written with hostile input in mind, and model
output is hostile input: reasoning-gym's ``score_answer`` calls ``eval`` on the answer for
several tasks, and sympy's ``parse_expr`` evaluates it for others, so an answer like
``__import__('os').system(...)`` ran in the training process and ``9**9**9**9`` hung it. So an
env whose scorer is not known to be safe scores through `SandboxedScorer`: the scorer lives in
a worker process (`_sandbox_worker.py`) that is confined before it sees any answer (no file
writes, no processes, no sockets, no signals out, a memory cap), is killed when an answer runs
past its time limit, and talks to this process in JSON only. Any failure (time, memory, an
error, an operation the confinement refused) is a verdict of "wrong" with its reason; the worker
is restarted for the next answer.

A plug-in env gets the same in a few lines: a module-level factory that builds the scorer from
JSON-able arguments (it runs in the worker), and one `SandboxedScorer` per env::

    def make_scorer(level: int):              # mypkg/scoring.py: runs in the worker
        checker = ThirdPartyChecker(level)
        return lambda answer, index: checker.score(answer, index)

    self.scorer = shared_scorer("mypkg.scoring:make_scorer", {"level": 3})
    verdict = self.scorer(answer, index)      # in _act: Verdict(score, reason)
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_WORKER_SCRIPT = Path(__file__).with_name("_sandbox_worker.py")
STARTUP_TIMEOUT_S = 60.0  # interpreter + the library's imports, paid once and after each kill
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_BYTES = 2 * 1024**3  # above what the worker maps when it is confined
_MAX_REPLY_BYTES = 1 << 16


@dataclass(frozen=True)
class Verdict:
    """A scorer's answer. ``score`` is 0.0 whenever ``reason`` says why there is no score.

    Attributes:
        score: The scorer's score (a float, 1.0 = fully correct).
        reason: None when the scorer answered; else why the answer counts as wrong ("timed
            out after 5s", "refused: os.system", "ValueError: ...", "the worker died").
    """

    score: float
    reason: str | None = None


class ScorerSetupError(RuntimeError):
    """The worker could not build the scorer (the factory raised, or start-up timed out)."""


class WorkerProcess:
    """A worker script started by path (so it imports neither this package nor the caller's
    ``__main__``) and talked to over a socket, one call at a time (a lock); the base of
    `SandboxedScorer` and of the math verifier's worker (`oreo_envs.verifiers.guard`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the running worker, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def close(self) -> None:
        """Stop the worker (the next call starts a new one)."""
        with self._lock:
            self._stop()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's worker (without killing it) and its lock, which
        a parent thread may have held at the fork."""
        self._lock = threading.Lock()
        if self._conn is not None:
            self._conn.close()  # this process's copy of the socket only
        self._proc, self._conn = None, None

    def _running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, script: Path, **popen: Any) -> None:
        """Start ``python SCRIPT FD`` with one end of a socket pair as FD.

        Raises:
            OSError: The process could not start.
        """
        self._stop()
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, str(script), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, **popen,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None


class SandboxedScorer(WorkerProcess):
    """One lazily started, confined worker running ``factory(**kwargs)``; calls are served one
    at a time (a lock), each bounded by ``timeout`` seconds.

    Args:
        factory: ``"module:function"``: imported and called in the worker; it returns the
            scorer, a callable of JSON-able arguments that returns a number.
        kwargs: JSON-able keyword arguments of the factory.
        timeout: Seconds one call may take before the worker is killed.
        memory_bytes: Address space the worker may add once it is confined.
    """

    def __init__(self, factory: str, kwargs: dict[str, Any] | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT_S,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES):  # fmt: skip
        if ":" not in factory:
            raise ValueError(f"factory must be 'module:function', got {factory!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        try:
            self._setup = json.dumps(
                {"factory": factory, "kwargs": kwargs or {}, "memory_bytes": int(memory_bytes)}
            ).encode()
        except TypeError as e:
            raise ValueError(f"the scorer's arguments must be JSON values: {e}") from None
        super().__init__()
        self.factory, self.timeout = factory, timeout
        self.confinement: list[str] = []  # the layers the running worker applied
        self._ids = itertools.count()

    def __call__(self, *args: Any) -> Verdict:
        """Score ``args`` (JSON values) in the worker.

        Raises:
            ScorerSetupError: The worker could not start the scorer (a bug of the env, not of
                the answer: every answer would otherwise count as wrong).
        """
        request_id = next(self._ids)
        try:
            request = json.dumps({"id": request_id, "args": list(args)}).encode()
        except TypeError as e:
            raise ValueError(f"scorer arguments must be JSON values: {e}") from None
        with self._lock:
            self._ensure_started()
            reply, reason = self._ask(request)
            if reply is not None and reply.get("id") != request_id:
                reply, reason = None, "the worker answered another request"
            if reply is not None and reply.get("denied"):
                reply, reason = None, "refused: " + ", ".join(map(str, reply["denied"]))[:300]
            if reply is None:  # whatever happened, the worker's state is not to be trusted
                self._stop()
                return Verdict(0.0, reason)
        if reply.get("error"):
            return Verdict(0.0, str(reply["error"])[:500])
        score = reply.get("score")
        if not isinstance(score, (int, float)) or score != score:  # NaN, null, a string
            return Verdict(0.0, f"the scorer returned {score!r}")
        return Verdict(float(score))

    def _ask(self, request: bytes) -> tuple[dict[str, Any] | None, str | None]:
        try:
            self._conn.send_bytes(request)
            if not self._conn.poll(self.timeout):
                return None, f"timed out after {self.timeout:g}s"
            reply = json.loads(self._conn.recv_bytes(_MAX_REPLY_BYTES))
        except (EOFError, OSError):
            return None, "the worker died (memory cap, crash or a kill)"
        except ValueError:  # undecodable JSON or an oversized reply
            return None, "the worker's reply was not valid"
        return (reply, None) if isinstance(reply, dict) else (None, "the reply was not valid")

    def start(self) -> None:
        """Start the worker now rather than at the first call."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._running():
            return
        path = os.pathsep.join(p for p in sys.path if p)  # the worker imports what we can
        try:
            self._spawn(_WORKER_SCRIPT, stderr=subprocess.DEVNULL,
                        env={**os.environ, "PYTHONPATH": path})  # fmt: skip
        except OSError as e:
            raise ScorerSetupError(f"could not start the scorer worker: {e}") from None
        try:
            self._conn.send_bytes(self._setup)
            ready = self._conn.poll(STARTUP_TIMEOUT_S) and json.loads(self._conn.recv_bytes())
        except (EOFError, OSError, ValueError):
            ready = None
        if not isinstance(ready, dict) or not ready.get("ready"):
            self._stop()
            why = ready.get("error") if isinstance(ready, dict) else "no answer"
            raise ScorerSetupError(f"the scorer {self.factory} did not start: {why}")
        self.confinement = list(ready.get("confinement", []))


_SHARED: dict[tuple[str, str, float, int], SandboxedScorer] = {}
_SHARED_LOCK = threading.Lock()


def shared_scorer(factory: str, kwargs: dict[str, Any] | None = None, *,
                  timeout: float = DEFAULT_TIMEOUT_S,
                  memory_bytes: int = DEFAULT_MEMORY_BYTES) -> SandboxedScorer:  # fmt: skip
    """The process-wide `SandboxedScorer` of these arguments: env instances of one task (a
    vector of envs, K samples) share one worker instead of starting one each."""
    key = (factory, json.dumps(kwargs or {}, sort_keys=True, default=str), timeout, memory_bytes)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = SandboxedScorer(
                factory, kwargs, timeout=timeout, memory_bytes=memory_bytes
            )
        return _SHARED[key]


def _close_all() -> None:
    for scorer in list(_SHARED.values()):
        scorer.close()


def _forget_all() -> None:
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for scorer in _SHARED.values():
        scorer.forget_after_fork()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all)
