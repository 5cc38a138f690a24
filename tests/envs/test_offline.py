"""Hub datasets without a network: one quick probe, no retries, a hint that names ``path=``."""

from __future__ import annotations

import os

import pytest

import oreo_envs  # noqa: F401  (registers the ids)
from conftest import GSM8K_RECORDS
from oreo_envs import MathEnv, TaskDataError


@pytest.fixture
def load_dataset_calls(monkeypatch):
    """Spy on `datasets.load_dataset`: record each call and its offline flag, serve GSM8K rows."""
    import datasets

    calls = []

    def spy(hub_id, config=None, split=None, **kwargs):
        calls.append((hub_id, datasets.config.HF_HUB_OFFLINE))
        return GSM8K_RECORDS

    monkeypatch.setattr(datasets, "load_dataset", spy)
    return calls


def test_unreachable_hub_fails_at_once_without_calling_datasets(no_network, load_dataset_calls):
    for dataset, hub_id in (("gsm8k", "openai/gsm8k"), ("math", "EleutherAI/hendrycks_math")):
        with pytest.raises(TaskDataError) as error:
            MathEnv(dataset)
        message = str(error.value)
        assert f"could not load {hub_id!r}" in message and "unreachable" in message
        assert "path='test.jsonl'" in message and "GSMSymbolic" in message
    assert load_dataset_calls == []  # a retrying loader was never started
    assert len(no_network) == 1  # one probe for the process, not one per load


def test_unreachable_hub_with_a_cached_copy_loads_it_offline(
    no_network, load_dataset_calls, tmp_path
):
    (tmp_path / "datasets" / "openai___gsm8k" / "main").mkdir(parents=True)
    env = MathEnv("gsm8k")
    assert env.task_ids == ["0", "1", "2"]
    assert load_dataset_calls == [("openai/gsm8k", True)]  # in offline mode: no retries
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # so later loaders and subprocesses agree


def test_hub_offline_variable_is_honoured_without_a_probe(
    no_network, load_dataset_calls, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaskDataError, match="path='test.jsonl'"):
        MathEnv("gsm8k")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user says online: trust it, no probe
    assert MathEnv("gsm8k").task_ids == ["0", "1", "2"]
    assert no_network == [] and load_dataset_calls == [("openai/gsm8k", False)]


def test_missing_local_hub_folder_is_named_and_never_sent_to_the_hub(
    no_network, load_dataset_calls, tmp_path
):
    missing = tmp_path / "my_math"
    with pytest.raises(TaskDataError, match=f"no such local folder: {missing}"):
        MathEnv("math", source="hub", hub_id=str(missing))
    assert no_network == [] and load_dataset_calls == []


def test_what_looks_local(tmp_path, monkeypatch):
    from oreo_envs.hub import looks_local

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck").mkdir()
    for name in ("./ck/policy", "/abs/x", "~/x", "a/b/c", "ck//x", "a/../b", "", "ck/polcy"):
        assert looks_local(name), name
    for name in ("gpt2", "openai/gsm8k", "HuggingFaceH4/MATH-500", "ck_typo/policy"):
        assert not looks_local(name), name
