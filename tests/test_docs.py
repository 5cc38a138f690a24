"""The documentation holds together: the CLI reference is what its generator writes from the code,
every relative link in README.md and docs/ reaches a file (and a heading, for ``#anchor`` links),
and the README stays a front page."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+).+?\1")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def _cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "tools/cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if match and (fenced is None or match.group(1) == fenced):
            fenced = match.group(1) if fenced is None else None
            continue
        if fenced is None:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: inline markup and punctuation dropped, lower case, each
    space a hyphen (hyphens and underscores kept, runs of them not merged)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link reads as its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(text: str) -> list[str]:
    """The targets of the inline links and images of a Markdown text (code left out)."""
    targets = []
    for line in prose_lines(text):
        targets += LINK.findall(CODE_SPAN.sub("", line))
    return targets


def broken_links(path: Path) -> list[str]:
    """``path``'s relative links whose file, or heading, does not exist."""
    broken = []
    for target in links(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}: {target}"
        if not dest.exists() or not dest.is_relative_to(ROOT):
            broken.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            broken.append(f"{where} (no such heading)")
    return broken


def test_the_cli_reference_is_what_the_generator_writes_now():
    tool = _cli_reference()
    assert (ROOT / "docs/cli.md").read_text() == tool.render(), (
        "docs/cli.md is out of date: run python tools/cli_reference.py"
    )


def test_the_generator_check_fails_on_a_stale_file(tmp_path, capsys):
    tool = _cli_reference()
    stale = tmp_path / "cli.md"
    stale.write_text((ROOT / "docs/cli.md").read_text().replace("--beam-width", "--beam"))
    assert tool.main(["--check"], path=stale) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "run python tools/cli_reference.py" in message
    assert tool.main(["--check"], path=ROOT / "docs/cli.md") == 0


def test_every_relative_link_reaches_a_file_and_heading():
    broken = [b for path in documents() for b in broken_links(path)]
    assert broken == []


def test_the_link_check_finds_a_broken_file_or_heading(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    heading = "Top: the `x` part (v1; 2026)"
    (tmp_path / "a.md").write_text(f"# {heading}\n\n## {heading}\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#top-the-x-part-v1-2026) [ok](a.md#top-the-x-part-v1-2026-1)\n"
        "[web](https://example.org/x.md) `[code](missing.md)`\n"
        "```\n[fenced](missing.md)\n```\n"
        "[gone](missing.md) [bad anchor](a.md#top) [self](#nowhere)\n"
    )
    assert broken_links(page) == [
        "b.md: missing.md (no such file)",
        "b.md: a.md#top (no such heading)",
        "b.md: #nowhere (no such heading)",
    ]


def test_slugs_follow_github():
    assert slug("Loss means over the optimizer batch (issue 40; 2026-12-05)") == (
        "loss-means-over-the-optimizer-batch-issue-40-2026-12-05"
    )
    assert slug("RCRL's collapse: the control text moved the prompt") == (
        "rcrls-collapse-the-control-text-moved-the-prompt"
    )
    assert slug("`oreo rollout`") == "oreo-rollout"
    assert slug("OREO + value@16") == "oreo--value16"


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines"
