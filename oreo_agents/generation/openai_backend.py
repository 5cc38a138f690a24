"""Generation by a model served behind the OpenAI-compatible HTTP API (``vllm serve``, SGLang,
TGI, llama.cpp's server): ``--backend openai --base-url URL --model SERVED_NAME``.

The backend is a client: it sends one ``/v1/completions`` request per prompt, up to
``concurrency`` of them in flight, and retries what a network or a busy server makes fail
(429, 5xx, dropped connections, timeouts) with exponential backoff and jitter. What cannot work
(no server at the URL, a model the server does not serve, a rejected key) is found by one
``/v1/models`` request when the backend is made, and raised at once on one line.

Token ids. When ``--model`` names a local folder (``vllm serve /models/qwen`` serves the model
under its path unless ``--served-model-name`` says otherwise), or ``--tokenizer`` names the
served model's tokenizer (a folder or hub id), that tokenizer is loaded here: prompts go to the
server as token ids (vLLM's completions endpoint takes a list of ints), the collector keeps each
context as ids, and the ids the server sampled (asked for with vLLM's
``return_tokens_as_token_ids``) are logged with the episode, as the in-process backends log
theirs. Without either there is no tokenizer: prompts go as text and episodes are stored as text
(no ``prompt_ids``; training encodes them segment by segment). A completion whose ids the server
did not return is marked ``Completion.text_only``; with a tokenizer its text is encoded instead,
and the collector counts that action in ``meta["reencoded_actions"]``.

Chat models. With a local tokenizer, ``--chat-template`` renders every prompt with its chat
template and sends the rendered text to ``/v1/completions``, which is what the server's
``/v1/chat/completions`` would do with the same template, but keeps the context's ids exact and
the transcript append-only. Without one, the template is only the server's: an agent's
conversation goes to ``/v1/chat/completions`` as messages (`chat_messages`, a prompt that is a
list of role/content dicts, `oreo_agents.rollout.prompting`), and its episodes are text only.

Ranking actions. ``--rank-actions`` scores admissible actions by the served model's
log-probabilities of their tokens after the context, which the server returns as the echoed
prompt's log-probs (`OpenAIBackend.score_continuations`); it needs the local tokenizer.

The API key is read from the ``OPENAI_API_KEY`` environment variable (never a flag, so it is not
in shell histories, logs or reports); without it no ``Authorization`` header is sent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from oreo_agents.data.inputs import encode_prompt, encode_text
from oreo_agents.generation.base import Completion, Prompt, SamplingParams, eos_ids
from oreo_agents.generation.served_client import (  # noqa: F401 (the backend's errors)
    ServedModelError,
    ServerClient,
    ServerUnreachable,
)
from oreo_agents.models.loading import load_tokenizer


class OpenAIBackend:
    """The `Backend` interface over an OpenAI-compatible server (module docstring).

    Args:
        model: The served model name (``/v1/models`` lists them); a local folder's path also
            gives the tokenizer.
        tokenizer: A tokenizer, or a local folder or hub id to load it from; None: load it
            from ``model`` when that is a local folder (else there is none: text only).
        base_url, concurrency, request_timeout, max_retries, backoff, max_backoff: The
            server client's (`oreo_agents.generation.served_client.ServerClient`).
        **ignored: Other backends' options (``batch_size``, ``device``, ``seed``), accepted
            for a uniform signature.

    Raises:
        ServerUnreachable: Nothing answers at ``base_url``.
        ServedModelError: The server rejects the key or does not serve ``model``.
        ValueError: A bad option or URL, or a tokenizer that does not load.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        tokenizer: Any = None,
        *,
        base_url: str | None = None,
        concurrency: int = 8,
        request_timeout: float = 600.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        **ignored: Any,
    ):
        # checks the server first: a wrong URL fails in seconds, not after a tokenizer's load
        self.client = ServerClient(
            base_url, model, concurrency=concurrency, request_timeout=request_timeout,
            max_retries=max_retries, backoff=backoff, max_backoff=max_backoff,
        )  # fmt: skip
        self.model_name, self.base_url = model, self.client.base_url
        if tokenizer is None and os.path.isdir(model):
            tokenizer = model
        source = tokenizer if isinstance(tokenizer, str) else model
        if isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids(_generation_config(source), tokenizer) if tokenizer else []

    def close(self) -> None:
        self.client.close()

    @property
    def chat_messages(self) -> bool:
        """Whether ``--chat-template`` sends chat messages (no local tokenizer to render the
        template with): the collector then gives `generate` message lists."""
        return self.tokenizer is None

    def request(self, prompt: Prompt, params: SamplingParams, seed: int | None) -> dict[str, Any]:
        """The ``/v1/completions`` body for one prompt: the standard fields, and vLLM's
        extensions that make the text the ids' text and give back the sampled ids (servers
        without them ignore them)."""
        if isinstance(prompt, str) and self.tokenizer is not None:
            prompt = encode_prompt(self.tokenizer, prompt)  # ids, as the other backends send
        body: dict[str, Any] = {
            "model": self.model_name,
            "prompt": prompt if isinstance(prompt, str) else list(prompt),
            "n": params.n,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "logprobs": 0,  # the sampled tokens' entries, which carry their ids
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": False,  # special tokens the model wrote stay in the text
        }
        if not isinstance(prompt, str):
            body["add_special_tokens"] = False  # the ids already hold their BOS
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if params.stop:
            body["stop"] = list(params.stop)
        if self.eos_ids:
            body["stop_token_ids"] = list(self.eos_ids)  # every EOS of the generation config
        if seed is not None:
            body["seed"] = seed % 2**63  # derive_seed's 63 bits; vLLM takes any int64
        return body

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Completion]]:
        """``params.n`` completions per prompt, one request per prompt, up to ``concurrency``
        in flight. Prompt i is seeded with ``seeds[i]`` (default ``params.seed``); whether its
        samples then depend on the seed only is the server's to keep (vLLM's per-request
        seeds do).

        Raises:
            ServerUnreachable: A request failed through every retry.
            ServedModelError: The server refused a request (e.g. a prompt too long for it).
        """
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        bodies = [
            self.request(p, params, seeds[i] if seeds is not None else params.seed)
            for i, p in enumerate(prompts)
        ]
        if any(_is_messages(p) for p in prompts):
            if not all(_is_messages(p) for p in prompts):
                raise ValueError("a batch mixes chat messages and completion prompts")
            for body in bodies:
                del body["return_tokens_as_token_ids"]  # completions' field; no ids here
                body["messages"] = body.pop("prompt")
                body["logprobs"] = False
            answers = self.client.post_all("/chat/completions", bodies)
            return [self.completions(_as_completion(answer), params) for answer in answers]
        answers = self.client.post_all("/completions", bodies)
        return [self.completions(answer, params) for answer in answers]

    def score_continuations(
        self, context: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> list[float]:
        """The served model's log-probability of each continuation after ``context``, summed
        over its tokens: what `HFBackend.score_continuations` computes, for ``--rank-actions``.

        One ``/v1/completions`` request per continuation (up to ``concurrency`` in flight),
        its prompt the ids of context and continuation, with ``echo: true, logprobs: 0,
        max_tokens: 1``: the standard way to have the prompt's tokens and their log-probs
        (``token_logprobs``) sent back, which vLLM implements from its prompt log-probs.
        (vLLM's own ``prompt_logprobs`` field would do as well, but only vLLM has it; echo is
        the OpenAI API's.) ``max_tokens`` is 1 because some servers refuse 0; the one sampled
        token is ignored. With a prefix cache (vLLM's is on by default) the shared context
        costs one pass, not one per continuation.

        Raises:
            ServedModelError: The server's answer holds no log-probs for the prompt's tokens.
        """
        if not continuations or not all(continuations):
            raise ValueError("every continuation needs at least one token")
        context = list(context)
        bodies = [
            {
                "model": self.model_name,
                "prompt": context + list(c),
                "max_tokens": 1,
                "temperature": 0,
                "echo": True,
                "logprobs": 0,
                "add_special_tokens": False,  # the ids already hold their BOS
            }
            for c in continuations
        ]
        answers = self.client.post_all("/completions", bodies)
        return [
            self.prompt_logprob_sum(answer, len(context), len(c))
            for answer, c in zip(answers, continuations, strict=True)
        ]

    def prompt_logprob_sum(self, answer: dict[str, Any], start: int, length: int) -> float:
        """The summed log-probs of prompt tokens ``start .. start + length`` in an echoed
        answer (`score_continuations`)."""
        try:
            logprobs = answer["choices"][0]["logprobs"]["token_logprobs"]
            scores = logprobs[start : start + length]
            if len(scores) == length and all(isinstance(x, (int, float)) for x in scores):
                return float(sum(scores))
        except (KeyError, IndexError, TypeError):
            pass
        raise ServedModelError(
            f"the server at {self.base_url} returns no prompt log-probs; --rank-actions needs "
            "them (vLLM's /v1/completions returns them for echo=true with logprobs; a server "
            "that ignores echo cannot rank actions)"
        )

    def completions(self, answer: dict[str, Any], params: SamplingParams) -> list[Completion]:
        """Our completions of one ``/v1/completions`` answer, in the order of their index."""
        try:
            choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
        except (KeyError, TypeError):
            raise ServedModelError(
                f"the server answered without choices: {str(answer)[:200]}"
            ) from None
        if len(choices) != params.n:
            raise ServedModelError(
                f"asked the server for {params.n} completions, got {len(choices)}"
            )
        return [self.completion(choice, params) for choice in choices]

    def completion(self, choice: dict[str, Any], params: SamplingParams) -> Completion:
        """Our `Completion` of one choice, its finish reason mapped as `VLLMBackend` maps vLLM's.

        ``finish_reason`` "length" stays "length". "stop" is a stop string when vLLM's
        ``stop_reason`` (SGLang's ``matched_stop``) names one, or, from servers with neither,
        when the text ends with one; else it is the model's EOS: an int ``stop_reason`` is the
        EOS id, and an EOS id at the end of the returned ids is cut from them, as the in-process
        backends do. Servers cut the stop string (and an EOS token's text) from the text; the
        stop string is put back, so a step keeps its delimiter. With the sampled ids and a
        local tokenizer, the text is the ids' text, as the in-process backends' is (it ends
        with the token that completed the stop string, which may reach past it).
        """
        text = choice.get("text") or ""
        ids = _token_ids(choice)
        reason = choice.get("finish_reason")
        stop_reason = choice.get("stop_reason", choice.get("matched_stop"))
        finish, eos_id = "length", None
        if reason != "length":
            matched = _stop_string(text, stop_reason, params.stop)
            if matched is not None:
                finish = "stop"
                if not text.endswith(matched):  # servers stop at its first occurrence
                    text += matched
            else:
                finish = "eos"
                if isinstance(stop_reason, int):
                    eos_id = stop_reason
                # vLLM returns the EOS id among the sampled ones; without a local tokenizer
                # its ``stop_reason`` None means the tokenizer's own EOS, the last id.
                unknown = not self.eos_ids and stop_reason is None
                if ids and (ids[-1] in self.eos_ids or ids[-1] == eos_id or unknown):
                    eos_id = ids.pop()
                if eos_id is None and self.tokenizer is not None:
                    eos_id = self.tokenizer.eos_token_id
        text_only = ids is None
        if ids is None:
            ids = encode_text(self.tokenizer, text) if self.tokenizer is not None else []
        elif self.tokenizer is not None:
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
        return Completion(text=text, token_ids=ids, finish_reason=finish, eos_id=eos_id,
                          text_only=text_only)  # fmt: skip


def _is_messages(prompt: Any) -> bool:
    """Whether a prompt is chat messages (a list of role/content dicts)."""
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict)


