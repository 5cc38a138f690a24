"""Shared fixtures: small native-format task files the tests write themselves."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

# Real reference data (GSM8K, MATH-500, ALFWorld) beside the project; absent in a user's clone.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

GSM8K_RECORDS = [
    {
        "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
        "answer": "Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7",
    },
    {
        "question": "A box holds 1,200 pens. 200 are sold. How many pens are left?",
        "answer": "1,200 - 200 = <<1200-200=1000>>1000 pens are left.\n#### 1,000",
    },
    {
        "question": "Ann reads 12 pages a day for 5 days. How many pages does she read?",
        "answer": "She reads 12 * 5 = <<12*5=60>>60 pages.\nSo the total is 60.\n#### 60",
    },
]

MATH_RECORDS = [
    {
        "problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?",
        "solution": "We have $\\frac{1}{2} + \\frac{1}{4} = \\frac{3}{4}$. So the answer is "
        "$\\boxed{\\frac{3}{4}}$.",
        "answer": "\\frac{3}{4}",
        "level": "Level 1",
        "type": "Prealgebra",
        "unique_id": "test/prealgebra/1.json",
    },
    {
        "problem": "Solve $2x = 10$.",
        "solution": "Divide by 2. We get $x = \\boxed{5}$.",
        "level": "Level 2",
        "type": "Algebra",
        "unique_id": "test/algebra/2.json",
    },
]


@dataclass
class CliRun:
    """What `oreo_in_process` returns: what `subprocess.run(..., capture_output=True)` would."""

    returncode: int
    stdout: str
    stderr: str


def oreo_in_process(*args: object, env: dict[str, str] | None = None, input: str | None = None):
    """`oreo ARGS` run in this process (typer's CliRunner), without the 3-6 s of importing torch
    and transformers that a new process pays.

    For tests of what a command does. Tests of the process itself (a signal or a kill, the
    ``oreo`` executable, torchrun, a worker process) start one. An exception the command did
    not turn into an exit code is raised here, with its traceback.
    """
    from typer.testing import CliRunner

    from oreo_cli.main import app

    env = {"COLUMNS": "160", "HF_HUB_OFFLINE": "1", **(env or {})}
    result = CliRunner().invoke(app, [str(a) for a in args], input=input, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliRun(result.exit_code, result.stdout, result.stderr)


def sigint_as_in_a_terminal() -> None:
    """A child process's ``preexec_fn``: a shell starts background jobs (``bash .ci/run &``,
    nohup) with SIGINT ignored, which a child inherits and Python then keeps, so a test's Ctrl-C
    would never reach it. Gives it the default disposition a foreground command has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def gsm8k_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_RECORDS)


@pytest.fixture
def math_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "math.jsonl", MATH_RECORDS)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random tiny Llama + byte tokenizer saved as a normal Hugging Face folder."""
    from oreo_agents.models.tiny import tiny_model

    out = tmp_path_factory.mktemp("tiny_model")
    tiny_model(out, seed=0)
    return out


QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def chat_tokenizer():
    """A byte-level BPE tokenizer trained here on math and household text, Qwen style: EOS
    <|im_end|>, pad <|endoftext|>, a Qwen chat template. Byte-level BPE is where a sample is
    often not the canonical encoding of its own text, and where segments merge at boundaries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    corpus = [f"Tom has {i} apples and buys {i + 3} more. #### {2 * i + 3}" for i in range(200)]
    corpus += [
        f"You are in the middle of a room. > go to shelf {i}\nOn the shelf {i}, you see a mug."
        for i in range(50)
    ]
    core.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )  # fmt: skip
    tok.chat_template = QWEN_TEMPLATE
    return tok


def tiny_qwen(tok):
    """A tiny random Qwen2 on ``tok`` whose generation config stops on <|im_end|> and
    <|endoftext|>, as Qwen2.5-Instruct's does."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.pad_token_id]
    return model


@pytest.fixture
def chat_model(chat_tokenizer):
    """A fresh `tiny_qwen` and its tokenizer."""
    return tiny_qwen(chat_tokenizer), chat_tokenizer


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory, chat_tokenizer) -> Path:
    """`tiny_qwen` saved as a normal Hugging Face folder (for the CLI)."""
    out = tmp_path_factory.mktemp("chat_model")
    tiny_qwen(chat_tokenizer).save_pretrained(out)
    chat_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def mixed_data(tmp_path_factory) -> Path:
    """OREO-math rows: per task a gold solution (reward 1) and a wrong answer (reward 0)."""
    import gymnasium

    import oreo_envs  # noqa: F401

    env = gymnasium.make("oreo/GSMSymbolic-v0", size=40)
    rows = []
    for task_id in env.unwrapped.task_ids[:8]:
        task = env.unwrapped.task(task_id)
        prompt = env.unwrapped.prompt(task)
        rows.append({"prompt": prompt, "response": " " + task.solution, "reward": 1})
        rows.append({"prompt": prompt, "response": " No idea.\n#### 0", "reward": 0})
    return write_jsonl(tmp_path_factory.mktemp("data") / "mixed.jsonl", rows)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Every DNS lookup fails (and is counted), the caches are empty, and each offline switch
    the code under test flips is put back afterwards."""
    import socket
    import sys

    import datasets
    import huggingface_hub.constants as constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    if "oreo_envs.hub" in sys.modules:  # forget an earlier test's probe
        monkeypatch.setattr(sys.modules["oreo_envs.hub"], "_offline", None)
    lookups = []

    def getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups
