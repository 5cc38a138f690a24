"""The package layering holds, read from the imports of every module (no import is run)."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def algorithm_names() -> set[str]:
    """The built-in algorithms, from the registry (importing it loads no plug-in)."""
    from oreo_agents.algorithms import ALGORITHMS

    return set(ALGORITHMS)


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


def _about(node: ast.AST, words: tuple[str, ...]) -> bool:
    """Whether a comparison involves a name holding one of ``words`` (``algo``, ``cfg.algo``,
    ``method``; ``strategy``), so that other vocabularies that share a word
    (``src_format != "oreo"``, ``kind == "sample"``) pass."""
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    names += [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)]
    return any(w in n for n in names for w in words)


def name_comparisons(names: set[str], words: tuple[str, ...], home: str) -> list[str]:
    """Comparisons (``==``, ``in``, ``startswith``) of a name-ish variable with one of
    ``names``, in the library, the CLI and the benchmarks but ``home``."""
    found = []
    for folder in ("oreo_agents", "cli", "benchmarks"):
        for path in modules(folder):
            if home in path.relative_to(ROOT).as_posix():
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Compare):
                    consts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
                elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "startswith":
                    consts = [n.value for n in node.args if isinstance(n, ast.Constant)]
                else:
                    continue
                if names & {c for c in consts if isinstance(c, str)} and _about(node, words):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_code_compares_algorithm_names_outside_the_algorithms():
    """The loop, the data and the CLI ask the spec; only `oreo_agents/algorithms/` may name an
    algorithm in a comparison."""
    names = algorithm_names()
    assert {"oreo", "sft", "ppo", "orm"} <= names
    assert name_comparisons(names, ("algo", "method"), "oreo_agents/algorithms/") == []


def test_no_code_compares_strategy_names_outside_the_strategies():
    """`oreo rollout`, its reports and the recipes ask the strategy's spec; only
    `oreo_agents/evaluation/strategies.py` may name a strategy in a comparison."""
    from oreo_agents.evaluation.strategies import STRATEGIES

    names = set(STRATEGIES)
    assert {"greedy", "sample", "best-of-k", "beam"} <= names
    home = "oreo_agents/evaluation/strategies.py"
    assert name_comparisons(names, ("strategy",), home) == []


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


PACKAGES = {"oreo_agents": "oreo_agents", "oreo_envs": "oreo_envs", "oreo_cli": "cli"}
# The import cycles not yet broken: none left; this list may only shrink.
KNOWN_CYCLES: list[set[str]] = []


def module_files() -> dict[str, Path]:
    """Module name -> file, for every module of the three packages (``oreo_cli`` is ``cli/``)."""
    names = {}
    for package, folder in PACKAGES.items():
        for path in modules(folder):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at the top or inside functions (``from pkg
    import submodule`` points at the submodule, not at the package)."""
    names = module_files()

    def resolve(name: str) -> str:
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names
                           else node.module for a in node.names]  # fmt: skip
            else:
                continue
            graph[name] |= {resolve(t) for t in targets if t.split(".")[0] in PACKAGES} - {"", name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other, directly or around (Tarjan's strongly
    connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(group)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [{"a", "b", "c"}]


def test_no_import_cycles_but_the_known_ones():
    found = cycles(import_graph())
    new = [sorted(c) for c in found if c not in KNOWN_CYCLES]
    assert new == [], "modules that import each other (break the cycle)"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert gone == [], "a known cycle is gone: take it off KNOWN_CYCLES"


def test_the_training_loop_imports_no_online_code():
    """Online algorithms reach their driver through the spec (`Algorithm.run_online`); the
    offline loop and what it builds import nothing of `oreo_agents.online`."""
    graph = import_graph()
    for module in ("oreo_agents.training.loop", "oreo_agents.training.build",
                   "oreo_agents.training.config"):  # fmt: skip
        assert graph[module], module  # the graph knows it
        assert not {m for m in graph[module] if m.startswith("oreo_agents.online")}, module


def startup_modules() -> set[str]:
    """Every module loaded once the CLI has started (``from oreo_cli.main import app``), read in
    a fresh interpreter."""
    code = "import sys\nfrom oreo_cli.main import app\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_cli_starts_without_torch():
    """``oreo --help`` and option parsing load no torch, transformers or accelerate: the
    modules the CLI imports when it starts keep those imports inside their functions, so
    every other module may import at its top."""
    started = startup_modules()
    assert "oreo_cli.main" in started
    heavy = {"torch", "transformers", "accelerate", "datasets"}
    assert {m.split(".")[0] for m in started} & heavy == set()


# Top-level packages that a function may import without a comment: each is optional or slow.
OPTIONAL = {
    "vllm": "the vllm extra (GPU machines)",
    "httpx": "the served extra (--backend openai)",
    "peft": "the lora extra",
    "matplotlib": "a dev dependency: only the plots (--plot, the demo's figures) need it",
    "alfworld": "the alfworld extra; its import also has side effects on the process",
    "textworld": "the alfworld extra",
    "fast_downward": "the alfworld extra (through textworld)",
    "math_verify": "slow (sympy): loaded by the verifier worker process, not by the package",
    "huggingface_hub": "not a dependency of ours (transformers brings it); hub.py works without",
    "yaml": "PyYAML is not a dependency: only a YAML config file needs it",
    "datasets": "slow: only tasks read from the hub load it",
    "resource": "Unix only",
    "ctypes": "Linux syscalls (Landlock, prctl) where the platform has them",
}


def unexplained_imports(source: str) -> list[int]:
    """Lines of the imports inside functions that are of no `OPTIONAL` package and carry no
    trailing comment (on any line of the statement) saying why they are not at the top."""
    lines = source.splitlines()
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    commented = {
        t.start[0]
        for t in tokens
        if t.type == tokenize.COMMENT and lines[t.start[0] - 1][: t.start[1]].strip()
    }
    inside = {
        node
        for fn in ast.walk(ast.parse(source))
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    found = []
    for node in inside:
        if isinstance(node, ast.Import):
            tops = {alias.name.split(".")[0] for alias in node.names}
        else:
            tops = {(node.module or "").split(".")[0] if not node.level else ""}
        if tops <= OPTIONAL.keys() or commented & set(range(node.lineno, node.end_lineno + 1)):
            continue
        found.append(node.lineno)
    return sorted(found)


def test_unexplained_imports_are_found():
    source = (
        "import os\n"
        "def f():\n"
        "    import json\n"
        "    import torch  # after the model check\n"
        "    from vllm import LLM\n"
        "    def g():\n"
        "        from oreo_envs import hub\n"
        "    from . import sibling\n"
    )
    assert unexplained_imports(source) == [3, 7, 8]


def test_imports_inside_functions_have_a_reason():
    """Imports sit at the top of every module the CLI does not load when it starts; one inside a
    function guards an optional dependency (`OPTIONAL`) or says on its line why it waits (a
    check that must fail before torch loads, a cycle, a path that must not load it)."""
    started = startup_modules()
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for name, path in module_files().items()
        if name not in started
        for line in unexplained_imports(path.read_text())
    ]
    assert found == [], "move these imports to the module's top, or say on the line why not"
