"""Agent prompts: ReAct transcripts, chat messages, action parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from oreo_agents.rollout.agent_prompt import (
    THINK_REPLY,
    AgentPrompt,
    Example,
    example_from_episode,
    is_think,
    load_react_examples,
    parse_action,
    parse_transcript,
)

REACT = Path(__file__).resolve().parents[2].parent / "shared/data/alfworld/prompts"
REACT_FILE = REACT / "react_alfworld_3prompts.json"
EXAMPLE = Example(
    "Room.\nYour task is to: x.", (("think: find x", "OK."), ("go to a 1", "On a 1."))
)


@pytest.mark.parametrize(
    "generation, action",
    [
        ("go to desk 1", "go to desk 1"),
        ("\n  > take mug 1 from desk 1\nYou pick up", "take mug 1 from desk 1"),
        ("Action: open fridge 1", "open fridge 1"),
        ("> Action: look\n", "look"),
        ("", ""),
    ],
)
def test_parse_action(generation, action):
    assert parse_action(generation) == action


def test_parse_transcript():
    demo = parse_transcript(
        "Room.\nYour task is to: x.\n> think: find x\nOK.\n> go to a 1\nOn a 1."
    )
    assert demo == EXAMPLE
    assert is_think(demo.steps[0][0]) and demo.steps[0][1] == THINK_REPLY


def test_plain_render_is_the_react_transcript():
    prompt = AgentPrompt("Do it.", [EXAMPLE], think=True)
    text = prompt.render("Room 2.", [("go to b 1", "On b 1.")])
    assert text == (
        "Do it. You may also reply 'think: ...' to reason; thoughts are answered 'OK.'.\n\n"
        "Example 1:\nRoom.\nYour task is to: x.\n> think: find x\nOK.\n> go to a 1\nOn a 1.\n\n"
        "Now it is your turn.\n\nRoom 2.\n> go to b 1\nOn b 1.\n> "
    )


def test_without_think_the_examples_lose_their_thoughts():
    text = AgentPrompt("Do it.", [EXAMPLE]).render("Room 2.", [])
    assert "think" not in text and text.endswith("Room 2.\n> ")


def test_task_reminder_follows_every_observation_and_stays_append_only():
    """``remind_task``: the first observation's task line after each observation of the
    history, in text and chat messages; each turn's prompt extends the last (what lets an
    episode store exactly what the agent saw); nothing changes without a task line."""
    first = "Room 2.\n\nYour task is to: put a mug in shelf."
    prompt = AgentPrompt("Do it.", [EXAMPLE], remind_task=True)
    history = [("go to b 1", "On b 1, a mug 1."), ("take mug 1 from b 1", "You pick it up.")]
    renders = [prompt.render(first, history[:i]) for i in range(3)]
    assert renders[2].endswith(
        "Your task is to: put a mug in shelf.\n> go to b 1\nOn b 1, a mug 1.\n"
        "Your task is to: put a mug in shelf.\n> take mug 1 from b 1\nYou pick it up.\n"
        "Your task is to: put a mug in shelf.\n> "
    )
    assert renders[0] == AgentPrompt("Do it.", [EXAMPLE]).render(first, [])
    assert renders[0] in renders[1] and renders[1].startswith(renders[0][:-2])
    assert renders[2].startswith(renders[1]) and renders[1].startswith(renders[0])
    assert "Example 1:\nRoom.\nYour task is to: x.\n> go to a 1\nOn a 1.\n\n" in renders[2]
    msgs = prompt.messages(first, history)
    assert msgs[2]["content"] == "On b 1, a mug 1.\nYour task is to: put a mug in shelf."
    plain = AgentPrompt("Do it.", remind_task=True).render("Room.", history)
    assert plain == AgentPrompt("Do it.").render("Room.", history)


def test_messages_alternate_and_keep_the_whole_history():
    prompt = AgentPrompt("Do it.")
    msgs = prompt.messages("Room.", [("look", "A room."), ("inventory", "Nothing.")])
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert msgs[1:] == [
        {"role": "assistant", "content": "look"},
        {"role": "user", "content": "A room."},
        {"role": "assistant", "content": "inventory"},
        {"role": "user", "content": "Nothing."},
    ]


def test_chat_template_is_applied():
    class Tok:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"

    out = AgentPrompt("Do it.").render("Room.", [("look", "A room.")], tokenizer=Tok())
    assert out == "user:Do it.\n\nRoom.|assistant:look|user:A room.|assistant:"


def test_example_from_episode():
    ep = {"prompt": "Room.", "steps": [{"action": "look", "observation": "A room."}]}
    assert example_from_episode(ep) == Example("Room.", (("look", "A room."),))


@pytest.mark.skipif(not REACT_FILE.is_file(), reason="no shared ReAct prompts")
def test_react_file_examples():
    puts = load_react_examples(REACT_FILE, "pick_and_place_simple")
    assert len(puts) == 3 and all(d.first_observation.startswith("You are in") for d in puts)
    assert len(load_react_examples(REACT_FILE)) == 18
    acts = load_react_examples(REACT_FILE, "look_at_obj_in_light", style="act")
    assert len(acts) == 3 and not any(is_think(a) for d in acts for a, _ in d.steps)
    with pytest.raises(ValueError, match="unknown task type"):
        load_react_examples(REACT_FILE, "pick_and_cook")
