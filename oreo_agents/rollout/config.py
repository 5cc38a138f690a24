"""What a policy acting in an env is told: the settings `oreo collect` and `oreo rollout` share."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from oreo_agents.generation import SamplingParams


@dataclass(frozen=True, kw_only=True)
class ActingConfig:
    """How a policy acts in an env: the settings `oreo collect` and `oreo rollout` share.

    Attributes:
        env: Env id (``oreo envs`` lists them).
        env_options: Keyword arguments of the env (``split`` among them).
        tasks: How many tasks (a seeded sample of the env's tasks); None for all of them.
        max_new_tokens: Token budget of one generation (a response, a step or an action).
        temperature: Sampling temperature (0 = greedy; rollout's greedy strategy always uses 0,
            and the OREO paper samples search candidates at 1).
        top_p: Nucleus sampling mass.
        top_k: Top-k sampling (0 = off).
        backend: "auto", "hf", "vllm" or "openai" (a model served behind the OpenAI-compatible
            API at --base-url, e.g. by ``vllm serve``; --model is its served name, and the API
            key is read from $OPENAI_API_KEY).
        base_url: The server's API root for --backend openai, e.g. http://127.0.0.1:8000/v1.
        tokenizer: The served model's tokenizer, a local folder or hub id (--backend openai):
            prompts then go to the server as token ids and episodes keep the sampled ids, as
            with the in-process backends; default: --model when it is a local folder, else
            none (text only, no --chat-template).
        concurrency: Requests in flight at once to the server (--backend openai).
        request_timeout: Seconds one request to the server may take before it is retried
            (--backend openai).
        max_retries: Retries of a failed request to the server (429, 5xx, timeouts, dropped
            connections), with exponential backoff (--backend openai).
        batch_size: Episodes run side by side (and sequences per HF generate call).
        seed: Seeds the task sample, the envs and the sampler.
        chat_template: Format every prompt with the model tokenizer's chat template (answer
            envs: the task's messages; agent envs: one turn per action and observation). A
            served model without a local tokenizer gets agent envs' turns as chat messages
            (``/v1/chat/completions``; episodes are then text only).
        control: Text before every prompt, as its own segment (a return-conditioned policy's
            good control text, e.g. ``<good>`` for ``--algo rcrl``); "" for none.
        constrain_actions: In agent envs, replace an inadmissible action by the closest
            admissible one.
        rank_actions: In agent envs, play an admissible action chosen by the policy's own
            log-probability of it (its tokens and closing newline, after the context) instead
            of a generated one: the most likely at temperature 0, else one sampled in
            proportion to exp(log-prob / temperature). A small model that cannot yet write
            valid actions still acts in the env's terms (``constrain_actions`` then has
            nothing to snap). With ``--backend openai`` the server computes the log-probs
            (its echoed prompt log-probs), and the served model's tokenizer is needed here.
        think: In agent envs, let the agent write ``think: ...`` lines (ReAct): the env never
            sees them, the reply is "OK.", and each takes a turn of the step limit.
        remind_task: In agent envs, repeat the task's line of the first observation
            ("Your task is to: ..." in ALFWorld) after every observation, so the goal stays
            next to each action however long the episode (a small agent otherwise loses it).
            Episodes store what the agent saw, so a policy trained on them acts with the
            same flag.
        fewshot: In agent envs, show N solved episodes before each game, as ReAct's prompts do:
            expert walkthroughs of train games of the game's task type (ALFWorld; for split
            "bundled", the other bundled games, of other types), chosen by (seed, task id) and
            never an evaluated game; each episode's meta names them. Lets a pretrained chat
            model play without fine-tuning; 0 for none.
        env_workers: Run the envs in this many worker processes, stepped in parallel
            (`oreo_envs.vector.EnvPool`; for CPU-heavy envs such as ALFWorld); 0 keeps them
            in this process.
    """

    env: str
    env_options: dict[str, Any] = field(default_factory=dict)
    tasks: int | None = None
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    backend: str = "auto"
    base_url: str | None = None
    tokenizer: str | None = None
    concurrency: int = 8
    request_timeout: float = 600.0
    max_retries: int = 5
    batch_size: int = 32
    seed: int = 0
    chat_template: bool = False
    control: str = ""
    constrain_actions: bool = False
    rank_actions: bool = False
    think: bool = False
    remind_task: bool = False
    fewshot: int = 0
    env_workers: int = 0

    def __post_init__(self):
        if self.tasks is not None and self.tasks < 1:
            raise ValueError(f"tasks must be >= 1 (or omitted for all), got {self.tasks}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        SamplingParams(**self.sampling())  # raises on a bad token budget, temperature, top-p/k
        if self.fewshot < 0:
            raise ValueError(f"fewshot must be >= 0, got {self.fewshot}")
        if self.env_workers < 0:
            raise ValueError(f"env_workers must be >= 0, got {self.env_workers}")
        if self.backend not in ("auto", "hf", "vllm", "openai"):
            raise ValueError(
                f"backend must be 'auto', 'hf', 'vllm' or 'openai', got {self.backend!r}"
            )
        if (self.base_url is not None) != (self.backend == "openai"):
            raise ValueError("--backend openai and --base-url go together: pass both or neither")
        if self.tokenizer is not None and self.backend != "openai":
            raise ValueError("--tokenizer names a served model's tokenizer (--backend openai); "
                             "the other backends load their model's own")  # fmt: skip
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0, got {self.request_timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")

    def acting(self) -> dict[str, Any]:
        """The shared fields as keyword arguments (to make another `ActingConfig` kind)."""
        return {f.name: getattr(self, f.name) for f in fields(ActingConfig)}

    def backend_options(self) -> dict[str, Any]:
        """What `oreo_agents.generation.load_backend` needs besides the model and batch size:
        the server's address and client settings for "openai", nothing for the others."""
        if self.backend != "openai":
            return {}
        return {
            "base_url": self.base_url,
            "tokenizer": self.tokenizer,
            "concurrency": self.concurrency,
            "request_timeout": self.request_timeout,
            "max_retries": self.max_retries,
        }

    def sampling(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }


@dataclass(frozen=True, kw_only=True)
class CollectConfig(ActingConfig):
    """What `oreo collect` runs (with the `ActingConfig` fields).

    Attributes:
        model: Hub id or local folder of a causal LM, or a scripted policy: "gold" (math envs'
            reference solutions), "expert" (ALFWorld walkthroughs), "random" (admissible
            actions).
        out: Output folder (an episode store; re-running the same command resumes it).
        samples: Episodes per task (K); with ``branch_from``, branches per state.
        branch_from: An episode store to branch from: the policy takes over each of its
            episodes at ``branch_states`` of its states (the source's first actions
            replayed), ``samples`` times each; a state's branches' mean success estimates its
            value (`oreo_agents.rollout.branches`). ``tasks`` then samples the source's tasks.
            Collect with the source's prompt settings.
        branch_states: States of each source episode that branches start from (drawn by the
            seed; every state of a shorter episode).
    """

    model: str
    out: str
    samples: int = 1
    branch_from: str | None = None
    branch_states: int = 3

    def __post_init__(self):
        super().__post_init__()
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.branch_states < 1:
            raise ValueError(f"branch_states must be >= 1, got {self.branch_states}")
