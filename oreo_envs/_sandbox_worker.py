"""Scorer worker: the process that `oreo_envs.sandbox` starts, confines and kills.

Run as a script (``python _sandbox_worker.py FD``), never imported. Protocol over the socket FD,
JSON in both directions (never pickle: this process handles model output, and whatever it sends
back must not be able to run code in the parent):

1. the parent sends ``{"factory": "module:function", "kwargs": {...}, "memory_bytes": N}``;
2. the worker imports and calls the factory (trusted code: the env's own), confines itself
   (`confine`) and answers ``{"ready": true, "confinement": [...]}``, or ``{"error": "..."}``;
3. then each request ``{"id": K, "args": [...]}`` is answered
   ``{"id": K, "score": float | null, "error": str | null, "denied": [event, ...]}``.

The confinement, in layers, so that no single one is trusted alone:

- an address-space cap (``RLIMIT_AS``) and a zero file-size cap (``RLIMIT_FSIZE``);
- Landlock (Linux 5.13+), where the kernel offers it: no file may be created, written,
  truncated, removed, renamed or executed anywhere, and (ABI 4+) no TCP bind or connect, and
  (ABI 6+) no signal to a process outside the worker;
- a Python audit hook (PEP 578) that refuses process creation, file writes, sockets, signals,
  ``ctypes`` and new audit hooks, and records what was refused: a request that tried any of
  them is answered "wrong" whatever the scorer returned, and the parent restarts the worker.

Time is bounded by the parent, which kills the worker when a request runs past its timeout.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

# Audit events that a scorer has no business raising. Matched as exact names or, for names
# ending in ".", as prefixes.
DENIED_EVENTS = (
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "subprocess.Popen", "_posixsubprocess.fork_exec", "pty.spawn",
    "os.kill", "os.killpg", "signal.pthread_kill",
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.truncate",
    "os.chmod", "os.chown", "os.chflags", "os.lchflags", "os.utime", "os.mkfifo", "os.mknod",
    "os.setxattr", "os.removexattr", "shutil.", "socket.", "ctypes.", "sys.addaudithook",
    "webbrowser.open", "urllib.Request", "ftplib.", "http.client.", "smtplib.", "telnetlib.",
)  # fmt: skip
DENIED_IMPORTS = frozenset({"ctypes", "_ctypes", "cffi", "_cffi_backend", "subprocess", "pty"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

# Landlock (linux/landlock.h). Filesystem rights handled with no rule granting them = denied
# everywhere; reading is not handled, so lazy imports still work.
_SYS_CREATE_RULESET, _SYS_RESTRICT_SELF = 444, 446  # the same on every architecture
_FS_EXECUTE, _FS_WRITE_FILE = 1 << 0, 1 << 1
_FS_REMOVE_DIR, _FS_REMOVE_FILE = 1 << 4, 1 << 5
_FS_MAKE = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_PR_SET_NO_NEW_PRIVS, _PR_SET_PDEATHSIG = 38, 1


def _landlock() -> str | None:
    """Deny file writes, creation, removal and execution (and TCP, and signals out) to this
    thread and the threads it starts; returns what was applied, None where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        abi = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
        if abi < 1:
            return None
        fs = _FS_EXECUTE | _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE
        fs |= (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
        net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0
        scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL if abi >= 6 else 0
        fields = [fs, net, scoped][: 3 if abi >= 6 else 2 if abi >= 4 else 1]
        attr = (ctypes.c_uint64 * len(fields))(*fields)
        ruleset = libc.syscall(
            _SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
            ctypes.c_uint32(0),
        )  # fmt: skip
        if ruleset < 0:
            return None
        try:
            if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                return None
            if libc.syscall(_SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
                return None
        finally:
            os.close(ruleset)
        return f"landlock-abi{abi}"
    except (OSError, AttributeError, ImportError):
        return None


def _die_with_parent() -> None:
    """SIGKILL from the kernel when the parent dies (a C-level hang never lets Python notice)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError, ImportError):
        pass


def _limit_resources(memory_bytes: int) -> list[str]:
    applied = []
    try:
        import resource

        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = mapped + memory_bytes
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        applied.append("memory")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap fails, not kills
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        applied.append("file-size")
    except (ImportError, OSError, ValueError, AttributeError):
        pass
    return applied


class _Audit:
    """The audit hook: refuses the events above and records them for the current request."""

    def __init__(self) -> None:
        self.denied: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if self._refused(event, args):
            self.denied.append(event)
            raise PermissionError(f"the scorer sandbox refuses {event}")

    @staticmethod
    def _refused(event: str, args: tuple) -> bool:
        if event == "open":
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            return bool(flags & _WRITE_FLAGS) or any(c in mode for c in "wax+")
        if event == "import":
            return args[0].split(".")[0] in DENIED_IMPORTS
        for name in DENIED_EVENTS:
            if event == name or (name.endswith(".") and event.startswith(name)):
                return True
        return event.startswith("os.exec")


def confine(memory_bytes: int) -> tuple[list[str], _Audit]:
    """Apply every layer (module docstring); returns the layers applied and the audit hook."""
    applied = _limit_resources(memory_bytes)
    landlock = _landlock()
    if landlock:
        applied.append(landlock)
    sys.dont_write_bytecode = True  # lazy imports must not count as file writes
    audit = _Audit()
    sys.addaudithook(audit)
    applied.append("audit-hook")
    return applied, audit


def _serve(conn, scorer, audit: _Audit) -> None:
    while True:
        try:
            request = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        audit.denied.clear()
        reply: dict = {"id": request.get("id"), "score": None, "error": None}
        try:
            reply["score"] = float(scorer(*request["args"]))
        except BaseException as e:  # noqa: BLE001 - MemoryError, RecursionError, SystemExit...
            reply["error"] = f"{type(e).__name__}: {e}"[:500]
        reply["denied"] = sorted(set(audit.denied))
        conn.send_bytes(json.dumps(reply).encode())


def main() -> None:
    """Entry point: ``python _sandbox_worker.py FD``."""
    _die_with_parent()
    parent = os.getppid()
    conn = Connection(int(sys.argv[1]))
    try:
        setup = json.loads(conn.recv_bytes())
        module, _, name = setup["factory"].partition(":")
        scorer = getattr(importlib.import_module(module), name)(**setup.get("kwargs", {}))
    except Exception as e:  # noqa: BLE001 - told to the parent, which raises it
        conn.send_bytes(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
        return
    applied, audit = confine(int(setup["memory_bytes"]))
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    conn.send_bytes(json.dumps({"ready": True, "confinement": applied}).encode())
    _serve(conn, scorer, audit)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


if __name__ == "__main__":
    # Started by path, this folder is first on sys.path; drop it so that our file names cannot
    # shadow a module the scorer imports.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    main()
