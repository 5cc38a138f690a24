"""Every command's ``--help`` reads at 80 columns: no line runs past the edge and no flag name
or default is cut (rich's option tables cut them to ``--constrain-act…``)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from oreo_cli.main import app

COMMANDS = ["play", "collect", "convert", "train", "rollout", "demo", "envs"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_with_every_flag_whole(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    text = result.output
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    click_command = typer.main.get_command(app).commands[command]
    for param in click_command.params:
        for flag in (*param.opts, *param.secondary_opts):
            assert flag in text, f"{command}: {flag} is missing or cut"


def test_algorithm_settings_are_one_paragraph_each():
    text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"}).output
    lines = text.splitlines()
    assert any(line.startswith("      beta = 0.03: ") for line in lines)  # epilog indent + 4
    assert any(line.startswith("      kl_coef = 0.05: ") for line in lines)
