"""Ctrl-C in any command: one line (what was kept, how to go on), no traceback, exit 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import sigint_as_in_a_terminal
from oreo_cli.main import app

# A long folder name: a message that rich wrapped at 80 columns would be two lines.
OUT = "runs/" + "a-long-folder-name-" * 3


def interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


# command, its arguments, what it calls (patched to be interrupted), what the line says
COMMANDS = [
    ("collect", ["--env", "oreo/Chain-v0", "--policy", "gold", "--out", OUT],
     "oreo_cli.collect.run", "re-run the same command to resume"),
    ("rollout", ["--env", "oreo/Chain-v0", "--policy", "gold", "--out", OUT + "/r.json"],
     "oreo_cli.rollout.run", "re-run the same command to evaluate again"),
    ("convert", ["in.jsonl", OUT, "--from", "oreo-math"],
     "oreo_agents.data.convert.convert", "re-run the same command to resume"),
    ("convert", [OUT, "out.jsonl", "--from", "oreo"],
     "oreo_agents.data.convert.convert", "re-run the same command to export"),
    ("train", ["--algo", "sft", "--data", "d.jsonl", "--model", "m", "--out", OUT],
     "oreo_agents.training.loop.run_train", "re-run the same command to resume"),
    ("demo", ["--fast", "--out", OUT],
     "oreo_agents.recipes.demo.run_demo", "re-run the same command to resume"),
    ("play", ["oreo/Chain-v0"], "oreo_cli.play.run_play", "nothing to resume"),
]  # fmt: skip


@pytest.mark.parametrize("command, args, target, says", COMMANDS)
def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, tmp_path, command, args, target, says):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(target, interrupt)
    result = CliRunner().invoke(app, [command, *args])
    assert result.exit_code == 130, result.output
    # the last line, whole: what the command printed before (train's settings, the demo's
    # progress display) is above it
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(("interrupted:", "aborted:", "stopped:")), result.output
    assert says in last and "Traceback" not in result.output


def test_ctrl_c_at_the_play_prompt():
    """The real signal, where play waits for input."""
    cmd = [sys.executable, "-m", "oreo_cli", "play", "oreo/Chain-v0"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "80"},
                            preexec_fn=sigint_as_in_a_terminal)  # fmt: skip
    shown = ""
    while not shown.endswith("> ") and proc.poll() is None:
        shown += proc.stdout.read(1)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, shown + rest
    assert rest.strip() == "stopped: play keeps no record; nothing to resume"


class _Importing(type(sys)):
    """A module whose import is interrupted: Ctrl-C while torch and transformers load."""

    def __getattr__(self, name):
        raise KeyboardInterrupt


@pytest.mark.parametrize("when", ["importing", "starting"])
def test_ctrl_c_before_the_command_starts_is_one_line(monkeypatch, capsys, when):
    from oreo_cli import launch

    if when == "importing":
        monkeypatch.setitem(sys.modules, "oreo_cli.main", _Importing("oreo_cli.main"))
    else:  # `oreo envs` has no handler of its own: typer turns it into a silent Exit(130)
        monkeypatch.setattr("oreo_envs.list_envs", interrupt)
    with pytest.raises(SystemExit) as exit_:
        launch.main(["envs"])
    assert exit_.value.code == 130
    assert capsys.readouterr().err == launch.STARTING + "\n"


def test_a_command_that_said_its_line_is_not_followed_by_a_second(monkeypatch, capsys):
    from oreo_cli import launch

    monkeypatch.setattr("oreo_cli.play.run_play", interrupt)
    with pytest.raises(SystemExit) as exit_:
        launch.main(["play", "oreo/Chain-v0"])
    assert exit_.value.code == 130
    assert launch.STARTING not in capsys.readouterr().err