def _as_completion(answer: dict[str, Any]) -> dict[str, Any]:
    """A ``/v1/chat/completions`` answer as a ``/v1/completions`` one: each choice's message
    content as its text (finish and stop reasons are the same fields)."""
    try:
        choices = [
            {**{k: v for k, v in c.items() if k not in ("message", "logprobs")},
             "text": (c.get("message") or {}).get("content") or ""}
            for c in answer["choices"]
        ]  # fmt: skip
    except (KeyError, TypeError, AttributeError):
        return answer  # `completions` reports it
    return {**answer, "choices": choices}


def _token_ids(choice: dict[str, Any]) -> list[int] | None:
    """The sampled ids of a choice: vLLM's ``token_ids`` field where given, else its logprobs
    tokens written ``token_id:N`` (``return_tokens_as_token_ids``); None when it has neither."""
    if isinstance(choice.get("token_ids"), list):
        return [int(t) for t in choice["token_ids"]]
    tokens = (choice.get("logprobs") or {}).get("tokens")
    if not tokens or not all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
        return None
    return [int(t.removeprefix("token_id:")) for t in tokens]


def _stop_string(text: str, stop_reason: Any, stops: tuple[str, ...]) -> str | None:
    """The stop string that ended a "stop" choice, None when it was the model's EOS."""
    if isinstance(stop_reason, str) and stop_reason in stops:
        return stop_reason
    if stop_reason is None:
        for s in stops:
            if text.endswith(s):
                return s
    return None


def _generation_config(model: str) -> Any:
    """The local folder's ``generation_config.json`` (its EOS ids), None if absent."""
    if not os.path.isdir(model):
        return None
    try:
        from transformers import GenerationConfig  # only for a local model folder

        return GenerationConfig.from_pretrained(model)
    except (OSError, ValueError):
        return None
