"""Answer extraction and equivalence for math reasoning rewards (GSM8K, MATH).

    >>> from oreo_envs.verifiers import grade
    >>> grade("... so she has 3 + 4 = 7 apples.\\n#### 7", "7", style="gsm8k")
    True

`grade` = `extract_answer` + `is_equivalent`. Equivalence runs an exact pure-Python fast path
first and sends only LaTeX it cannot decide to math-verify, inside a worker process bounded in
wall-clock time and memory (see `guard`), so grading is safe on adversarial model output and
from any thread. Importing this package imports neither sympy nor math-verify.
"""

from __future__ import annotations

import logging

from oreo_envs.verifiers.equivalence import is_equivalent
from oreo_envs.verifiers.extract import (
    MODES,
    check_mode,
    check_style,
    extract_answer,
    gsm8k_gold,
    has_final_answer,
    math_gold,
)

__all__ = [
    "MODES",
    "check_mode",
    "extract_answer",
    "grade",
    "gsm8k_gold",
    "has_final_answer",
    "is_equivalent",
    "math_gold",
]

logger = logging.getLogger(__name__)


def grade(
    response: str,
    gold: str,
    *,
    style: str = "auto",
    timeout: float = 2.0,
    mode: str = "lenient",
) -> bool:
    """Whether a response's final answer equals the gold answer.

    Args:
        response: A whole model response (or reference solution).
        gold: The gold answer string, e.g. `gsm8k_gold(...)` or a MATH `answer`.
        style: How to find the answer: "gsm8k", "math" or "auto" (see `extract_answer`).
        timeout: Wall-clock seconds math-verify may spend when the fast path cannot decide.
        mode: "strict" (an explicit final answer is required: a marker or an answer phrase) or
            "lenient" (else the last math span, then the last number; see `extract_answer`).

    Returns:
        True when an answer is found and is equivalent to `gold`; False otherwise, including on
        timeouts and errors: response content never makes it raise.

    Raises:
        ValueError: If `style` is not one of "auto", "gsm8k", "math", or `mode` is not
            "strict" or "lenient".
    """
    check_style(style)
    check_mode(mode)
    try:
        answer = extract_answer(response, style=style, mode=mode)
    except Exception:  # adversarial input must never crash an env step
        logger.debug("extract_answer failed", exc_info=True)
        return False
    return answer is not None and is_equivalent(answer, gold, timeout=timeout)
