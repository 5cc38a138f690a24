"""The one layer that turns an env's transcript into the text a model continues.

Envs emit their task text; a `Prompter` renders it for every env the same way, plainly or
through the model tokenizer's chat template (``--chat-template``):

- answer envs (math, Chain, ReasoningGym): the first observation is the prompt; with a chat
  template, the task's chat messages (``info["messages"]`` at reset: MathEnv puts its
  instruction in a system turn, other envs give their observation as the user turn) are
  rendered with the assistant's turn opened, and the response continues it;
- agent envs (ALFWorld, TextWorld): an `AgentPrompt` renders the whole conversation, as a
  ReAct transcript or as chat turns (one assistant turn per action, one user turn per
  observation); with few-shot examples (``--fewshot N``, `oreo_agents.rollout.fewshot`),
  `Prompter.for_task` gives each episode a prompter whose `AgentPrompt` shows its own.

A served model without a local tokenizer (``--backend openai --chat-template`` without
``--tokenizer``) cannot have its template applied here: its agent conversations go to the
server as chat messages (``chat_messages``, `Prompter.messages`), the server applies the
template, and the text rendering, the plain transcript, is only what the episode stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import oreo_envs
from oreo_agents.rollout.agent_prompt import AgentPrompt
from oreo_envs.core import render_chat


class Prompter:
    """Renders prompts for any env (module docstring).

    Args:
        agent_prompt: How agent envs' conversations read (default: the plain `AgentPrompt`).
        tokenizer: A tokenizer whose chat template formats every prompt; None for plain text.
        control: Text that precedes an answer env's prompt as a segment of its own (a
            return-conditioned policy's control text); the collector puts it in front.
        fewshot: Picks each agent episode's examples (a `oreo_agents.rollout.fewshot.FewShot`);
            None shows only ``agent_prompt``'s own.
        chat_messages: Agent conversations are sent as chat messages (`messages`), rendered
            by the server's template; only agent envs have them (module docstring).

    Attributes:
        example_ids: The games shown as few-shot examples (a prompter of `for_task`).
    """

    def __init__(
        self, agent_prompt: AgentPrompt | None = None, *, tokenizer: Any = None, control: str = "",
        fewshot: Any = None, chat_messages: bool = False,
    ):  # fmt: skip
        self.agent = agent_prompt or AgentPrompt()
        self.tokenizer, self.control, self.fewshot = tokenizer, control, fewshot
        self.chat_messages = chat_messages
        self.example_ids: list[str] = []
        if tokenizer is not None and not getattr(tokenizer, "chat_template", None):
            render_chat(tokenizer, [])  # raises the no-template error

    @property
    def think(self) -> bool:
        """Whether agents may write ``think:`` lines (`AgentPrompt`)."""
        return self.agent.think

    def for_task(self, task_id: str, info: dict[str, Any]) -> Prompter:
        """The prompter of one agent episode: this one, or with few-shot examples chosen for
        ``task_id`` (``info`` is its reset info) when there are any to choose."""
        if self.fewshot is None:
            return self
        chosen = self.fewshot(task_id, info)
        agent = self.agent.with_examples([example for _, example in chosen])
        episode = Prompter(agent, tokenizer=self.tokenizer, control=self.control,
                           chat_messages=self.chat_messages)  # fmt: skip
        episode.example_ids = [game for game, _ in chosen]
        return episode

    def first(self, kind: str, observation: str, info: dict[str, Any]) -> str:
        """The prompt of an episode from the env's first observation and info."""
        if kind == "agent":
            return self.render(observation, [])
        if self.chat_messages:
            raise ValueError("--chat-template without the served model's tokenizer sends agent "
                             "envs' conversations as chat messages; for answer envs pass "
                             "--tokenizer")  # fmt: skip
        if self.tokenizer is None:
            return observation
        messages = info.get("messages") or [{"role": "user", "content": observation}]
        return render_chat(self.tokenizer, messages)

    def render(self, first_observation: str, history: Sequence[tuple[str, str]]) -> str:
        """An agent's conversation so far, ready for its next action."""
        return self.agent.render(first_observation, history, self.tokenizer)

    def messages(
        self, first_observation: str, history: Sequence[tuple[str, str]]
    ) -> list[dict[str, str]]:
        """An agent's conversation so far as chat messages, the next turn the assistant's: what
        a server applies its own chat template to (``chat_messages``)."""
        return self.agent.messages(first_observation, history)


def make_prompter(
    cfg: Any, tokenizer: Any, agent_prompt: AgentPrompt | None, env: Any = None, *,
    chat_messages: bool = False,
) -> Prompter:  # fmt: skip
    """The run's `Prompter`: ``agent_prompt`` (default: plain, with thoughts when ``cfg.think``),
    with ``cfg.chat_template`` the tokenizer's chat template for every env, and with
    ``cfg.fewshot`` the examples of each episode, drawn from ``env``'s expert demonstrations.
    ``chat_messages``: the backend takes chat messages (a served model without a local
    tokenizer), so ``cfg.chat_template`` without a tokenizer sends agents' conversations as
    messages (`Prompter`).

    Raises:
        ValueError: A chat template asked for without a model tokenizer (a scripted policy), or
            few-shot examples from an env that has none (or no ``env``).
    """
    messages = bool(cfg.chat_template and tokenizer is None and chat_messages)
    if messages and env is not None and oreo_envs.env_kind(env) != "agent":
        messages = False  # answer envs' prompts are texts to continue: refused below
    if cfg.chat_template and tokenizer is None and not messages:
        raise ValueError("--chat-template renders prompts with a model's tokenizer; a scripted "
                         "policy has none, nor does --backend openai without --tokenizer (or a "
                         "local folder as --model), which sends chat messages only for agent "
                         "envs' episodes")  # fmt: skip
    agent_prompt = agent_prompt or AgentPrompt(
        think=cfg.think, remind_task=getattr(cfg, "remind_task", False)
    )
    chat = tokenizer if cfg.chat_template else None
    fewshot = None
    if getattr(cfg, "fewshot", 0):
        if env is None:
            raise ValueError("--fewshot needs the env whose demonstrations it shows")
        from oreo_agents.rollout.fewshot import FewShot

        fewshot = FewShot(env, cfg.fewshot, cfg.seed)
    return Prompter(agent_prompt, tokenizer=chat, control=cfg.control, fewshot=fewshot,
                    chat_messages=messages)  # fmt: skip
