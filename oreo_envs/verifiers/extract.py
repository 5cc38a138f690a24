"""Find the final answer in a model response or a reference solution.

Every function here scans its input in linear time with `str.rfind`/`str.find` and short
loops, never a backtracking regex over the whole response, so a megabyte of adversarial output
costs milliseconds. Only the first `MAX_ANSWER_CHARS`-ish slice after a marker is kept.
"""

from __future__ import annotations

import re

from oreo_envs.verifiers.equivalence import fast_equivalent
from oreo_envs.verifiers.normalize import MAX_ANSWER_CHARS, normalize, sanitize, squash

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
    "the answer is X" / "final answer: X" phrase, such as the closing "Final Answer: The final
    answer is X. I hope it is correct." of Minerva-style prompts. Several boxes at the end of
    a response joined only by "and", "or", commas or "x =" (one per solution), and several math
    spans so joined in the phrase's sentence, are one set answer `\\{a, b\\}`: see
    `_final_boxes`. That is all in "strict" mode (an explicit final answer is required, as the
    OREO paper's prompts ask: the mode for training rewards). In "lenient" mode (models that
    do not box their answers), a response without either is answered by its last math span
    (`$...$`, `\\(...\\)`, `\\[...\\]`) that reads as math, not prose, and then by its last
    number.

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
    hashes, boxed = _after_hashes(text), _final_boxes(text)
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
    found = _box_at(text, start)
    return (found[0], start) if found is not None else None


def _box_at(text: str, start: int) -> tuple[str, int] | None:
    """Content and end (one past the box) of the box command at `start`, or None when it is
    unclosed, empty-handed or another command such as `\\boxedfoo`."""
    i = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    if i < len(text) and text[i].isalpha():
        return None  # some other command, e.g. \boxedfoo
    j = i
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "{":
        content = _braced(text, j)
        return (content, j + len(content) + 2) if content is not None else None
    if j == i:
        return None
    end = j
    while end < len(text) and not text[end].isspace() and text[end] != "$":
        end += 1
    return (text[j:end], end) if end > j else None


_MAX_BOXES = 16
_MAX_GAP_CHARS = 80
# Text between two boxes that makes them one answer: "and", "or", commas, "x =", spacing and
# math delimiters. `\text{ and }` is read as its words; anything else ("then", ".") is not.
_GAP_TEXT = re.compile(r"\\(?:text|mbox|textbf|mathrm)\s*\{([^{}]*)\}")
_GAP_NOISE = re.compile(r"\$|\\[()\[\]]|\\(?:quad|qquad|[,;:! ])|~|\*\*|&")
_GAP_NAME = r"(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[A-Za-z0-9]+\}?)?"
_GAP = re.compile(
    rf"(?:\s|,|;|\band\b|\bor\b|{_GAP_NAME}\s*=|\(\s*{_GAP_NAME}(?:\s*,\s*{_GAP_NAME})+\s*\)\s*=)*"
)


def _final_boxes(text: str) -> tuple[str, int] | None:
    """The boxed answer, with the position of the last box: the last box's content, or a set
    `\\{a, b\\}` when the response ends with several boxes joined only by connecting text.

    Chat models box each root of "find all solutions" separately (`$x = \\boxed{2}$ and
    $x = \\boxed{-3}$`), where the gold lists them together (`2, -3`). Only the trailing run of
    boxes counts, and only when the text between them connects answers (`_joins`): a box for
    an intermediate value followed by "so the answer is \\boxed{10}" leaves the last box alone.
    Boxes of one value (`\\boxed{15\\frac{39}{40}}, or \\boxed{\\frac{639}{40}}`) count once;
    several different values stay a set, which never equals a single gold value, so boxing
    two candidates does not earn the reward for one of them. The set is written with `\\{\\}`
    rather than as a bare list, where `2, 500` would read as two thousand five hundred.
    """
    last = _last_boxed(text)
    if last is None or not last[0].strip():
        return last
    contents, start = [last[0]], last[1]
    while len(contents) < _MAX_BOXES:
        previous = max(text.rfind(command, 0, start) for command in _BOX_COMMANDS)
        if previous < 0:
            break
        found = _box_at(text, previous)
        if found is None or not found[0].strip() or not _joins(text, found[1], start):
            break
        contents.append(found[0])
        start = previous
    return _as_set(contents[::-1]), last[1]


