"""Tiny causal LMs built locally: for tests, demos and CPU benchmarks (no download).

The tokenizer is byte-level (every UTF-8 byte is a token, no merges), so it encodes any text
losslessly and needs no training; the model is a small random Llama. Both save as a normal
Hugging Face folder that ``AutoTokenizer`` / ``AutoModelForCausalLM`` load.
"""

from __future__ import annotations

from pathlib import Path

PAD, EOS = "<|pad|>", "<|endoftext|>"
# A minimal chat template so chat-formatted prompts can be exercised offline.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def byte_tokenizer(chat_template: bool = True):
    """A byte-level `PreTrainedTokenizerFast` (256 byte tokens + pad + eos)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

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
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if out_dir is not None:
        model.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    return model, tok
