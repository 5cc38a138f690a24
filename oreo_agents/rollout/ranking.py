"""Acting by ranking an agent env's admissible actions by the policy's own log-probability of
each (``--rank-actions``): the ids an action known as text adds to a context, as training
encodes them, and the policy's scores of all of them after the context (one pass over the
cached context, `oreo_agents.generation.hf.HFBackend.score_continuations`; a served model's
prompt log-probs, `oreo_agents.generation.openai_backend.OpenAIBackend.score_continuations`)."""

from __future__ import annotations

from oreo_agents.data.inputs import action_segment
from oreo_agents.generation import Backend
from oreo_agents.rollout.config import CollectConfig
from oreo_agents.rollout.stepping import Slot, context, drive_mode, episode_seed


def ranked_actions(backend: Backend, slots: list[Slot], cfg: CollectConfig):
    """``cfg.rank_actions``: each slot's admissible action chosen by the policy's log-probability
    of it (`score_admissible`); (action, tokens, "ranked", None) per slot."""
    import torch

    out = []
    for slot in slots:
        admissible, ids, logps = score_admissible(backend, slot, cfg.env)
        logps = torch.tensor(logps)
        if cfg.temperature == 0:
            pick = int(logps.argmax())  # ties go to the first admissible action
        else:
            gen = torch.Generator().manual_seed(episode_seed(cfg.seed, slot))
            probs = torch.softmax(logps / cfg.temperature, dim=0)
            pick = int(torch.multinomial(probs, 1, generator=gen))
        out.append((admissible[pick], len(ids[pick]), "ranked", None))
    return out


def score_admissible(backend: Backend, slot: Slot, env_id: str):
    """A slot's admissible actions (once each, in the env's order), their ids (`action_ids`)
    and the policy's log-probability of each after the context: ``(actions, ids, logps)``."""
    if not hasattr(backend, "score_continuations"):
        raise ValueError(
            f"rank_actions scores actions with the hf or openai backend, not {backend.name}"
        )
    admissible = list(dict.fromkeys(slot.info.get("admissible_actions") or []))
    if drive_mode(slot) != "agent" or not admissible:
        raise ValueError(f"rank_actions needs an agent env with admissible actions: {env_id}")
    if slot.tokenizer is None or slot.ids is None:  # a served model known by name only
        raise ValueError(
            "rank_actions scores actions by their tokens and needs the model's tokenizer: with "
            "--backend openai pass --tokenizer, or serve a local folder and name it as --model"
        )
    ids = [action_ids(slot, a) for a in admissible]
    return admissible, ids, backend.score_continuations(slot.ids, ids)


def following_action(slot: Slot, action: str) -> str:
    """What an agent's prompt renders after ``action``, up to the env's reply (not known yet:
    a stand-in no generation ends with, so a generated newline is never taken for it)."""
    rendered = slot.formatter.render(slot.first_obs, [*slot.history, (action, "\x00")])
    return rendered[len(context(slot)) + len(action) :]


def action_ids(slot: Slot, action: str) -> list[int]:
    """The ids an agent's action known as text adds to the slot's context, as training encodes
    it (`oreo_agents.data.inputs.action_segment`: its closing newline or end of turn too)."""
    following = following_action(slot, action)
    key = (action, following)
    if key not in slot.action_ids:  # the slot's tokenizer is fixed: the same text, the same ids
        slot.action_ids[key] = action_segment(slot.tokenizer, action, following, agent=True)[0]
    return list(slot.action_ids[key])
