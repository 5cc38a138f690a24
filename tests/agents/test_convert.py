"""Import/export of the published OREO formats round-trips exactly."""

from __future__ import annotations

import json

import pytest

from oreo_agents.data.convert import convert, prompt_task_id
from oreo_agents.data.episodes import EpisodeFormatError, load_episodes

MATH_ROWS = [
    {
        "prompt": "User: 2+2?\nAssistant:",
        "response": " 2+2=4. The answer is $\\boxed{4}$.",
        "reward": 1,
    },
    {"prompt": "User: 2+2?\nAssistant:", "response": " It is $\\boxed{5}$.", "reward": 0},
    {"prompt": "User: 3*3?\nAssistant:", "response": " $\\boxed{9}$", "reward": 1, "source": "x"},
]

AGENT_ROWS = [
    {
        "id": "pick_and_place_simple-Book-None-Sofa-229/trial_1",
        "conversations": [
            {"from": "human", "value": "Interact with a household to solve a task. ..."},
            {"from": "gpt", "value": "OK"},
            {
                "from": "human",
                "value": "You are in the middle of a room. Your task is to: put a book in sofa.",
            },
            {"from": "gpt", "value": "Thought: find the book.\nAction: go to shelf 1"},
            {"from": "human", "value": "On the shelf 1, you see a book 1."},
            {"from": "gpt", "value": "Action: take book 1 from shelf 1"},
            {"from": "human", "value": "You pick up the book 1 from the shelf 1."},
            {"from": "gpt", "value": "Action: put book 1 in/on sofa 1"},
        ],
        "reward": 1.0,
    },
    {
        "conversations": [
            {"role": "user", "content": "Your task is to: look at a cd under the desklamp."},
            {"role": "assistant", "content": "go to desk 1"},
            {"role": "user", "content": "Nothing happens."},
        ],
        "reward": 0,
    },
]


def write(path, rows, as_list=False):
    path.write_text(json.dumps(rows) if as_list else "".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_oreo_math_round_trip(tmp_path):
    src = write(tmp_path / "math.jsonl", MATH_ROWS)
    assert convert(src, tmp_path / "store", src_format="oreo-math") == 3
    eps = load_episodes(tmp_path / "store")
    assert [e.key for e in eps] == [
        (prompt_task_id(MATH_ROWS[0]["prompt"]), 0),
        (prompt_task_id(MATH_ROWS[0]["prompt"]), 1),  # same problem -> same task, next sample
        (prompt_task_id(MATH_ROWS[2]["prompt"]), 0),
    ]
    assert [e.success for e in eps] == [True, False, True]
    assert convert(tmp_path / "store", tmp_path / "out.jsonl", src_format="oreo") == 3
    assert read_jsonl(tmp_path / "out.jsonl") == MATH_ROWS


@pytest.mark.parametrize("as_list", [False, True])
def test_oreo_agent_round_trip(tmp_path, as_list):
    src = write(tmp_path / "agent.json", AGENT_ROWS, as_list=as_list)
    convert(src, tmp_path / "store", src_format="oreo-agent")
    first, second = load_episodes(tmp_path / "store")
    assert first.task_id == AGENT_ROWS[0]["id"]
    assert first.prompt.startswith("You are in the middle of a room")
    assert first.actions == [
        "Thought: find the book.\nAction: go to shelf 1",
        "Action: take book 1 from shelf 1",
        "Action: put book 1 in/on sofa 1",
    ]
    assert first.steps[-1]["observation"] == "" and first.env_id == "oreo/ALFWorld-v0"
    assert second.steps == [{"action": "go to desk 1", "observation": "Nothing happens."}]
    convert(tmp_path / "store", tmp_path / "out.jsonl", src_format="oreo")
    assert read_jsonl(tmp_path / "out.jsonl") == AGENT_ROWS


def test_import_is_resumable_and_bad_records_are_named(tmp_path):
    src = write(tmp_path / "math.jsonl", MATH_ROWS)
    convert(src, tmp_path / "store", src_format="oreo-math")
    assert convert(src, tmp_path / "store", src_format="oreo-math") == 0  # nothing twice
    bad = write(tmp_path / "bad.jsonl", [MATH_ROWS[0], {"prompt": "p"}])
    with pytest.raises(EpisodeFormatError, match="record 2: needs 'prompt', 'response'"):
        convert(bad, tmp_path / "store2", src_format="oreo-math")
    with pytest.raises(ValueError, match="unknown format"):
        convert(src, tmp_path / "s3", src_format="csv")
