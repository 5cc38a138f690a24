"""ALFWorld's text engine (TextWorld's PDDL backend), rebuilt for repeated resets and fast steps.

TextWorld's ``PddlEnv`` plays an ALFWorld game by translating the PDDL problem with fast-downward,
deriving every text (room descriptions, feedback, the admissible commands) from a context-sensitive
grammar, and asking the planner library which operators apply. It does so slowly: a load plus a
reset translates the same problem four times, and every derivation re-parses its grammar string
with a PEG parser and deep-copies its context at each symbol.

`AlfredEngine` drives the same pieces (TextWorld's grammar model and logic state, fast-downward's
translator and library, ALFWorld's name demangler) with three changes that leave every text
identical: a game's translation, entity names and initial facts are computed once and cached
(`load_game`; the translation also on disk, `translate`, since every `oreo rollout` is a new
process and the translation is most of a load), grammar strings and fact queries are parsed once
per process, and derivations treat the parsed symbols as immutable and pass contexts along
instead of copying them.

The heavy imports (textworld, fast_downward, alfworld) happen on first use, inside
`engine_imports`, which also undoes their side effects on the caller's process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import json
import os
import re
import sys
import tempfile
import zlib
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from oreo_envs.alfworld.grammar import GameFileError, evaluate
from oreo_envs.core import cache_dir, write_cache_file

INSTALL_HINT = "pip install 'oreo[alfworld]'"
# The engine's intro starts with this banner line; the env shows the room and task only.
_BANNER = re.compile(r"^\s*-= .* =-\s*\n+")
# Games kept in memory per process: a translated ALFWorld problem holds a few MB.
GAME_CACHE_SIZE = 8
# Bump when what `translate` stores changes; the key also holds fast-downward's version.
_SAS_CACHE_VERSION = 2  # 2: the translation as text (1 was a pickle, which runs code)


@contextlib.contextmanager
def _contained_side_effects():
    """Undo what importing or running the engine does to the process.

    fast-downward's translator overwrites ``sys.argv`` and prints a warning on stdout for every
    fact a problem states twice (many train games do: hundreds of lines in a collect's
    terminal); ``import alfworld`` creates ``$ALFWORLD_DATA`` (default ``~/.cache/alfworld``)
    and sets that variable. Pointing the variable at an existing temporary folder for the
    import keeps the user's home untouched; the translator's stdout is dropped.
    """
    argv = list(sys.argv)
    saved = os.environ.get("ALFWORLD_DATA")
    os.environ["ALFWORLD_DATA"] = tempfile.gettempdir()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.argv[:] = argv
        if saved is None:
            os.environ.pop("ALFWORLD_DATA", None)
        else:
            os.environ["ALFWORLD_DATA"] = saved


@functools.cache
def engine_imports() -> dict[str, Any]:
    """Import the optional engine packages once, with their side effects contained.

    Raises:
        ImportError: The ``alfworld`` extra is not installed (the message names it).
    """
    with _contained_side_effects():
        try:
            import fast_downward
            import textworld.logic
            from alfworld.agents.utils.misc import Demangler
            from textworld.envs.pddl import logic as pddl_logic
            from textworld.envs.pddl import textgen
            from textworld.generator.game import EntityInfo
        except ImportError as e:
            raise ImportError(
                f"ALFWorld envs need the alfworld extra ({e}); install it with: {INSTALL_HINT}"
            ) from e
    return {
        "fast_downward": fast_downward,
        "logic": textworld.logic,
        "pddl_logic": pddl_logic,
        "textgen": textgen,
        "EntityInfo": EntityInfo,
        "Demangler": Demangler,
    }


def alfworld_logic_files() -> tuple[Path, Path]:
    """Paths of the ALFWorld domain (``alfred.pddl``) and grammar (``alfred.twl2``) shipped with
    the installed alfworld package, found without importing it (the import has side effects)."""
    spec = importlib.util.find_spec("alfworld")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"ALFWorld envs need the alfworld extra; install it with: {INSTALL_HINT}")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data / "alfred.pddl", data / "alfred.twl2"


# --- parsing, memoized -------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _symbols(text: str) -> tuple:
    """The grammar symbols of a string (parsed once; the symbols are never mutated here)."""
    return tuple(engine_imports()["textgen"]._parse_and_convert(text, rule_name="symbols"))


@functools.lru_cache(maxsize=1024)
def _query(expression: str):
    return engine_imports()["logic"].Rule.parse_conjunctive_query(expression)


@functools.lru_cache(maxsize=4)
def _game_logic(domain: str, grammar: str):
    with _contained_side_effects():
        return engine_imports()["pddl_logic"].GameLogic(domain=domain, grammar=grammar)


# --- grammar derivation ------------------------------------------------------------------------


def _matches(state, expression: str, mapping) -> list:
    return list(state.all_assignments(_query(expression), mapping))


def _bind(ctx: dict, mapping) -> dict:
    """A context extended with one query match (new dicts: contexts are shared, never edited)."""
    infos = ctx["entity_infos"]
    return {
        **ctx,
        "variables": {**ctx["variables"], **{p.name: infos[v.name] for p, v in mapping.items()}},
        "mapping": {**ctx["mapping"], **mapping},
    }


def derive(grammar, start: str, ctx: dict) -> str:
    """Expand ``start`` with TextWorld's context-sensitive grammar, as
    ``ContextSensitiveGrammar.derive`` does, without re-parsing or copying.

    The expansion is a stack of (symbol, context) pairs: a nonterminal becomes the right-hand side
    of its first rule whose condition holds; ``{expr | query}`` becomes one copy of ``expr`` per
    match of the query; ``{python}`` is evaluated with the context's variables; ``[...]`` lists
    its expansions with the grammar's separators.
    """
    tg = engine_imports()["textgen"]
    stack = [(symbol, ctx) for symbol in reversed(_symbols(start))]
    out: list[str] = []
    while stack:
        symbol, ctx = stack.pop()
        if isinstance(symbol, tg.TerminalSymbol):
            out.append(str(symbol.symbol))
        elif isinstance(symbol, tg.NonterminalSymbol):
            stack += [(s, ctx) for s in reversed(_expand_rule(grammar, symbol.symbol, ctx))]
        elif isinstance(symbol, tg.ListSymbol):
            items = _expand_special(symbol.symbol, ctx)
            stack += reversed(_display_list(items, ctx, tg))
        else:
            stack += reversed(_expand_special(symbol, ctx))
    return "".join(out)


def _expand_rule(grammar, name: str, ctx: dict) -> list:
    rules = grammar._rules.get(name)
    if not rules:
        raise engine_imports()["textgen"].CSGUnknownSymbolError(name)
    state, mapping = ctx["state"], ctx["mapping"]
    for rule in rules:
        if not rule.condition or _matches(state, rule.condition, mapping):
            return rule.rhs
    raise IndexError(f"no rule for #{name}# applies")  # TextWorld fails the same way (rules[0])


def _expand_special(symbol, ctx: dict) -> list[tuple]:
    """Expand a conditional or eval symbol into (symbol, context) pairs."""
    tg = engine_imports()["textgen"]
    if isinstance(symbol, tg.EvalSymbol):
        value = evaluate(symbol.expression, ctx["variables"])
        return [(tg.TerminalSymbol(value), ctx)]
    if isinstance(symbol, tg.ConditionalSymbol):
        if not symbol.given:
            return [(symbol.expression, ctx)]
        matches = _matches(ctx["state"], symbol.given, ctx["mapping"])
        return [(symbol.expression, _bind(ctx, m)) for m in matches]
    raise NotImplementedError(f"unknown grammar symbol {symbol!r}")


def _display_list(items: list[tuple], ctx: dict, tg) -> list[tuple]:
    if not items:
        return [(tg.NonterminalSymbol("list_empty"), ctx)]
    if len(items) == 1:
        return items
    sep = (tg.NonterminalSymbol("list_separator"), ctx)
    last = (tg.NonterminalSymbol("list_last_separator"), ctx)
    joined = [x for item in items[:-1] for x in (item, sep)][:-1]
    return joined + [last, items[-1]]


# --- games -------------------------------------------------------------------------------------


@dataclass
class AlfredGame:
    """What a game's episodes share: its logic, its translation and its named entities."""

    path: str
    data: dict
    logic: Any
    task: Any
    sas: str
    name2type: dict
    init_facts: list
    entity_infos: dict
    sas_replan: str | None = None


