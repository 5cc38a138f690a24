"""Import/export of the published OREO formats round-trips exactly."""

from __future__ import annotations

import json
import random

import pytest

from oreo_agents.data.batches import load_training_episodes
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


def make_store(tmp_path):
    store = tmp_path / "store"
    convert(write(tmp_path / "math.jsonl", MATH_ROWS), store, src_format="oreo-math")
    return store


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("dst", ["episodes-00000.jsonl", "manifest.json", "new.jsonl", "."])
def test_export_into_its_own_store_is_refused(tmp_path, dst):
    store = make_store(tmp_path)
    before = snapshot(store)
    with pytest.raises(ValueError, match="inside the input store"):
        convert(store, store / dst, src_format="oreo", dst_format="oreo-math")
    shard = store / "episodes-00000.jsonl"
    with pytest.raises(ValueError, match="inside the input store|is the input"):
        convert(shard, store / dst, src_format="oreo")
    assert snapshot(store) == before


def test_export_onto_its_input_file_is_refused(tmp_path):
    store = make_store(tmp_path)
    loose = tmp_path / "eps.jsonl"
    loose.write_bytes((store / "episodes-00000.jsonl").read_bytes())
    with pytest.raises(ValueError, match="is the input"):
        convert(loose, tmp_path / "." / "eps.jsonl", src_format="oreo")
    assert len(load_episodes(loose)) == 3


def test_export_of_a_corrupt_store_leaves_no_output(tmp_path):
    store = make_store(tmp_path)
    shard = store / "episodes-00000.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(lines[0] + b"{not json\n" + lines[1])
    out = tmp_path / "out.jsonl"
    with pytest.raises(EpisodeFormatError, match="episodes-00000.jsonl:2"):
        convert(store, out, src_format="oreo")
    assert not out.exists()
    out.write_text("kept\n")
    with pytest.raises(EpisodeFormatError):
        convert(store, out, src_format="oreo")
    assert out.read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["math.jsonl", "out.jsonl", "store"]


def test_import_of_a_file_corrupt_halfway_leaves_no_store(tmp_path):
    src = tmp_path / "math.jsonl"
    src.write_text(json.dumps(MATH_ROWS[0]) + "\n" + json.dumps(MATH_ROWS[1]) + "\n{not json\n")
    with pytest.raises(EpisodeFormatError, match="math.jsonl:3"):
        convert(src, tmp_path / "store", src_format="oreo-math")
    assert not (tmp_path / "store").exists()


def test_import_into_the_folder_of_its_input_is_refused(tmp_path):
    src = write(tmp_path / "episodes-00000.jsonl", MATH_ROWS)
    with pytest.raises(ValueError, match="inside the output store"):
        convert(src, tmp_path, src_format="oreo-math")
    assert read_jsonl(src) == MATH_ROWS and not (tmp_path / "manifest.json").exists()


def test_binary_garbage_is_named(tmp_path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(random.Random(0).randbytes(4096))
    for fmt, dst in [("oreo-math", tmp_path / "store"), ("oreo", tmp_path / "out.jsonl")]:
        with pytest.raises(EpisodeFormatError, match=r"garbage.jsonl:\d+: "):
            convert(garbage, dst, src_format=fmt)
        assert not dst.exists()
    with pytest.raises(ValueError, match=r"garbage.jsonl:\d+: "):
        load_training_episodes(str(garbage))


def test_bad_imported_records_name_the_file(tmp_path):
    bad = write(tmp_path / "bad.jsonl", [MATH_ROWS[0], {"prompt": "p"}])
    with pytest.raises(EpisodeFormatError, match="bad.jsonl: record 2: needs 'prompt'"):
        convert(bad, tmp_path / "store", src_format="oreo-math")
    agent = write(tmp_path / "agent.jsonl", [{"conversations": [], "reward": 1}])
    with pytest.raises(EpisodeFormatError, match="agent.jsonl: record 1: needs a non-empty"):
        convert(agent, tmp_path / "store", src_format="oreo-agent")
