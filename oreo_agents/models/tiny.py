"""Tiny causal LMs built locally: for tests, demos and CPU benchmarks (no download).

The tokenizer is byte-level (every UTF-8 byte is a token, no merges), so it encodes any text
losslessly and needs no training; `trained_bpe_tokenizer` / `agent_model` train byte-level BPE
merges on a domain's text instead (a text agent's model); the model is a small random Llama.
Both save as a normal Hugging Face folder that ``AutoTokenizer`` / ``AutoModelForCausalLM`` load.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
)
from transformers.utils import logging as hf_logging

from oreo_envs.chain_env import ALPHABET

PAD, EOS, UNK = "<|pad|>", "<|endoftext|>", "<|unk|>"
# A minimal chat template so chat-formatted prompts can be exercised offline.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def byte_tokenizer(chat_template: bool = True):
    """A byte-level `PreTrainedTokenizerFast` (256 byte tokens + pad + eos)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS)
    tok.add_special_tokens({"pad_token": PAD, "eos_token": EOS})
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def trained_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024, chat_template=False):
    """A byte-level BPE `PreTrainedTokenizerFast` trained on ``texts`` with `tokenizers`.

    Byte-level, so every text round-trips exactly (unseen words fall back to smaller pieces);
    trained on a domain's own text (ALFWorld's rooms, receptacles, objects and verbs), so its
    frequent words are single tokens and contexts stay short. Ids: pad 0, eos 1, then bytes and
    merges.

    Args:
        texts: The training text (e.g. every prompt, action and observation of expert
            episodes).
        vocab_size: Target vocabulary including the 256 bytes and the 2 special tokens.
        chat_template: Attach the Qwen-style chat template.
    """
    if vocab_size < 258:
        raise ValueError(f"vocab_size must hold 256 bytes and pad/eos (>= 258), got {vocab_size}")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    core.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS)
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def agent_model(
    out_dir: str | Path | None,
    texts: Iterable[str],
    *,
    vocab_size: int = 1024,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    max_positions: int = 2048,
    seed: int = 0,
):
    """A random Llama for a text-agent env with a BPE tokenizer trained on its text (e.g.
    ALFWorld's expert episodes), to train from scratch on a CPU: the defaults hold 4.20M
    parameters besides the (tied) embedding of 256 per token, 4.46M at 1,024 tokens (GPT-2's
    4x MLP).

    Args:
        out_dir: Where to save the model and tokenizer as one HF folder (None: do not save).
        texts: The tokenizer's training text (`trained_bpe_tokenizer`).
        vocab_size: Tokenizer vocabulary.
        hidden_size: Width.
        num_layers: Transformer blocks.
        num_heads: Attention heads.
        max_positions: Longest sequence (prompt and history) the model is meant for.
        seed: Initialisation seed.

    Returns:
        ``(model, tokenizer)``.
    """
    tok = trained_bpe_tokenizer(texts, vocab_size)
    sizes = (hidden_size, hidden_size * 4, num_layers, num_heads, max_positions)
    return _random_llama(tok, *sizes, seed=seed, out_dir=out_dir), tok


def tiny_model(
    out_dir: str | Path | None = None,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 4096,
    seed: int = 0,
):
    """A random tiny Llama with the byte tokenizer; saved to ``out_dir`` when given.

    Returns:
        ``(model, tokenizer)``.
    """
    tok = byte_tokenizer()
    sizes = (hidden_size, hidden_size * 2, num_layers, num_heads, max_positions)
    return _random_llama(tok, *sizes, seed=seed, out_dir=out_dir), tok


def _random_llama(tok, hidden, intermediate, layers, heads, max_positions, *, seed, out_dir):
    """A randomly initialised Llama for ``tok`` (tied embeddings), saved with it if asked."""
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if out_dir is not None:
        hf_logging.disable_progress_bar()
        model.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    return model


def char_tokenizer(alphabet: str):
    """A character-level `PreTrainedTokenizerFast` for one task: a token per character.

    Ids: pad 0, eos 1, unk 2, then the alphabet's characters in order. Text outside the alphabet
    becomes unk (which decoding drops), so a tokenizer made for a task only fits that task.

    Args:
        alphabet: Every character the task's prompts, observations and answers use.
    """
    chars = list(dict.fromkeys(alphabet))  # deduplicated, order kept
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *chars])}
    # BPE without merges and without a pre-tokenizer splits text into single characters and
    # keeps exact character offsets (step boundaries need them).
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    core.decoder = decoders.Fuse()  # concatenate: no spaces inserted between tokens
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )
    tok.add_special_tokens({"pad_token": PAD, "eos_token": EOS, "unk_token": UNK})
    return tok


def chain_model(
    out_dir: str | Path | None = None,
    *,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    max_positions: int = 512,
    seed: int = 0,
):
    """A random Llama for ``oreo/Chain-v0`` with its character tokenizer, to train from scratch.

    The defaults (1.06M parameters) are what `benchmarks/calibrate_chain.py` calibrates: a
    500-step SFT of it takes about 2 minutes on 2 CPU cores.

    Args:
        out_dir: Where to save the model and tokenizer as one HF folder (None: do not save).
        hidden_size: Width; the MLP is 4 times wider, as in GPT-2.
        num_layers: Transformer blocks.
        num_heads: Attention heads.
        max_positions: Longest sequence (prompt and solution) the model is meant for.
        seed: Initialisation seed.

    Returns:
        ``(model, tokenizer)``.
    """
    tok = char_tokenizer(ALPHABET)
    sizes = (hidden_size, hidden_size * 4, num_layers, num_heads, max_positions)
    return _random_llama(tok, *sizes, seed=seed, out_dir=out_dir), tok


# Shapes from the published config.json of Qwen/Qwen2-0.5B and Qwen/Qwen2-1.5B (benchmarks).
QWEN2 = {
    "qwen2-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                   "num_attention_heads": 14, "num_key_value_heads": 2},
    "qwen2-1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                   "num_attention_heads": 12, "num_key_value_heads": 2},
}  # fmt: skip
QWEN2_VOCAB = 151_936


def random_qwen2(arch: str, *, device: str = "cpu", dtype=None):
    """A Qwen2-shaped causal LM with random weights and the byte tokenizer (GPU benchmarks).

    Returns:
        ``(model, tokenizer)``; the model is in eval mode on ``device``.
    """
    tok = byte_tokenizer()
    config = Qwen2Config(
        vocab_size=QWEN2_VOCAB,
        rms_norm_eps=1e-6,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        max_position_embeddings=32_768,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        **QWEN2[arch],
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)
    return model.eval(), tok