def read_game(path: str | os.PathLike) -> dict:
    """Read a ``game.tw-pddl`` file. Files without ``pddl_domain`` / ``grammar`` (oreo's bundled
    games) get ALFWorld's, with the game's ``goal`` written into the grammar's task line.

    Raises:
        GameFileError: The file is not JSON or lacks the PDDL problem.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GameFileError(f"cannot read ALFWorld game file {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("pddl_problem"), str):
        raise GameFileError(f"{path} is not an ALFWorld game file (no 'pddl_problem')")
    if "pddl_domain" not in data or "grammar" not in data:
        domain, grammar = alfworld_logic_files()
        data.setdefault("pddl_domain", domain.read_text())
        goal = data.get("goal", "UNKNOWN GOAL")
        data.setdefault("grammar", grammar.read_text().replace("UNKNOWN GOAL", goal))
    return data


def _initial_facts(lib, logic, task, sas: str, mods: dict) -> tuple[dict, list]:
    """Facts of a freshly loaded problem, in the order TextWorld's ``PddlState`` adds them."""
    fd, lg = mods["fast_downward"], mods["logic"]
    name2type = {o.name: o.type_name for o in task.objects}
    for t in task.types:
        with contextlib.suppress(ValueError):  # already known (the logic is shared)
            logic.types.add(lg.Type(t.name, t.supertype_names))
    facts = []
    for atom in task.init:
        if isinstance(atom, fd.translate.pddl.conditions.Atom) and atom.predicate != "=":
            args = [lg.Variable(a, name2type[a]) for a in atom.args]
            facts.append(lg.Proposition(atom.predicate, args))
        elif isinstance(atom, fd.translate.pddl.f_expression.Assign):
            name = f"{atom.expression.value}"
            if atom.fluent.symbol != "total-cost" and not str.isdigit(name):
                args = [lg.Variable(a, name2type[a]) for a in atom.fluent.args]
                facts.append(lg.Proposition(name, args))
    lib.load_sas(sas.encode("utf-8"))
    atoms = (mods["pddl_logic"].Atom * lib.get_state_size())()
    lib.get_state(atoms)
    facts += [f for f in (a.get_fact(name2type) for a in atoms) if not f.is_negation]
    return name2type, facts


_GAMES: OrderedDict[tuple, AlfredGame] = OrderedDict()


def sas_cache_dir() -> Path:
    """Where `translate` keeps translations: ``$XDG_CACHE_HOME/oreo/alfworld/sas`` (default
    ``~/.cache/oreo/alfworld/sas``), about 80 kB per game."""
    return cache_dir() / "alfworld" / "sas"


@functools.cache
def _fast_downward_version() -> str:
    try:
        return version("fast_downward_textworld")
    except PackageNotFoundError:
        return "unknown"


def translate(domain: str, problem: str) -> tuple[Any, str]:
    """fast-downward's ``pddl2sas(domain, problem)``: ``(task, sas)``, the SAS text kept on disk.

    The translation is most of a game's first load (cold resets went from 0.84/s to 3.08/s with
    it cached: README), and a benchmark resets the same games in many processes (one per
    rollout), so the SAS text is stored compressed under `sas_cache_dir`, keyed by a hash of the
    domain, the problem and fast-downward's version. Only text is stored: the parsed ``task`` is
    rebuilt from the PDDL (parsing is cheap; translating is not), so a file planted in the cache
    can at worst give a wrong translation of a game, never run code. A missing, stale or damaged
    entry is translated again; a cache that cannot be written (read-only home) only costs the
    translation next time. Call inside `_contained_side_effects`.
    """
    parts = [str(_SAS_CACHE_VERSION), _fast_downward_version(), domain, problem]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    path = sas_cache_dir() / key[:2] / f"{key}.sas.z"
    try:
        sas = zlib.decompress(path.read_bytes()).decode("utf-8")
        if sas.startswith("begin_version"):
            return _parse_task(domain, problem), sas
    except (OSError, zlib.error, UnicodeDecodeError):  # none yet, or a damaged one
        pass
    task, sas = engine_imports()["fast_downward"].pddl2sas(domain, problem)
    write_cache_file(path, zlib.compress(sas.encode("utf-8"), 1))
    return task, sas


