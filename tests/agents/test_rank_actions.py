"""Acting by the policy's likelihood of the admissible actions (``rank_actions``): the scores
are the model's log-probabilities of each action's ids after the context, the most likely one
is played at temperature 0, and what is logged is what training and scoring read."""

from __future__ import annotations

import gymnasium
import pytest
import torch

import oreo_envs  # noqa: F401
from oreo_agents.data.inputs import encode_text
from oreo_agents.data.tokenization import tokenize_episode
from oreo_agents.generation.hf import HFBackend
from oreo_agents.rollout.config import CollectConfig

ENV = "oreo/ALFWorld-v0"
ARGS = {"split": "bundled", "max_episode_steps": 4}


def brute_force(model, context, continuation):
    """Summed log-probability of ``continuation`` after ``context``, one full pass."""
    ids = torch.tensor([context + continuation])
    with torch.no_grad():
        logps = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    return sum(logps[len(context) - 1 + j, t].item() for j, t in enumerate(continuation))


def test_continuation_scores_equal_full_passes(chat_model):
    model, tok = chat_model
    context = encode_text(tok, "You are in a room.\n> go to shelf 1\nOn it a mug.\n> ")
    texts = ["take mug 1 from shelf 1\n", "look\n", "\n", "go to shelf 12\n", "x"]
    continuations = [encode_text(tok, t) for t in texts]
    for batch_size in (2, 8):  # chunks of the continuations re-use the same context cache
        got = HFBackend(model, tok, batch_size=batch_size).score_continuations(
            context, continuations
        )
        want = [brute_force(model, context, c) for c in continuations]
        assert got == pytest.approx(want, abs=1e-4)
    with pytest.raises(ValueError, match="at least one token"):
        HFBackend(model, tok).score_continuations(context, [[]])


def test_shared_beginnings_run_once_and_score_as_full_passes(chat_model):
    """Admissible actions share their first tokens ("go to shelf 1", "go to shelf 12", ...):
    packed as a prefix tree, each shared token runs once, and every score, the policy's and a
    value model's, still equals a full pass: with repeats, one continuation a prefix of
    another, and one token alone."""
    from oreo_agents.models.scorer import ValueScorer
    from oreo_agents.models.value import ValueModel

    model, tok = chat_model
    context = encode_text(tok, "You are in a room.\n> ")
    texts = ["go to shelf 1\n", "go to shelf 12\n", "go to shelf 2\n", "go to desk 1\n",
             "go to shelf 1\n", "go to shelf 1", "take mug 1 from shelf 1\n", "x"]  # fmt: skip
    continuations = [encode_text(tok, t) for t in texts]
    backend = HFBackend(model, tok, batch_size=16)
    got = backend.score_continuations(context, continuations)
    assert got == pytest.approx([brute_force(model, context, c) for c in continuations], abs=1e-4)
    assert got[0] == got[4] and got[0] != got[1]
    ran = backend._prefix.run_tokens - len(context)
    assert ran < sum(map(len, continuations)) - len(continuations[0]) * 2  # repeats and more
    value = ValueModel(model.model, form="last")
    torch.nn.init.normal_(value.head.weight, std=1.0, generator=torch.Generator().manual_seed(0))
    scorer = ValueScorer(value, tok, batch_size=16)
    want = scorer([context + c for c in continuations])
    assert scorer.values_after(context, continuations) == pytest.approx(want, abs=1e-4)


def test_a_context_extended_step_by_step_scores_as_a_full_pass(chat_model):
    """An agent's next context extends its last one: only the new tokens run, on a copy of the
    cached prefix, and two contexts that share a prefix do not disturb each other."""
    model, tok = chat_model
    backend = HFBackend(model, tok, batch_size=2)
    actions = [encode_text(tok, t) for t in ("look\n", "take mug 1 from shelf 1\n", "help\n")]
    start = encode_text(tok, "You are in a room.\n> ")
    one = start + encode_text(tok, "go to shelf 1\nOn it a mug.\n> ")
    two = start + encode_text(tok, "go to desk 1\nOn it a pen.\n> ")
    longer = one + encode_text(tok, "look\nYou see a room.\n> ")
    for context in (start, one, two, longer, one, start):  # hits, misses and repeats
        got = backend.score_continuations(context, actions)
        assert got == pytest.approx([brute_force(model, context, a) for a in actions], abs=1e-4)
    assert len(backend._prefix._entries) == 4  # start, one, two, longer: each kept once


