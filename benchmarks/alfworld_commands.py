"""Running the ``oreo`` commands of `alfworld_agents.py`: one at a time (`sh`), several side by
side with the cores shared out (`sh_lanes`), and the wall time of each stage (`stage`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OREO = [sys.executable, "-m", "oreo_cli"]


def sh(args: list[Any]) -> None:
    print("  $ oreo " + " ".join(map(str, args)), flush=True)
    subprocess.run([*OREO, *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def sh_lanes(jobs: list[list[Any]], lanes: int) -> None:
    """Run independent ``oreo`` commands ``lanes`` at a time, in the order given (longest first
    keeps the lanes even), each with the machine's cores shared out (``OMP_NUM_THREADS``).

    A few-M-parameter agent acting step by step makes small model calls that two torch threads
    barely share, so two such runs side by side, one thread each, do about 1.5 times the work
    of one run with two threads on 2 cores (docs/howto/alfworld.md, Speed). With ``lanes`` 1,
    or one command, they run one after the other as `sh` runs them. A command that fails
    stops the others and raises."""
    if lanes <= 1 or len(jobs) <= 1:
        for job in jobs:
            sh(job)
        return
    threads = max(1, (os.cpu_count() or 1) // lanes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    waiting, running = list(jobs), {}
    try:
        while waiting or running:
            while waiting and len(running) < lanes:
                job = [str(a) for a in waiting.pop(0)]
                print(f"  $ oreo {' '.join(job)}   (lane of {lanes}, {threads} thread(s))",
                      flush=True)  # fmt: skip
                proc = subprocess.Popen([*OREO, *job], stdout=subprocess.DEVNULL, env=env)
                running[proc.pid] = (proc, job)
            pid, status = os.wait()
            if pid not in running:
                continue
            proc, job = running.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                raise subprocess.CalledProcessError(proc.returncode, ["oreo", *job])
    finally:
        for proc, _ in running.values():  # a failure or an interrupt: the others stop too
            proc.terminate()
            proc.wait()


@contextlib.contextmanager
def stage(out: Path, name: str):
    """Add the wall seconds of a stage to OUT/stages.json, summed over the runs of this script
    in OUT: a stage that resumes adds what the resumption took, a finished one the few seconds
    of finding it done."""
    started = time.perf_counter()
    try:
        yield
    finally:
        path = out / "stages.json"
        stages = json.loads(path.read_text()) if path.exists() else {}
        stages[name] = round(stages.get(name, 0.0) + time.perf_counter() - started, 1)
        path.write_text(json.dumps(stages, indent=2) + "\n")
