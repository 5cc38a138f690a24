"""Find the final answer in a model response or a reference solution.

Every function here scans its input in linear time with `str.rfind`/`str.find` and short
loops, never a backtracking regex over the whole response, so a megabyte of adversarial output
costs milliseconds. Only the first `MAX_ANSWER_CHARS`-ish slice after a marker is kept.
"""

from __future__ import annotations

import re

from oreo_envs.verifiers.normalize import sanitize

STYLES = ("auto", "gsm8k", "math")
MODES = ("strict", "lenient")
_BOX_COMMANDS = ("\\boxed", "\\fbox")
# Phrases are matched lower-cased; the one that occurs last wins, the longest on a tie.
_PHRASES = ("final answer is", "final answer:", "the answer is", "answer is", "answer:")
_PHRASE_WINDOW = 300
_NUMBER_CHARS = frozenset("0123456789.,")
_MAX_NUMBER_CHARS = 256


def extract_answer(text: str, *, style: str = "auto", mode: str = "lenient") -> str | None:
    """The final answer in a response, as a stripped string.

    Tries, in order: the style's marker (`#### N` for "gsm8k", the last `\\boxed{...}` or
    `\\fbox{...}` for "math", whichever comes later for "auto"; the other marker second), then a
    "the answer is X" / "final answer: X" phrase. That is all in "strict" mode (an explicit final
    answer is required, as the OREO paper's prompts ask: the mode for training rewards). In
    "lenient" mode (models that do not box their answers), a response without either is
    answered by its last math span (`$...$`, `\\(...\\)`, `\\[...\\]`) that reads as math,
    not prose, and then by its last number.

    Args:
        text: A model response or a reference solution.
        style: "gsm8k", "math" or "auto".
        mode: "strict" or "lenient" (above).

    Returns:
        The answer without surrounding `$`, `**` or a trailing period, e.g. `"\\frac{1}{2}"` or
        `"1,000"`; None when nothing is found.

    Raises:
        ValueError: If `style` is not one of "auto", "gsm8k", "math", or `mode` is not one of
            "strict", "lenient".
    """
    check_style(style)
    check_mode(mode)
    if not isinstance(text, str):
        return None
    text = sanitize(text)
    hashes, boxed = _after_hashes(text), _last_boxed(text)
    if style == "gsm8k":
        markers = [hashes, boxed]
    elif style == "math":
        markers = [boxed, hashes]
    else:
        markers = sorted([hashes, boxed], key=lambda found: found[1] if found else -1)[::-1]
    for found in markers:
        answer = _tidy(found[0]) if found is not None else ""
        if answer:
            return answer
    # The phrase and number scans are only paid for responses without a marker.
    scans = [_phrase_answer] + ([_last_math_span, _last_number] if mode == "lenient" else [])
    for scan in scans:
        found = scan(text)
        answer = _tidy(found[0]) if found is not None else ""
        if answer:
            return answer
    return None


def has_final_answer(text: str, *, style: str = "auto") -> bool:
    """Whether the text contains an explicit final-answer marker for the style.

    "gsm8k": a `####` followed by an answer on the same line (not a markdown heading such as
    `#### Step 1`); "math": a complete, non-empty `\\boxed{...}` as the last box in the text (an
    unclosed last box means the answer is still being written); "auto": either.

    Raises:
        ValueError: If `style` is not one of "auto", "gsm8k", "math".
    """
    check_style(style)
    if not isinstance(text, str):
        return False
    text = sanitize(text)
    markers = []
    if style in ("gsm8k", "auto"):
        markers.append(_after_hashes(text))
    if style in ("math", "auto"):
        markers.append(_last_boxed(text))
    return any(found is not None and _tidy(found[0]) for found in markers)


def gsm8k_gold(answer_field: str) -> str:
    """The final answer of a GSM8K `answer` field: the stripped text after the last `####`.

    Raises:
        ValueError: If the field has no `####`.
    """
    start = answer_field.rfind("####")
    if start < 0:
        raise ValueError("a GSM8K answer field must contain '#### <answer>'")
    return answer_field[start + 4 :].strip()


