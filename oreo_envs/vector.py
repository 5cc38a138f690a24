"""Text envs in worker processes: many env copies stepped in parallel, each reset to its own task.

Gymnasium's ``AsyncVectorEnv`` resets every sub-env with the same options and auto-resets
finished ones, while collection needs each env reset to its own ``task_id`` and seed, and
episodes that end at different times. `EnvPool` keeps the plain one-env API instead: it spreads
``n`` env copies over ``workers`` processes and hands out `RemoteEnv` proxies whose ``reset`` and
``step`` behave like the env's own. The parallel path is `step_all` / `reset_all`: they send every
command first and then wait, so envs living in different workers run at the same time::

    with EnvPool(lambda: gymnasium.make("oreo/ALFWorld-v0"), n=8, workers=2) as pool:
        results = reset_all(pool.envs, [{"options": {"task_id": t}} for t in tasks])
        results = step_all(pool.envs, actions)

Worth it for envs whose steps and resets cost real CPU (ALFWorld, TextWorld); a math env's
step is cheaper than the inter-process round trip. Env copies sit on workers in contiguous
blocks (envs 0..n/w-1 on the first), so neighbouring envs, which collection gives the K samples
of one task, share a worker's game cache. Workers ignore SIGINT (the caller handles Ctrl-C and
closes the pool) and exit when the caller's end of the pipe closes.

Static metadata (`STATIC`: ``unwrapped.task_ids``, the env's ``kind``, a math env's
``granularity`` and ``task()``...) is read from a local ``template`` env, so proxies can stand
in for envs wherever code only reads such attributes; per-episode state (``task_id``, the
game in progress) lives in the workers and comes back through ``info``, and asking a proxy for
it is an error rather than the template's stale value.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from collections.abc import Callable, Sequence
from typing import Any

Command = tuple[str, int, Any]
# What a proxy answers from its template: attributes fixed when the env is built.
STATIC = frozenset({
    "task_ids", "kind", "granularity", "step_delimiters", "task", "prompt", "dataset", "split",
    "games", "metadata", "render_mode", "observation_space", "action_space", "spec",
})  # fmt: skip


class EnvPool:
    """``n`` copies of an env in ``workers`` processes (see the module docstring).

    Args:
        make_env: Builds one env; called in the workers. It must be picklable where the
            platform has no ``fork`` (a module-level function or ``functools.partial``).
        n: Env copies.
        workers: Worker processes (at most ``n`` are started).
        template: A local env for static metadata; built with ``make_env`` when omitted.

    Raises:
        ValueError: ``n`` or ``workers`` < 1.
        RuntimeError: A worker failed to build its envs (the worker's error is chained).
    """

    def __init__(
        self,
        make_env: Callable[[], Any],
        n: int,
        workers: int,
        template: Any = None,
    ):
        if n < 1 or workers < 1:
            raise ValueError(f"an env pool needs n >= 1 and workers >= 1, got {n} and {workers}")
        workers = min(workers, n)
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else None)
        self.template = template if template is not None else make_env()
        self._owner = [i * workers // n for i in range(n)]
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        self._results: dict[int, tuple[str, Any]] = {}
        self._closed = False
        try:
            for w in range(workers):
                mine = [i for i in range(n) if self._owner[i] == w]
                parent, child = ctx.Pipe()
                # A forked worker inherits the caller's ends of its own and earlier workers'
                # pipes; it closes them, so that the caller's death reaches every worker as EOF.
                inherited = [*self._conns, parent]
                proc = ctx.Process(
                    target=_worker, args=(child, make_env, mine, inherited), daemon=True
                )
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            for w, conn in enumerate(self._conns):
                status, _, payload = _receive(conn, w)
                if status != "ok":
                    raise RuntimeError(f"env worker {w} could not build its envs") from payload
        except BaseException:
            self.close()
            raise
        self.envs = [RemoteEnv(self, i) for i in range(n)]

    @property
    def workers(self) -> int:
        return len(self._procs)

    def send(self, i: int, command: str, args: Any) -> None:
        """Queue one command for env ``i`` (its worker runs commands in arrival order)."""
        if self._closed:
            raise RuntimeError("the env pool is closed")
        self._conns[self._owner[i]].send((command, i, args))

    def receive(self, i: int) -> Any:
        """The result of env ``i``'s oldest command; re-raises the env's exception."""
        while i not in self._results:
            w = self._owner[i]
            status, j, payload = _receive(self._conns[w], w)
            self._results[j] = (status, payload)
        status, payload = self._results.pop(i)
        if status == "error":
            raise payload
        return payload

    def close(self) -> None:
        """Stop the workers (closing their envs); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", -1, None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        if self.template is not None and hasattr(self.template, "close"):
            self.template.close()

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


class RemoteEnv:
    """A proxy for env ``i`` of an `EnvPool`, with the env's ``reset`` / ``step`` / ``render``.

    ``*_async`` + ``wait`` split a call so that several proxies run at once (`step_all`).
    Attributes other than the calls come from the pool's local template env (static metadata).
    """

    def __init__(self, pool: EnvPool, index: int):
        self.pool = pool
        self.index = index
        self._waiting = False

    def reset_async(self, *, seed: int | None = None, options: dict | None = None) -> None:
        self._send("reset", {"seed": seed, "options": options})

    def step_async(self, action: str) -> None:
        self._send("step", action)

    def wait(self) -> Any:
        """The result of the call sent last."""
        if not self._waiting:
            raise RuntimeError(f"env {self.index}: wait() without a call in flight")
        self._waiting = False
        return self.pool.receive(self.index)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.reset_async(seed=seed, options=options)
        return self.wait()

    def step(self, action: str):
        self.step_async(action)
        return self.wait()

    def render(self) -> Any:
        self._send("render", None)
        return self.wait()

    def close(self) -> None:
        """Nothing: the pool owns the worker (`EnvPool.close`)."""

    @property
    def unwrapped(self) -> _Static:
        return _Static(self.pool.template.unwrapped)

    def __getattr__(self, name: str) -> Any:
        return _static(self.pool.template, name)

    def _send(self, command: str, args: Any) -> None:
        if self._waiting:
            raise RuntimeError(f"env {self.index}: a call is already in flight; wait() first")
        self.pool.send(self.index, command, args)
        self._waiting = True


class _Static:
    """The `STATIC` attributes of a template's unwrapped env (``RemoteEnv.unwrapped``)."""

    def __init__(self, env: Any):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return _static(self._env, name)


def _static(env: Any, name: str) -> Any:
    if name not in STATIC:
        raise AttributeError(
            f"{name!r} is not static metadata of the env, so an EnvPool proxy cannot answer it "
            "(per-episode state lives in the worker: read it from the info that reset and step "
            f"return); proxies answer {sorted(STATIC)}"
        )
    return getattr(env, name)


def step_all(envs: Sequence[Any], actions: Sequence[str]) -> list[tuple]:
    """``[env.step(a) for env, a in zip(envs, actions)]``, with pooled envs stepped in parallel.

    Every result is collected even when one env raises; the first error is then re-raised.
    """
    if len(envs) != len(actions):
        raise ValueError(f"{len(envs)} envs but {len(actions)} actions")
    return _parallel(envs, [("step", a) for a in actions])


def reset_all(envs: Sequence[Any], kwargs: Sequence[dict[str, Any]]) -> list[tuple]:
    """``[env.reset(**kw) for env, kw in zip(envs, kwargs)]``, pooled envs in parallel."""
    if len(envs) != len(kwargs):
        raise ValueError(f"{len(envs)} envs but {len(kwargs)} reset calls")
    return _parallel(envs, [("reset", kw) for kw in kwargs])


def _parallel(envs: Sequence[Any], calls: list[tuple[str, Any]]) -> list[tuple]:
    if len({id(e) for e in envs}) != len(envs):
        raise ValueError("each env may appear once per parallel call")
    for env, (kind, arg) in zip(envs, calls, strict=True):
        if isinstance(env, RemoteEnv) and kind == "step":
            env.step_async(arg)
        elif isinstance(env, RemoteEnv):
            env.reset_async(**arg)
    results: list[Any] = []
    error: BaseException | None = None
    for env, (kind, arg) in zip(envs, calls, strict=True):
        try:
            if isinstance(env, RemoteEnv):
                results.append(env.wait())
            else:
                results.append(env.step(arg) if kind == "step" else env.reset(**arg))
        except Exception as e:  # keep draining the other workers' replies
            error = error or e
            results.append(None)
    if error is not None:
        raise error
    return results


def _receive(conn: Any, worker: int) -> tuple[str, int, Any]:
    try:
        return conn.recv()
    except (EOFError, OSError) as e:
        raise RuntimeError(f"env worker {worker} died (see its stderr above)") from e


def _worker(
    conn: Any, make_env: Callable[[], Any], indices: list[int], inherited: list[Any]
) -> None:
    """A worker's loop: build its envs, then run (command, env index, args) until "close"."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for other in inherited:
        other.close()
    envs: dict[int, Any] = {}
    try:
        for i in indices:
            envs[i] = make_env()
        conn.send(("ok", -1, None))
    except Exception as e:
        conn.send(("error", -1, _picklable(e)))
        return
    while True:
        try:
            command, i, args = conn.recv()
        except (EOFError, OSError):  # the caller is gone
            break
        if command == "close":
            break
        try:
            env = envs[i]
            if command == "reset":
                result = env.reset(**args)
            elif command == "step":
                result = env.step(args)
            elif command == "render":
                result = env.render()
            else:
                raise ValueError(f"unknown env pool command {command!r}")
            conn.send(("ok", i, result))
        except Exception as e:
            conn.send(("error", i, _picklable(e)))
    for env in envs.values():
        try:
            env.close()
        except Exception:
            pass


def _picklable(error: Exception) -> Exception:
    """The env's exception if it survives pickling, else a RuntimeError carrying its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        text = "".join(traceback.format_exception(error)).rstrip()
        return RuntimeError(f"{type(error).__name__} in an env worker: {error}\n{text}")