def _joins(text: str, end: int, start: int) -> bool:
    """Whether `text[end:start]`, the text between two answers, only connects them."""
    if end > start or start - end > _MAX_GAP_CHARS:
        return False
    gap = _GAP_NOISE.sub(" ", _GAP_TEXT.sub(r" \1 ", text[end:start]))
    return _GAP.fullmatch(gap.lower()) is not None


def _as_set(answers: list[str]) -> str:
    """One answer, or the set `\\{a, b\\}` of several after dropping repeats of a value (those
    the exact fast path finds equal: an undecided pair stays two elements)."""
    kept: list[str] = []
    for answer in reversed(answers):
        answer = _tidy(answer)
        if answer and not any(_same_value(answer, other) for other in kept):
            kept.append(answer)
    kept.reverse()
    if len(kept) <= 1:
        return kept[0] if kept else ""
    return "\\{" + ", ".join(kept) + "\\}"


def _same_value(a: str, b: str) -> bool:
    if squash(a) == squash(b):
        return True
    if len(a) > MAX_ANSWER_CHARS or len(b) > MAX_ANSWER_CHARS:
        return False
    try:
        return fast_equivalent(normalize(a), normalize(b)) is True
    except Exception:  # extraction must never raise on model output
        return False


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
    """What follows the last "the answer is" / "final answer:" phrase, up to the sentence end.

    Covers the Minerva-style closing line that MATH evaluations prompt for, "Final Answer: The
    final answer is $N$. I hope it is correct." (Lewkowycz et al. 2022): the sentence ends at
    a period followed by a space or the end (not the point of `3.5`), at a line break, or at
    "I hope it is correct"; a period inside `$...$` ends nothing. The first math span of the
    sentence is the answer, or a set of all of them when they are joined only by connecting
    text (`$2$ and $-3$`, as `_final_boxes` reads boxes). A phrase that ends its line takes a
    display-math answer on the lines below (`The final answer is\n$$\n5\n$$`).
    """
    lowered = text.lower()
    # Overlapping phrases ("the answer is", "answer is") end at the same place: the end decides.
    end = max(
        (start + len(phrase) for phrase in _PHRASES if (start := lowered.rfind(phrase)) >= 0),
        default=-1,
    )
    if end < 0:
        return None
    rest = text[end : end + _PHRASE_WINDOW].lstrip(" \t:*")
    if rest.startswith(("\n", "\r")):
        below = rest.lstrip()
        rest = below if below.startswith(("$$", "\\[")) else ""
    hope = rest.lower().find(_HOPE)
    if hope >= 0:
        rest = rest[:hope]
    sentence, spans = _sentence(rest)
    if not spans:
        return sentence, end
    joined = all(_joins(sentence, spans[k][2], spans[k + 1][1]) for k in range(len(spans) - 1))
    if len(spans) > 1 and joined:
        return _as_set([content for content, _, _ in spans]), end
    return spans[0][0], end


_HOPE = "i hope it is correct"
_SPAN_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _sentence(text: str) -> tuple[str, list[tuple[str, int, int]]]:
    """The first sentence of `text` and its math spans as (content, start, end) where
    `text[start:end]` is the span with its delimiters. An unclosed delimiter is plain text."""
    spans: list[tuple[str, int, int]] = []
    i = 0
    while i < len(text):
        char = text[i]
        opened = False
        for open_, close in _SPAN_DELIMITERS:
            if text.startswith(open_, i):
                stop = text.find(close, i + len(open_))
                while stop > 0 and close == "$" and text[stop - 1] == "\\":
                    stop = text.find(close, stop + 1)  # `\$36`: a dollar sign, not a delimiter
                inline = open_ in ("$", "\\(")
                if stop >= 0 and not (inline and "\n" in text[i:stop]):
                    spans.append((text[i + len(open_) : stop], i, stop + len(close)))
                    i, opened = stop + len(close), True
                break
        if opened:
            continue
        if char == "\\":
            i += 2  # an escaped character such as \$ or \.
            continue
        if char in "\r\n" or (char == "." and (i + 1 == len(text) or text[i + 1].isspace())):
            break
        i += 1
    return text[:i], spans


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