def math_gold(solution: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`) in a MATH solution, or None."""
    found = _last_boxed(solution)
    return found[0].strip() if found is not None else None


def check_style(style: str) -> None:
    """Raise ValueError unless `style` is one of `STYLES`."""
    if style not in STYLES:
        raise ValueError(f"unknown answer style {style!r}; expected one of {STYLES}")


def check_mode(mode: str) -> None:
    """Raise ValueError unless `mode` is one of `MODES`."""
    if mode not in MODES:
        raise ValueError(f"unknown grading mode {mode!r}; expected one of {MODES}")


_SPAN_ENDS = (("$", "$"), ("\\)", "\\("), ("\\]", "\\["))
_MAX_SPAN_CHARS = 400


def _last_math_span(text: str) -> tuple[str, int] | None:
    """The content of the last `$...$` / `\\(...\\)` / `\\[...\\]` span, when it reads as math:
    a `$5 and $` between two prices is prose (two words in a row outside `\\text{}`)."""
    best = None
    for close, open_ in _SPAN_ENDS:
        end = text.rfind(close)
        while close == "$" and end > 0 and text[end - 1] == "$":
            end -= 1  # the closing $$ of a display span
        if end < 0:
            continue
        start = text.rfind(open_, max(0, end - _MAX_SPAN_CHARS), end)
        if close == "$":
            while start > 0 and text[start - 1] == "$":
                start -= 1
        if start < 0 or (best is not None and end <= best[1]):
            continue
        content = text[start + len(open_) : end].strip("$")
        if content.strip() and not _PROSE.search(_TEXT_COMMAND.sub("", content)):
            best = (content, end)
    return best


_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")
_TEXT_COMMAND = re.compile(r"\\(?:text|mathrm|mbox|textbf)\{[^{}]*\}|\\[A-Za-z]+")


def _after_hashes(text: str) -> tuple[str, int] | None:
    """Rest of the line after the last `####`, with its position.

    A line that starts with a letter is a markdown heading (`#### Step 2`), not an answer.
    """
    start = text.rfind("####")
    if start < 0:
        return None
    end = text.find("\n", start)
    line = text[start + 4 : end if end >= 0 else len(text)].lstrip("#").strip()
    return (line, start) if line and not line[0].isalpha() else None


def _last_boxed(text: str) -> tuple[str, int] | None:
    """Content of the last `\\boxed{...}`/`\\fbox{...}` (or `\\boxed 5`), with its position.

    Only the last box counts: when it is unclosed (a truncated response) there is no boxed
    answer, rather than an earlier one that the model went on to revise.
    """
    start = max(text.rfind(command) for command in _BOX_COMMANDS)
    if start < 0:
        return None
    i = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    if i < len(text) and text[i].isalpha():
        return None  # some other command, e.g. \boxedfoo
    j = i
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "{":
        content = _braced(text, j)
        return (content, start) if content is not None else None
    if j == i:
        return None
    end = j
    while end < len(text) and not text[end].isspace() and text[end] != "$":
        end += 1
    return (text[j:end], start) if end > j else None


def _braced(text: str, open_at: int) -> str | None:
    """Content of the brace group opening at `open_at`; `\\{` and `\\}` do not count."""
    depth, i = 0, open_at
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    return None


def _phrase_answer(text: str) -> tuple[str, int] | None:
    """What follows the last "the answer is" / "final answer:" phrase, up to the sentence end."""
    lowered = text.lower()
    # Overlapping phrases ("the answer is", "answer is") end at the same place: the end decides.
    end = max(
        (start + len(phrase) for phrase in _PHRASES if (start := lowered.rfind(phrase)) >= 0),
        default=-1,
    )
    if end < 0:
        return None
    rest = text[end : end + _PHRASE_WINDOW].lstrip(" :")
    newline = rest.find("\n")
    if newline >= 0:
        rest = rest[:newline]
    if rest.count("$") >= 2:
        first = rest.find("$")
        return rest[first + 1 : rest.find("$", first + 1)], end
    for stop in (". ", ".\t"):
        cut = rest.find(stop)
        if cut >= 0:
            rest = rest[:cut]
    return rest, end


def _last_number(text: str) -> tuple[str, int] | None:
    """The last run of digits (with `,` and `.` inside, and a leading `-`) in the text."""
    last_digit = max(text.rfind(digit) for digit in "0123456789")
    if last_digit < 0:
        return None
    start = last_digit
    floor = max(0, last_digit - _MAX_NUMBER_CHARS)
    while start > floor and text[start - 1] in _NUMBER_CHARS:
        start -= 1
    number = text[start : last_digit + 1].lstrip(".,")
    # A minus sign, but not the hyphen of a range such as "pages 3-5".
    if text[start - 1 : start] == "-" and not text[start - 2 : start - 1].isalnum():
        number = "-" + number
    return number, start


def _tidy(answer: str) -> str:
    """Strip whitespace, `$`, markdown `**` and trailing periods around an answer."""
    # A few rounds undo nesting such as "**$5$**." without a loop whose cost grows with input.
    for _ in range(3):
        answer = answer.strip().strip("$*").strip().rstrip(".")
    return answer.strip()