def _parse_task(domain: str, problem: str) -> Any:
    """The normalized PDDL task, as ``pddl2sas`` builds it before translating. Call inside
    `_contained_side_effects`: the translator's options module parses ``sys.argv`` on import."""
    sys.argv = ["translate.py", "domain", "task"]
    from fast_downward.translate import normalize
    from fast_downward.translate.pddl_parser import lisp_parser, parsing_functions

    domain_pddl = lisp_parser.parse_nested_list(domain.split("\n"))
    problem_pddl = lisp_parser.parse_nested_list(problem.split("\n"))
    task = parsing_functions.parse_task(domain_pddl, problem_pddl)
    normalize.normalize(task)
    return task


def load_game(path: str | os.PathLike, lib) -> AlfredGame:
    """Load (or fetch from the per-process cache) a game, translated once.

    Raises:
        GameFileError: The file cannot be read or its PDDL does not translate.
    """
    path = str(path)
    try:
        key = (os.path.abspath(path), os.stat(path).st_mtime_ns)
    except OSError as e:
        raise GameFileError(f"cannot read ALFWorld game file {path}: {e}") from None
    if key in _GAMES:
        _GAMES.move_to_end(key)
        return _GAMES[key]
    mods = engine_imports()
    data = read_game(path)
    try:
        with _contained_side_effects():
            logic = _game_logic(data["pddl_domain"], data["grammar"])
            task, sas = translate(data["pddl_domain"], data["pddl_problem"])
            name2type, facts = _initial_facts(lib, logic, task, sas, mods)
    except (Exception, SystemExit) as e:  # the translator exits on bad PDDL
        raise GameFileError(f"cannot load ALFWorld game {path}: {type(e).__name__}: {e}") from None
    infos = {}
    for fact in facts:
        for v in fact.arguments:
            infos.setdefault(v.name, mods["EntityInfo"](v.name, v.type))
    demangler = mods["Demangler"](game_infos=infos, shuffle=False)
    for info in infos.values():
        info.name = demangler.demangle_alfred_name(info.id)
        info.definite, info.indefinite = "the", "a"
    game = AlfredGame(path, data, logic, task, sas, name2type, facts, infos)
    _GAMES[key] = game
    while len(_GAMES) > GAME_CACHE_SIZE:
        _GAMES.popitem(last=False)
    return game


# --- the engine --------------------------------------------------------------------------------


