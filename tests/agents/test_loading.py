"""Model loading: missing folders and an unreachable hub fail at once; folder mix-ups refuse."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import transformers

from oreo_agents.generation import load_backend
from oreo_agents.models.loading import load_causal_lm, load_tokenizer
from oreo_agents.models.policy import load_policy
from oreo_agents.models.scorer import ValueScorer
from oreo_agents.models.value import VALUE_HEAD_FILE, ValueModel


@pytest.fixture(scope="module")
def value_dir(tiny_model_dir, tmp_path_factory):
    """A value folder as training saves it: backbone, head and the policy's tokenizer."""
    import torch

    out = tmp_path_factory.mktemp("value")
    model = ValueModel.from_pretrained(tiny_model_dir)
    torch.nn.init.normal_(model.head.weight, std=1.0)
    model.save_pretrained(out)
    load_tokenizer(str(tiny_model_dir)).save_pretrained(out)
    return out


@pytest.fixture
def hub_loads(monkeypatch):
    """Spy on the transformers loaders: record (name, kwargs) and fail as a missing repo does."""
    calls = []

    def spy(name, *args, **kwargs):
        calls.append((str(name), kwargs.get("local_files_only", False)))
        raise OSError(f"stub: {name} not found")

    for auto in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(auto, "from_pretrained", spy)
    return calls


def test_missing_local_folder_is_named_and_never_sent_to_the_hub(
    no_network, hub_loads, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck").mkdir()  # "ck/polcy" is a typo for the local ck/policy
    for name in ("./ck_typo/policy", str(tmp_path / "ck_typo" / "policy"), "ck/polcy"):
        expected = f"no such local folder: {re.escape(name)}"
        for load in (load_tokenizer, load_causal_lm):
            with pytest.raises(ValueError, match=expected) as error:
                load(name)
            assert "OUT/policy" in str(error.value)  # says what to pass
    assert hub_loads == [] and no_network == []


def test_hub_id_with_the_hub_unreachable_fails_after_one_probe(no_network, hub_loads):
    for load in (load_tokenizer, load_causal_lm, load_tokenizer):
        with pytest.raises(ValueError, match="no such local folder: ck_typo/policy") as error:
            load("ck_typo/policy")
        assert "unreachable" in str(error.value) and "OUT/policy" in str(error.value)
    assert hub_loads == []  # nothing cached: the retrying loaders never start
    assert len(no_network) == 1 and os.environ["HF_HUB_OFFLINE"] == "1"


def test_cached_hub_id_with_the_hub_unreachable_loads_from_the_cache_only(
    no_network, hub_loads, tmp_path
):
    (tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc").mkdir(parents=True)
    for load in (load_tokenizer, load_causal_lm):
        with pytest.raises(ValueError, match="stub"):
            load("org/tiny")
    assert hub_loads == [("org/tiny", True), ("org/tiny", True)]


def test_value_folder_is_refused_as_a_policy(value_dir):
    message = "is a value model folder, not a policy \\(pass OUT/policy\\)"
    with pytest.raises(ValueError, match=message):
        load_causal_lm(str(value_dir))
    with pytest.raises(ValueError, match=message):
        load_backend("hf", str(value_dir))
    with pytest.raises(ValueError, match=message):
        load_policy(str(value_dir))


def test_policy_folder_is_refused_as_a_value_model(tiny_model_dir, value_dir, tmp_path):
    tok = load_tokenizer(str(tiny_model_dir))
    with pytest.raises(ValueError, match="is a policy folder, not a value model \\(pass oreo"):
        ValueScorer.from_pretrained(tiny_model_dir, tok)
    with pytest.raises(ValueError, match="no such local folder: .*pass oreo train's OUT/value"):
        ValueScorer.from_pretrained(tmp_path / "nope", tok)
    broken = shutil.copytree(value_dir, tmp_path / "broken")
    (broken / VALUE_HEAD_FILE).unlink()
    with pytest.raises(ValueError, match=f"incomplete value model folder: no {VALUE_HEAD_FILE}"):
        ValueScorer.from_pretrained(broken, tok)


def test_value_folder_loads_its_head_and_training_still_starts_from_an_lm(
    tiny_model_dir, value_dir
):
    import torch

    scorer = ValueScorer.from_pretrained(value_dir, device="cpu")
    saved = ValueModel.from_pretrained(value_dir).head.weight
    assert torch.equal(scorer.model.head.weight, saved) and saved.abs().sum() > 0
    start = ValueModel.from_pretrained(tiny_model_dir)  # what training does: a zero head
    assert start.head.weight.abs().sum() == 0 and start.head.bias.abs().sum() == 0
    assert load_policy(str(tiny_model_dir)).training


def rewritten(folder, out, **changes):
    """A copy of a model folder whose config.json says otherwise (keys set to None go)."""
    import json

    shutil.copytree(folder, out)
    config = json.loads((out / "config.json").read_text())
    config.update(changes)
    config = {k: v for k, v in config.items() if v is not None}
    (out / "config.json").write_text(json.dumps(config))
    return out


GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_layer": 2,
        "n_head": 4, "hidden_size": None, "num_hidden_layers": None}  # fmt: skip


@pytest.mark.parametrize(
    "changes, says",
    [
        (GPT2, r"\d+ of the model's \d+ weights are not in it \((transformer\.)?h\.0\."),
        ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
         r"\d+ of its weights are not the model's \(model\.layers\.0\.self_attn\.k_proj\.bias"),
        ({"hidden_size": 64}, r"\d+ of the model's \d+ weights have another shape in it "
         r"\(.*: 400x32 there, 400x64 in config\.json"),
    ],
    ids=["gpt2 over qwen2", "llama over qwen2", "hidden size"],
)  # fmt: skip
def test_weights_that_do_not_fit_their_config_are_refused(chat_model_dir, tmp_path, changes, says):
    # transformers starts such weights at random (or raises a long traceback on a shape):
    # training and evaluation would then go on with a random model.
    folder = rewritten(chat_model_dir, tmp_path / "model", **changes)
    weights = re.escape(str(folder / "model.safetensors"))
    refused = f"{weights} does not fit its config.json \\(architecture"
    for load in (load_causal_lm, ValueModel.from_pretrained):
        with pytest.raises(ValueError, match=refused) as error:
            load(str(folder))
        assert re.search(says, str(error.value)) and "\n" not in str(error.value)


def test_models_whose_weights_fit_still_load(chat_model_dir, tiny_model_dir):
    import torch

    for folder in (chat_model_dir, tiny_model_dir):  # untied Qwen2; Llama with tied embeddings
        model = load_causal_lm(str(folder))
        value = ValueModel.from_pretrained(folder)  # the LM head is left over: not refused
        logprob = ValueModel.from_pretrained(folder, form="logprob")
        embed = model.get_input_embeddings().weight
        assert torch.equal(value.backbone.get_input_embeddings().weight, embed)
        assert torch.equal(logprob.backbone.get_output_embeddings().weight,
                           model.get_output_embeddings().weight)  # fmt: skip