@pytest.mark.parametrize("form", ["last", "logprob"])
def test_value_after_a_cached_context_equals_the_value_of_the_whole_state(chat_model, form):
    """Value-guided acting scores K candidates after an agent's history: through the cached
    context (`ValueScorer.values_after`) each value equals the value of the whole state run
    from scratch, for a Qwen2 and a Llama backbone, both value forms (the logprob form's
    running sum carried from one cached context to the next), a history extended step by
    step, chunks of candidates, and a nonzero head (a zero head would make every value 0
    either way)."""
    from oreo_agents.models.scorer import ValueScorer
    from oreo_agents.models.tiny import _random_llama
    from oreo_agents.models.value import ValueModel

    qwen, tok = chat_model
    llama = _random_llama(tok, 32, 64, 2, 4, 4096, seed=1, out_dir=None)
    start = encode_text(tok, "You are in a room.\n> ")
    one = start + encode_text(tok, "go to shelf 1\nOn it a mug.\n> ")
    longer = one + encode_text(tok, "look\nYou see a room.\n> ")
    actions = [encode_text(tok, t) for t in ("look\n", "take mug 1 from shelf 1\n", "x")]
    for lm in (qwen, llama):
        value = ValueModel(lm.model if form == "last" else lm, form=form)  # logprob: an LM
        gen = torch.Generator().manual_seed(0)
        torch.nn.init.normal_(value.head.weight, std=1.0, generator=gen)
        if form == "logprob":
            torch.nn.init.constant_(value.head.logprob_weight, 0.7)
            torch.nn.init.constant_(value.head.token_bias, -0.3)
        full, cached = ValueScorer(value, tok, batch_size=2), ValueScorer(value, tok, batch_size=2)
        for context in (start, one, longer, one):
            want = full([context + a for a in actions])
            assert cached.values_after(context, actions) == pytest.approx(want, abs=1e-4)
            assert len(set(want)) == len(want)  # distinct values: the test can tell them apart
        # the cache ran each context's new tokens once; whole states run every history again
        assert cached.scored_tokens < full.scored_tokens / 2
    # an empty continuation is the context itself
    assert cached.values_after(one, [[], actions[0]]) == pytest.approx(
        full([one, one + actions[0]]), abs=1e-4
    )


def collect(chat_model, tmp_path, temperature, seed=0, remind_task=False):
    from oreo_agents.data.episodes import load_episodes
    from oreo_agents.rollout.collect import run_collect

    model, tok = chat_model
    cfg = CollectConfig(env=ENV, env_options=ARGS, model="m", out=str(tmp_path), tasks=3,
                        temperature=temperature, rank_actions=True, seed=seed,
                        remind_task=remind_task)  # fmt: skip
    run_collect(cfg, lambda: gymnasium.make(ENV, **ARGS), backend=HFBackend(model, tok))
    return load_episodes(tmp_path)


@pytest.mark.parametrize("remind_task", [False, True])
def test_greedy_ranking_plays_the_most_likely_admissible_action(chat_model, tmp_path, remind_task):
    """Also with the task reminder: the episode stores the rendering with the reminders, the
    actions were ranked after exactly that context, and training reads it."""
    from oreo_agents.data.inputs import stored_ids
    from oreo_agents.rollout.agent_prompt import AgentPrompt, task_line

    model, tok = chat_model
    episodes = collect(chat_model, tmp_path / "greedy", temperature=0.0, remind_task=remind_task)
    assert len(episodes) == 3
    for ep in episodes:
        first = ep.info["first_observation"]
        history = [(s["action"], s["env_observation"]) for s in ep.steps]
        text = ep.prompt + "".join(s["action"] + s["observation"] for s in ep.steps)
        assert text == AgentPrompt(remind_task=remind_task).render(first, history)
        assert (text.count(task_line(first)) == 1 + len(ep.steps)) == remind_task
    env = gymnasium.make(ENV, **ARGS)
    for ep in episodes:
        # replay the episode: at each step the played action is the argmax of full passes
        _, info = env.reset(options={"task_id": ep.task_id})
        prompt, steps = stored_ids(ep, tok)
        context = list(prompt)
        for step, (action_ids, observation_ids) in zip(ep.steps, steps, strict=True):
            admissible = list(dict.fromkeys(info["admissible_actions"]))
            assert step["action"] in admissible
            # the logged ids end with the action's newline: what training reads and trains
            assert tok.decode(action_ids) == step["action"] + "\n"
            scores = {}
            for a in admissible:
                ids = encode_text(tok, a) + encode_text(tok, "\n")
                scores[a] = brute_force(model, context, ids)
            best = max(scores.values())
            assert scores[step["action"]] == pytest.approx(best, abs=1e-4)
            _, _, _, _, info = env.step(step["action"])
            context += action_ids + observation_ids
        item = tokenize_episode(ep, tok)
        assert item.input_ids == context  # training reads the ids the policy acted on


