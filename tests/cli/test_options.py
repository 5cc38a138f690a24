"""Each option is defined once: every config field is an option of its command, documented in
``--help``, and a value given on the command line reaches the config."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
from typer.testing import CliRunner

from oreo_agents.evaluation.evaluate import RolloutConfig
from oreo_agents.rollout.collect import CollectConfig
from oreo_agents.training.config import TrainConfig
from oreo_cli import collect, rollout
from oreo_cli.main import app
from oreo_cli.options import field_docs

# A valid value for every field, different from its default where it has one.
VALUES = {
    "env": "e", "model": "m", "policy": "p", "out": "o", "data": "d", "algo": "dpo",
    "tasks": 3, "max_new_tokens": 7, "temperature": 0.5, "top_p": 0.5, "top_k": 3,
    "backend": "openai", "base_url": "http://h/v1", "tokenizer": "t", "concurrency": 3,
    "request_timeout": 2.5, "max_retries": 2, "batch_size": 6, "seed": 3,
    "env_workers": 2, "samples": 3, "fewshot": 2, "branch_from": "b", "branch_states": 2,
    "strategy": "best-of-k", "k": 3, "beam_width": 3, "max_steps": 3, "value": "v",
    "value_batch_size": 3, "epochs": 2, "lr": 0.5, "micro_batch_size": 3, "max_length": 9,
    "warmup_ratio": 0.5, "adam_betas": (0.5, 0.6), "weight_decay": 0.5, "grad_clip": 0.5,
    "save_every": 2, "save_minutes": 2.5, "log_every": 2, "mixed_precision": "fp16",
    "report_to": "none", "control": "<good>", "reranker": "r", "scorer": "value+implicit",
    "reference": "ref", "beta": 0.25,
}  # fmt: skip
SPECIAL = {"env_options": "-o", "settings": "--set"}  # dicts: KEY=VALUE options


def argv(cls, skip=()):
    args = []
    for f in fields(cls):
        if f.name in SPECIAL or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        value = VALUES.get(f.name, not f.default)  # a bool: the other way round
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + f.name.replace("_", "-"))
        elif isinstance(value, tuple):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return args


def captured(monkeypatch, module, name, command, args):
    seen = []
    monkeypatch.setattr(module, name, lambda cfg, *a, **k: seen.append(cfg))
    result = CliRunner().invoke(app, [command, *args])
    assert result.exit_code == 0, result.output
    (cfg,) = seen
    return cfg


def check_reached(cfg, cls):
    for f in fields(cls):
        if f.name not in SPECIAL:
            assert getattr(cfg, f.name) == VALUES.get(f.name, not f.default), f.name


def test_every_collect_field_reaches_the_config(monkeypatch):
    cfg = captured(monkeypatch, collect, "run", "collect", [*argv(CollectConfig), "-o", "a=1"])
    check_reached(cfg, CollectConfig)
    assert cfg.env_options == {"a": 1}


def test_every_rollout_field_reaches_the_config(monkeypatch):
    args = [*argv(RolloutConfig), "--split", "s"]
    cfg = captured(monkeypatch, rollout, "run", "rollout", args)
    check_reached(cfg, RolloutConfig)
    assert cfg.env_options == {"split": "s"}


def test_every_train_field_reaches_the_config(monkeypatch):
    import oreo_agents.training.loop

    # dpo trains no value model, so --value is checked with ppo below
    args = [*argv(TrainConfig, skip=("env", "value")), "--set", "max_pairs_per_task=2"]
    cfg = captured(monkeypatch, oreo_agents.training.loop, "run_train", "train", args)
    for f in fields(TrainConfig):
        if f.name not in SPECIAL and f.name not in ("env", "value"):
            assert getattr(cfg, f.name) == VALUES.get(f.name, not f.default), f.name
    assert cfg.settings.max_pairs_per_task == 2
    # an online algorithm takes the env and its options instead of the data
    online = [*argv(TrainConfig, skip=("data", "epochs", "algo")), "--algo", "ppo"]
    online += ["-o", "a=1", "--split", "s", "--set", "tasks=5"]
    cfg = captured(monkeypatch, oreo_agents.training.loop, "run_train", "train", online)
    assert (cfg.env, cfg.data, cfg.env_options) == ("e", None, {"a": 1, "split": "s"})
    assert (cfg.settings.tasks, cfg.value) == (5, "v")


@pytest.mark.parametrize(
    "command, cls", [("collect", CollectConfig), ("rollout", RolloutConfig), ("train", TrainConfig)]
)
def test_every_field_is_documented_in_help(command, cls):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    docs = field_docs(cls)
    for f in fields(cls):
        if f.name == "settings":  # the algorithms' own fields, listed below the options
            from oreo_agents.algorithms import ALGORITHMS
            from oreo_agents.algorithms.base import user_fields

            for spec in ALGORITHMS.values():
                users = {f.name for f in user_fields(spec.config)}
                for name, doc in field_docs(spec.config).items():
                    if name in users:
                        assert f"{name} = " in text and " ".join(doc.split())[:30] in text, name
                    else:  # set by the online driver for each update: not a user setting
                        assert f" {name} = " not in text, name
            continue
        option = SPECIAL.get(f.name, "--" + f.name.replace("_", "-"))
        assert option in text, f.name
        if f.name not in SPECIAL and f.name != "data":  # data's help is the CLI's own
            assert " ".join(docs[f.name].split())[:40] in text, f.name


def test_option_flags_read_back_as_the_same_env_options():
    from oreo_agents.recipes.demo import CHAIN
    from oreo_cli.options import option_flags, parse_options

    # a string that reads as a number as JSON must stay a string; "+-*" is the demo's ops
    options = {**CHAIN, "split": "train", "size": 8000, "name": "10", "shuffle": False}
    flags = option_flags(options)
    assert flags[::2] == ["-o"] * len(options)
    assert parse_options(flags[1::2]) == options
