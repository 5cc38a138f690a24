"""Adversarial model output: grading stays bounded in time and memory, never raises or hangs."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from oreo_envs.verifiers import grade, guard, is_equivalent
from oreo_envs.verifiers.equivalence import fast_equivalent
from oreo_envs.verifiers.normalize import MAX_ANSWER_CHARS, normalize

TIMEOUT = 1.0
SLACK = 2.0
VERIFIERS_DIR = Path(guard.__file__).parent

ADVERSARIAL = {
    "exponent tower": "\\boxed{10^{10^{10^{10}}}}",
    "huge power": "\\boxed{2^{100000000}}",
    "factorial chain": "\\boxed{9!!!!!!!!}",
    "big factorial": "\\boxed{100000!}",
    "frac nested 500 deep": "\\boxed{" + "\\frac{" * 500 + "1" + "}{2}" * 500 + "}",
    "frac nested 60 deep": "\\boxed{" + "\\frac{" * 60 + "1" + "}{2}" * 60 + "}",
    "100k open braces": "\\boxed{" + "{" * 100_000,
    "400 balanced braces": "\\boxed{" + "{" * 400 + "x" + "}" * 400 + "}",
    "unbalanced braces": "}}}{{\\boxed{{{{3}}",
    "unclosed box": "The answer is \\boxed{",
    "NUL bytes": "\\boxed{1\x00\x002}",
    "lone surrogate": "\\boxed{\ud800\udfff\ud800}",
    "invalid unicode": "\\boxed{\ufffe\uffff}" + b"\xff\xfe".decode("latin-1"),
    "def": "\\boxed{\\def\\x{1}\\x}",
    "input": "\\boxed{\\input{/etc/passwd}}",
    "python import": "The answer is __import__('os').system('touch /tmp/oreo_pwned')",
    "boxed python": "\\boxed{__import__('os').system('touch /tmp/oreo_pwned')}",
    "python power": "\\boxed{9**9**9**9}",
    "sympy call": "\\boxed{Integral(exp(x**x), (x, 0, oo)).doit()}",
    "megabyte response": "blah " * 200_000 + "\\boxed{x^2+1}",
    "megabyte answer": "\\boxed{" + "x+" * 500_000 + "1}",
    "5000 digits": "#### " + "9" * 5000,
    "10000 digit box": "\\boxed{" + "7" * 10_000 + "}",
}


@pytest.fixture(scope="module")
def worker():
    """Start math-verify's worker once, so its start-up is not inside a test's timing."""
    assert guard.warmup()
    yield


@pytest.mark.parametrize("response", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
@pytest.mark.parametrize("gold", ["1", "\\sqrt{2}"])
def test_adversarial_response_is_false_and_bounded(worker, response, gold):
    start = time.perf_counter()
    assert grade(response, gold, timeout=TIMEOUT) is False
    # The bound includes restarting a worker that a previous case had to kill.
    assert time.perf_counter() - start < TIMEOUT + SLACK
    assert not Path("/tmp/oreo_pwned").exists()


@pytest.mark.parametrize(
    "gold", ["10^{10^{10^{10}}}", "\\frac{" * 300, "\x00", "\ud800", "9" * 5000]
)
def test_adversarial_gold_is_bounded(worker, gold):
    start = time.perf_counter()
    assert is_equivalent("1", gold, timeout=TIMEOUT) is False
    assert time.perf_counter() - start < TIMEOUT + SLACK


@pytest.mark.parametrize(
    "answer",
    [
        "\\frac{" * 166,
        "1," * 499,
        "x=" * 499,
        "1 " * 499 + "a",
        "a " * 499 + "1",
        "\\text{" * 166,
        "(" * 500 + ")" * 499,
        "\\{" * 333,
        "9" * 999 + "%",
    ],
)
def test_normalisation_of_worst_case_answers_is_fast(answer):
    assert len(answer) <= MAX_ANSWER_CHARS
    start = time.perf_counter()
    fast_equivalent(normalize(answer), normalize(answer[::-1]))
    assert time.perf_counter() - start < 0.1


def test_timeout_kills_worker_and_next_call_restarts_it(worker):
    guard.warmup()
    first = guard.worker_pid()
    assert not is_equivalent("10^{10^{10^{10}}}", "1", timeout=TIMEOUT)
    assert guard.worker_pid() is None
    assert is_equivalent("2\\sqrt{2}", "\\sqrt{8}", timeout=10.0)
    assert guard.worker_pid() not in (None, first)


def test_dead_worker_is_restarted(worker):
    guard.warmup()
    os.kill(guard.worker_pid(), signal.SIGKILL)
    time.sleep(0.1)
    assert is_equivalent("\\frac{\\pi}{2}", "\\pi/2", timeout=10.0)


def test_grade_from_a_thread(worker):
    results = {}

    def run():
        results["sqrt"] = grade("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", timeout=10.0)
        start = time.perf_counter()
        results["tower"] = grade("\\boxed{10^{10^{10^{10}}}}", "1", timeout=TIMEOUT)
        results["elapsed"] = time.perf_counter() - start

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert results["sqrt"] is True and results["tower"] is False
    assert results["elapsed"] < TIMEOUT + SLACK


def test_grade_from_a_thread_pool(worker):
    cases = [
        ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
        ("\\boxed{\\frac{\\pi}{2}}", "\\pi/2", True),
        ("\\boxed{p - q}", "-q+p", True),
        ("#### 1,000", "1000", True),
        ("\\boxed{2\\sqrt{3}}", "\\sqrt{8}", False),
        ("\\boxed{x^2}", "x^3", False),
        ("#### 7", "8", False),
    ] * 8
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda case: grade(case[0], case[1], timeout=10.0), cases))
    assert verdicts == [expected for _, _, expected in cases]


def _grade_in_child(queue):
    queue.put((guard.worker_pid(), is_equivalent("2\\sqrt{2}", "\\sqrt{8}", timeout=10.0)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_starts_its_own_worker(worker):
    guard.warmup()
    parent_worker = guard.worker_pid()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_grade_in_child, args=(queue,))
    child.start()
    inherited, verdict = queue.get(timeout=30)
    child.join(timeout=30)
    assert inherited is None and verdict is True
    assert guard.worker_pid() == parent_worker
    assert is_equivalent("\\frac{\\pi}{2}", "\\pi/2", timeout=10.0)


def test_bad_style_is_a_programming_error():
    with pytest.raises(ValueError):
        grade("#### 1", "1", style="latex")


def test_memory_cap_turns_allocation_into_memory_error():
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(VERIFIERS_DIR)!r})
        import _worker
        _worker._limit_memory(256 * 1024**2)
        try:
            block = bytearray(2 * 1024**3)
        except MemoryError:
            print("capped")
        else:
            print("uncapped")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if "uncapped" in result.stdout:
        pytest.skip("RLIMIT_AS is not enforced on this platform")
    assert result.stdout.strip() == "capped"


def test_import_is_fast_and_starts_nothing():
    code = (
        "import sys, time; t = time.perf_counter(); import oreo_envs.verifiers as v; "
        "assert 'sympy' not in sys.modules and 'math_verify' not in sys.modules, "
        "'importing oreo_envs.verifiers (or oreo_envs) pulled in sympy'; "
        "assert v.guard.worker_pid() is None; assert v.grade('#### 1,000', '1000'); "
        "assert 'sympy' not in sys.modules and v.guard.worker_pid() is None"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_worker_exits_with_the_interpreter():
    code = (
        "from oreo_envs.verifiers import guard, is_equivalent; "
        "assert is_equivalent('2\\\\sqrt{2}', '\\\\sqrt{8}', timeout=10); print(guard.worker_pid())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    pid = int(result.stdout.strip())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone in every sense that matters.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


def test_no_eval_of_raw_text_in_our_code():
    forbidden = {"eval", "exec", "sympify", "parse_expr", "ExprExtractionConfig"}
    for path in VERIFIERS_DIR.glob("*.py"):
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        names = {tok.string for tok in tokens if tok.type == tokenize.NAME}
        assert not names & forbidden, f"{path.name} uses {names & forbidden}"