def test_sampled_ranking_is_seeded_and_explores(chat_model, tmp_path):
    # a random model gives a one-token "help" a far higher log-probability than any longer
    # action; a high temperature flattens the choice towards uniform over the admissible ones
    first = collect(chat_model, tmp_path / "a", temperature=100.0, seed=3)
    again = collect(chat_model, tmp_path / "b", temperature=100.0, seed=3)
    greedy = collect(chat_model, tmp_path / "g", temperature=0.0, seed=3)

    def actions(eps):
        return [[s["action"] for s in e.steps] for e in eps]

    assert actions(first) == actions(again)
    assert actions(first) != actions(greedy)


def test_rank_actions_refuses_answer_envs(chat_model, tmp_path):
    from oreo_agents.rollout.collect import run_collect

    model, tok = chat_model
    cfg = CollectConfig(env="oreo/Chain-v0", env_options={"size": 4}, model="m",
                        out=str(tmp_path), tasks=1, rank_actions=True)  # fmt: skip
    with pytest.raises(ValueError, match="agent env"):
        run_collect(cfg, lambda: gymnasium.make("oreo/Chain-v0", size=4),
                    backend=HFBackend(model, tok))  # fmt: skip


def test_value_guided_acting_picks_among_the_policys_top_k(chat_model, tmp_path):
    from oreo_agents.evaluation.acting import act_with_value

    model, tok = chat_model

    class Shortest:
        """A value that prefers the shortest state (so its pick is checkable by hand)."""

        tokenizer = tok

        def __call__(self, states):
            return [-float(len(s)) for s in states]

    env = gymnasium.make(ENV, **ARGS)
    make = lambda: gymnasium.make(ENV, **ARGS)  # noqa: E731
    greedy = collect(chat_model, tmp_path / "greedy", temperature=0.0)
    tasks = [e.task_id for e in greedy]
    cfg = CollectConfig(env=ENV, env_options=ARGS, model="m", out="", rank_actions=True)
    backend = HFBackend(model, tok)
    # K = 1: the value has one candidate, the policy's most likely action: ranked greedy
    one = act_with_value(cfg, make, tasks, backend=backend, value_fn=Shortest(), k=1)
    by_task = {e.task_id: [s["action"] for s in e.steps] for e in greedy}
    assert [[s["action"] for s in e.steps] for e in one] == [by_task[t] for t in tasks]
    # K = 3: the value picks the shortest of the policy's three most likely actions
    three = act_with_value(cfg, make, tasks, backend=backend, value_fn=Shortest(), k=3)
    from oreo_agents.data.inputs import stored_ids

    for ep in three:
        _, info = env.reset(options={"task_id": ep.task_id})
        assert ep.meta["candidates"] == 3 * len(ep.steps)
        prompt, steps = stored_ids(ep, tok)
        context = list(prompt)
        for step, (action_ids, observation_ids) in zip(ep.steps, steps, strict=True):
            admissible = list(dict.fromkeys(info["admissible_actions"]))
            ids = {a: encode_text(tok, a) + encode_text(tok, "\n") for a in admissible}
            logp = {a: brute_force(model, context, ids[a]) for a in admissible}
            top = sorted(admissible, key=lambda a: -logp[a])[:3]
            assert step["action"] == min(top, key=lambda a: len(ids[a]))
            _, _, _, _, info = env.step(step["action"])
            context += action_ids + observation_ids
