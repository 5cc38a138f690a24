"""The package layering holds, read from the imports of every module (no import is run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALGORITHM_NAMES = {"oreo", "oreo-step", "oreo-response", "sft", "rft", "dpo", "kto", "rcrl", "orm"}


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules(folder)
        for name in sorted(imports(path))
        if name.split(".")[0] in forbidden or name.startswith(forbidden)
    ]


def test_envs_import_nothing_from_agents_or_the_cli():
    assert offenders("oreo_envs", ("oreo_agents", "oreo_cli")) == []


def test_losses_import_no_models():
    banned = ("oreo_agents.models", "oreo_agents.generation", "transformers", "oreo_cli")
    assert offenders("oreo_agents/losses", banned) == []


def test_the_library_never_imports_the_cli():
    assert offenders("oreo_agents", ("oreo_cli",)) == []


def _about_algos(node: ast.AST) -> bool:
    """Whether a comparison involves an algorithm-ish name (``algo``, ``cfg.algo``, ``method``),
    so that other vocabularies that share a word (``src_format != "oreo"``) pass."""
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    names += [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)]
    return any("algo" in n or "method" in n for n in names)


def test_no_code_compares_algorithm_names_outside_the_algorithms():
    """The loop, the data and the CLI ask the spec; only `oreo_agents/algorithms/` may name an
    algorithm in a comparison."""
    found = []
    for folder in ("oreo_agents", "cli", "benchmarks"):
        for path in modules(folder):
            if "algorithms" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Compare):
                    consts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
                elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "startswith":
                    consts = [n.value for n in node.args if isinstance(n, ast.Constant)]
                else:
                    continue
                if ALGORITHM_NAMES & {c for c in consts if isinstance(c, str)} and _about_algos(
                    node
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_code_cites_only_files_in_the_repository():
    """A document named in code or packaging (``docs/architecture.md``, ``README.md``) exists in
    the repository: the design lives beside the code, not in a folder outside it."""
    import re

    cited = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b")
    missing = []
    for path in [*ROOT.glob("*.toml"), *(p for f in ("oreo_envs", "oreo_agents", "cli")
                                          for p in modules(f))]:  # fmt: skip
        for name in cited.findall(path.read_text()):
            if not (ROOT / name).exists():
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert missing == []
