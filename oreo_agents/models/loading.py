"""Loading models and tokenizers: a local folder or a hub id, with a clear error at once when
it cannot load (offline with nothing cached, a mistyped folder, weights that do not fit their
config.json), before the seconds that importing torch and `transformers` take."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from oreo_envs import hub

VALUE_CONFIG_FILE = "oreo_value.json"  # what makes a folder a value model's (`ValueModel`)

# torch loads inside the functions: a mistyped model folder must fail before the seconds that
# importing torch takes (`check_model_source`).


def load_tokenizer(name_or_path: str, **kwargs: Any):
    """`AutoTokenizer` with left padding and a pad token, or a clear error when unavailable.

    Raises:
        ValueError: No such local folder, an unreachable hub with nothing cached, or a folder
            that holds no tokenizer; the message says what to pass.
    """
    kwargs = {**check_model_source(name_or_path, "tokenizer", kwargs.get("cache_dir")), **kwargs}
    from transformers import AutoTokenizer  # after check_model_source

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as e:
        raise ValueError(_load_error(name_or_path, "tokenizer", e)) from None
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer {name_or_path!r} has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name_or_path: str, *, device: str | None = None, dtype: Any = None):
    """`AutoModelForCausalLM` in eval mode: bf16 on GPU, fp32 on CPU unless ``dtype`` says.

    Raises:
        ValueError: As `load_tokenizer`; for an ``oreo train`` value folder, whose backbone
            has no LM head to generate with; for weights that do not fit their config.json.
    """
    if is_value_folder(name_or_path):
        raise ValueError(f"{name_or_path} is a value model folder, not a policy (pass OUT/policy)")
    kwargs = check_model_source(name_or_path, "model")
    import torch  # after check_model_source
    from transformers import AutoModelForCausalLM  # after check_model_source

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = load_pretrained(AutoModelForCausalLM, name_or_path, "model", dtype=dtype, **kwargs)
    return model.to(device).eval()


def load_pretrained(auto: Any, name_or_path: str, what: str, **kwargs: Any):
    """``auto.from_pretrained(name_or_path, **kwargs)``, refusing weights that do not fit the
    folder's config.json (`check_weights`), which `transformers` would start at random.

    Raises:
        ValueError: The load fails (the message says what to pass), or the weights do not fit.
    """
    from transformers.utils import logging as hf_logging  # after check_model_source

    hf_logging.disable_progress_bar()
    try:
        with _no_load_report():  # check_weights says it in one line instead
            model, info = auto.from_pretrained(
                name_or_path, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
            )
    except (OSError, ValueError) as e:
        raise ValueError(_load_error(name_or_path, what, e)) from None
    check_weights(model, info, name_or_path)
    return model


def check_weights(model: Any, info: dict[str, Any], name_or_path: str) -> None:
    """Refuse a model whose weights file does not fit its config.json (another architecture, a
    changed size): weights of the model not in the file, or of another shape, or weights of
    the file in the model's own modules that it has no place for.

    Weights outside the model's modules are a head it does not have (an ``lm_head`` when a value
    model's backbone starts from a causal LM) and are fine; `transformers` already leaves out
    tied weights and those a model declares optional.

    Raises:
        ValueError: One line naming the weights file, its architecture and what does not fit.
    """
    own = {name for name, _ in model.named_children()} | {model.base_model_prefix}
    missing = sorted(info["missing_keys"])
    unexpected = sorted(k for k in info["unexpected_keys"] if k.split(".")[0] in own)
    shapes = sorted(info["mismatched_keys"])
    if not (missing or unexpected or shapes):
        return
    n = len(model.state_dict())
    wrong = []
    if missing:
        wrong.append(f"{len(missing)} of the model's {n} weights are not in it ({_some(missing)})")
    if unexpected:
        wrong.append(f"{len(unexpected)} of its weights are not the model's ({_some(unexpected)})")
    if shapes:
        name, there, config = shapes[0]
        there, config = ("x".join(map(str, shape)) for shape in (there, config))
        wrong.append(
            f"{len(shapes)} of the model's {n} weights have another shape in it ({name}: "
            f"{there} there, {config} in config.json)"
        )
    arch = (getattr(model.config, "architectures", None) or [type(model).__name__])[0]
    raise ValueError(
        f"{_weights_file(name_or_path)} does not fit its config.json (architecture {arch}): "
        f"{'; '.join(wrong)}; pass the config.json saved with these weights"
    )


def _some(keys: list[str], k: int = 3) -> str:
    more = f" and {len(keys) - k} more" if len(keys) > k else ""
    return ", ".join(keys[:k]) + more


def _weights_file(name_or_path: str) -> str:
    """The weights file of a local folder (a hub id stays as it is)."""
    for file in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):  # fmt: skip
        if os.path.isfile(os.path.join(name_or_path, file)):
            return os.path.join(name_or_path, file)
    return name_or_path


@contextlib.contextmanager
def _no_load_report():
    """Leave out `transformers`' table of missing and unexpected weights while loading."""
    def drop(record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)

    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def check_model_source(name: str, what: str, cache_dir: str | None = None) -> dict[str, Any]:
    """Decide, before `transformers` is imported, whether ``name`` can load; fail at once if not.

    A local-looking name (`oreo_envs.hub.looks_local`) must be a folder and is never sent to
    the hub. A hub id with the hub unreachable must be in the cache, and then loads with
    ``local_files_only`` so `transformers` does not retry the hub (10 tries, ~50 s).

    Args:
        name: A local folder or hub id.
        what: "tokenizer", "model", ... for the message.
        cache_dir: The hub cache the load will use, if not the default.

    Returns:
        Extra ``from_pretrained`` keyword arguments.

    Raises:
        ValueError: ``name`` cannot load; the message says what to pass.
    """
    if os.path.isdir(name):
        return {}
    if hub.looks_local(name):
        kind = "a file, not a folder" if os.path.exists(name) else "no such local folder"
        raise ValueError(f"could not load the {what} {name!r}: {kind}: {name}\n{_PASS}")
    if hub.hub_offline():
        if not hub.in_hub_cache(name, cache_dir=cache_dir):
            raise ValueError(
                f"could not load the {what} {name!r}: no such local folder: {name}, and the "
                f"Hugging Face hub is unreachable with no cached copy of {name!r}\n{_PASS}"
            )
        return {"local_files_only": True}
    return {}


_PASS = (
    "Pass a local folder saved with save_pretrained (e.g. oreo train's OUT/policy), or a hub id "
    "that is cached (offline machines cannot download)."
)


def _load_error(name: str, what: str, error: Exception) -> str:
    local = "" if os.path.isdir(name) else f" (no such local folder: {name})"
    return f"could not load the {what} {name!r}{local}: {error}\n{_PASS}"


def is_value_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder saved by `ValueModel.save_pretrained` (has its metadata)."""
    return (Path(path) / VALUE_CONFIG_FILE).exists()