class AlfredEngine:
    """One ALFWorld game being played: load a game file, reset, step with text commands.

    Each engine owns a private copy of fast-downward's library (its planner state is global to
    the library), so several engines can live in one process.
    """

    def __init__(self):
        mods = engine_imports()
        self._mods = mods
        self._lib = mods["fast_downward"].load_lib()
        self.game: AlfredGame | None = None
        self._state = None
        self._commands: dict[str, Any] = {}
        self.admissible_commands: list[str] = []
        self.won = False

    def load(self, path: str | os.PathLike) -> AlfredGame:
        """Load a game file (cached per process); call `reset` next."""
        self.game = load_game(path, self._lib)
        return self.game

    @property
    def walkthrough(self) -> list[str]:
        """The game's winning command sequence (its stored walkthrough, else the planner's)."""
        assert self.game is not None
        stored = self.game.data.get("walkthrough")
        return list(stored) if stored else self.replan_from_start()

    def reset(self) -> str:
        """Start the loaded game over; returns the intro text (banner included)."""
        game = self.game
        if game is None:
            raise RuntimeError("load a game before reset()")
        pddl_logic = self._mods["pddl_logic"]
        # A PddlState built from the cached translation, as PddlState.__init__ builds one.
        state = pddl_logic.PddlState.__new__(pddl_logic.PddlState)
        state._facts, state._vars_by_name = defaultdict(set), {}
        state._vars_by_type, state._var_counts = defaultdict(set), Counter()
        state._logic, state.downward_lib = game.logic, self._lib
        state.pddl_problem, state.task, state.sas = game.data["pddl_problem"], game.task, game.sas
        state.sas_replan = game.sas_replan
        state._actions = {a.name: a for a in game.task.actions}
        state.name2type = game.name2type
        self._lib.load_sas(game.sas.encode("utf-8"))
        state.add_facts(game.init_facts)
        self._state = state
        text = derive(game.logic.grammar, "#intro#", self._context({}, {}))
        self._refresh()
        return text

    def step(self, command: str) -> str:
        """Apply a command; an inadmissible one changes nothing and reads "Nothing happens."."""
        action = self._commands.get(command.strip())
        if action is None:  # the state is unchanged, and so are the admissible commands
            return "Nothing happens."
        self._state.apply(action)
        text = derive(self.game.logic.grammar, action.feedback_rule, self._action_context(action))
        self._refresh()
        return text

    def replan_from_start(self) -> list[str]:
        """The planner's solution from the initial state (for games without a walkthrough).
        Restarts the game."""
        game = self.game
        with _contained_side_effects():
            if game.sas_replan is None:
                fd = self._mods["fast_downward"]
                _, game.sas_replan = fd.pddl2sas(
                    game.data["pddl_domain"], game.data["pddl_problem"], optimize=True
                )
            self.reset()
            self._lib.load_sas_replan(game.sas_replan.encode("utf-8"))
            plan = self._state.replan(game.entity_infos)
        self.reset()
        return plan

    def facts(self) -> list:
        """The current state's facts with ALFWorld's readable names (for alfworld's expert)."""
        lg, infos = self._mods["logic"], self.game.entity_infos
        return [
            lg.Proposition(f.name, [lg.Variable(infos[v.name].name, v.type) for v in f.arguments])
            for f in self._state.facts
        ]

    def _context(self, variables: dict, mapping: dict) -> dict:
        return {
            "state": self._state,
            "facts": (),  # TextWorld passes the fact list; no ALFWorld rule reads it
            "variables": variables,
            "mapping": mapping,
            "entity_infos": self.game.entity_infos,
        }

    def _action_context(self, action) -> dict:
        infos = self.game.entity_infos
        variables = {p.name: infos[v.name] for p, v in action.mapping.items()}
        return self._context(variables, action.mapping)

    def _refresh(self) -> None:
        """Recompute the admissible commands and the win flag, as PddlEnv._gather_infos does."""
        names = {k: info.name for k, info in self.game.entity_infos.items()}
        grammar = self.game.logic.grammar
        commands: dict[str, Any] = {}
        for action in self._state.all_applicable_actions():
            action.command_template = derive(
                grammar, action.command_template, self._action_context(action)
            )
            commands.setdefault(action.format_command(names), action)
        self._commands = commands
        self.admissible_commands = sorted(commands)
        self.won = bool(self._state.check_goal())


def strip_banner(text: str) -> str:
    """The intro without TextWorld's ``-= Welcome to TextWorld, ALFRED! =-`` line."""
    return _BANNER.sub("", text, count=1).strip()
