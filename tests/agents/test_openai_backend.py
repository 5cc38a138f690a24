"""The served-model backend against a real HTTP server (tests/served_server.py): an
OpenAI-compatible ``/v1`` API over the tiny HF model (vLLM's answers: ``stop_reason``, ids as
``token_id:N``), with faults to inject (429, 500, slow answers, dropped connections)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oreo_agents.data.episodes import load_episodes
from oreo_agents.generation import SamplingParams, load_backend
from oreo_agents.generation.openai_backend import ServedModelError, ServerUnreachable
from served_server import Server

pytest.importorskip("httpx")  # the extra oreo[served]

PROMPTS = ["User: 7*8?", "hello", "a much longer prompt here"]


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    return load_backend("hf", str(tiny_model_dir), batch_size=4)


@pytest.fixture
def serve():
    servers = []

    def start(*args, **kwargs):
        servers.append(Server(*args, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def client(server, model=None, **kwargs):
    kwargs = {"backoff": 0.01, **kwargs}
    return load_backend("openai", model or server.name, base_url=server.url, **kwargs)


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


GREEDY = SamplingParams(temperature=0, max_new_tokens=12)
STEPS = SamplingParams(temperature=0, max_new_tokens=24, stop=("e", "\n"))


@pytest.mark.parametrize("params", [GREEDY, STEPS], ids=["greedy", "stop-strings"])
def test_greedy_through_the_server_equals_the_hf_backend(hf, serve, tiny_model_dir, params):
    server = serve(hf, name=str(tiny_model_dir))  # served under its folder: ids, tokenizer
    backend = client(server)
    assert backend.tokenizer is not None
    want = [g[0] for g in hf.generate(PROMPTS, params)]
    got = [g[0] for g in backend.generate(PROMPTS, params)]
    for w, g in zip(want, got, strict=True):
        assert (g.text, g.token_ids, g.finish_reason, g.eos_id) == (
            w.text, w.token_ids, w.finish_reason, w.eos_id,
        )  # fmt: skip
        assert not g.text_only


def test_seeded_samples_equal_the_hf_backend_eos_included(hf, serve, tiny_model_dir):
    backend = client(serve(hf, name=str(tiny_model_dir)))
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=48, stop=("\n",))
    want = hf.generate(PROMPTS, params, seeds=[1, 2, 3])
    got = backend.generate(PROMPTS, params, seeds=[1, 2, 3])
    assert {c.finish_reason for g in want for c in g} == {"eos", "stop", "length"}
    assert got == want


def test_finish_reasons_of_servers_without_vllm_fields(hf, serve):
    """No ``stop_reason``, no ids, the stop string cut from the text (OpenAI's own rule)."""
    backend = client(serve(hf))
    params = SamplingParams(stop=("\n\n", "Step"))
    mapped = [
        backend.completion({"text": text, "finish_reason": reason, **extra}, params)
        for text, reason, extra in [
            ("4 + 4 = 8.\n\n", "stop", {}),  # the stop string kept
            ("4 + 4 = 8.", "stop", {"stop_reason": "\n\n"}),  # cut, then named (vLLM)
            ("4 + 4 = 8.", "stop", {"matched_stop": "\n\n"}),  # (SGLang)
            ("The answer is 8.", "stop", {}),  # no stop string: the model's EOS
            ("4 + 4", "length", {}),
        ]
    ]
    assert [(c.text, c.finish_reason) for c in mapped] == [
        ("4 + 4 = 8.\n\n", "stop"), ("4 + 4 = 8.\n\n", "stop"), ("4 + 4 = 8.\n\n", "stop"),
        ("The answer is 8.", "eos"),
        ("4 + 4", "length"),
    ]  # fmt: skip
    assert all(c.text_only and c.token_ids == [] for c in mapped)


def test_served_name_without_a_folder_is_text_only_unless_ids_come_back(hf, serve):
    want = [g[0] for g in hf.generate(PROMPTS, STEPS)]
    with_ids = client(serve(hf, name="tiny"))
    assert with_ids.tokenizer is None
    got = [g[0] for g in with_ids.generate(PROMPTS, STEPS)]
    assert [(c.text, c.token_ids, c.finish_reason) for c in got] == [
        (c.text, c.token_ids, c.finish_reason) for c in want
    ]
    text_only = [g[0] for g in client(serve(hf, name="tiny", ids=False)).generate(PROMPTS, STEPS)]
    assert [(c.text, c.finish_reason) for c in text_only] == [
        (c.text, c.finish_reason) for c in want
    ]
    assert all(c.text_only and c.token_ids == [] for c in text_only)


def test_seeded_samples_follow_the_seed(hf, serve):
    backend = client(serve(hf))
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8)
    a = backend.generate(PROMPTS, params, seeds=[1, 2, 3])
    b = backend.generate(PROMPTS[::-1], params, seeds=[3, 2, 1])[::-1]
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]


@pytest.mark.parametrize("fault", ["429", "500", "slow", "drop"])
def test_failures_are_retried_and_give_the_same_result(hf, serve, fault):
    server = serve(hf)
    backend = client(server, request_timeout=0.5)
    want = backend.generate(PROMPTS, GREEDY)
    server.faults = [fault, fault]
    before = server.requests
    assert backend.generate(PROMPTS, GREEDY) == want
    assert server.requests - before == len(PROMPTS) + 2  # two retries


def test_retries_run_out_with_one_line(serve):
    server = serve()
    backend = client(server, max_retries=2)
    server.faults = ["500"] * 3
    with pytest.raises(ServerUnreachable, match="failed 3 times, last with 500") as e:
        backend.generate(["x"], GREEDY)
    assert "\n" not in str(e.value)


def test_a_refused_request_ends_the_call_without_waiting_for_the_others(serve):
    server = serve(delay=3.0)
    backend = client(server, concurrency=4)
    server.faults = ["400"]  # the first request; the others take 3 s each
    start = time.perf_counter()
    with pytest.raises(ServedModelError, match="refused a request: 400 Bad Request"):
        backend.generate(["x"] * 8, GREEDY)
    assert time.perf_counter() - start < 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("unreachable", ServerUnreachable, "cannot reach a server at"),
        ("silent", ServerUnreachable, "did not answer"),
        ("model", ServedModelError, "does not serve the model 'tinyy'; it serves 'tiny'"),
        ("key", ServedModelError, r"refused the request \(401\): the API key in \$OPENAI_API_KEY"),
        ("path", ServedModelError, "not an OpenAI-compatible API root"),
        ("scheme", ValueError, "is not an http\\(s\\) URL"),
    ],
)
def test_bad_configurations_fail_fast_on_one_line(
    request, serve, monkeypatch, case, error, message
):
    server = serve(key="secret" if case == "key" else None)
    url, model = server.url, "tiny"
    silent = socket.socket()  # listens, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    request.addfinalizer(silent.close)
    if case == "unreachable":
        url = f"http://127.0.0.1:{free_port()}/v1"
    elif case == "silent":
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
    elif case == "model":
        model = "tinyy"
    elif case == "key":
        monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    elif case == "path":
        url = url.removesuffix("/v1")
    elif case == "scheme":
        url = url.removeprefix("http://")
    start = time.perf_counter()
    with pytest.raises(error, match=message) as e:
        load_backend("openai", model, base_url=url)
    assert time.perf_counter() - start < 3
    assert "\n" not in str(e.value) and "secret" not in str(e.value)


def test_the_key_comes_from_the_environment(serve, monkeypatch):
    server = serve(key="secret")
    with pytest.raises(ServedModelError, match="is not set"):
        client(server)
    monkeypatch.setenv("OPENAI_API_KEY", "secret")
    assert client(server).generate(["x"], GREEDY)[0][0].text == "ok"


def test_requests_run_concurrently(serve):
    delay, n, concurrency = 0.2, 8, 4
    backend = client(serve(delay=delay), concurrency=concurrency)
    start = time.perf_counter()
    backend.generate(["x"] * n, GREEDY)
    assert time.perf_counter() - start < n * delay / 2  # serial: n * delay


# -- The CLI end to end, in this process (the server thread lives here).


def cli(*args: str):
    from oreo_cli.main import app

    return CliRunner().invoke(app, list(args))


ENV_ARGS = ("--env", "oreo/GSMSymbolic-v0", "-o", "size=40", "--tasks", "4",
            "--temperature", "0", "--max-new-tokens", "12")  # fmt: skip


def episodes(out: Path):
    return sorted(load_episodes(out), key=lambda e: e.key)


@pytest.mark.parametrize("served_as", ["folder", "name", "name+tokenizer"])
def test_collect_through_the_server_writes_the_hf_episodes(
    hf, serve, tiny_model_dir, tmp_path, served_as
):
    name = str(tiny_model_dir) if served_as == "folder" else "tiny"
    server = serve(hf, name=name)
    extra = ("--tokenizer", str(tiny_model_dir)) if served_as == "name+tokenizer" else ()
    local = cli("collect", *ENV_ARGS, "--backend", "hf", "--model", str(tiny_model_dir),
                "--out", str(tmp_path / "hf"))  # fmt: skip
    assert local.exit_code == 0, local.output
    served = cli("collect", *ENV_ARGS, "--backend", "openai", "--base-url", server.url,
                 "--model", name, *extra, "--out", str(tmp_path / "served"))  # fmt: skip
    assert served.exit_code == 0, served.output
    want, got = episodes(tmp_path / "hf"), episodes(tmp_path / "served")
    assert len(got) == 4
    for w, g in zip(want, got, strict=True):
        assert (g.key, g.prompt, g.success) == (w.key, w.prompt, w.success)
        texts = [[(s["action"], s["observation"]) for s in e.steps] for e in (w, g)]
        assert texts[0] == texts[1]
        if served_as != "name":  # the same ids, logged as generated
            assert g.steps == w.steps and g.prompt_ids == w.prompt_ids
            assert g.meta["reencoded_actions"] == 0
        else:  # text only
            assert g.prompt_ids is None and "tokenizer" not in g.meta


def test_chat_model_sampled_episodes_are_token_exact(serve, chat_model_dir, tmp_path):
    """A chat template, a byte-level BPE whose samples are often not canonical, two EOS ids
    (<|endoftext|> comes back as vLLM's int ``stop_reason``), steps ended by stop strings."""
    server = serve(load_backend("hf", str(chat_model_dir), batch_size=4), name=str(chat_model_dir))
    args = ("--env", "oreo/GSMSymbolic-v0", "-o", "size=40", "-o", "granularity=step",
            "--tasks", "3", "--samples", "2", "--temperature", "1", "--seed", "3",
            "--max-new-tokens", "16", "--chat-template",
            "--model", str(chat_model_dir))  # fmt: skip
    local = cli("collect", *args, "--backend", "hf", "--out", str(tmp_path / "hf"))
    assert local.exit_code == 0, local.output
    served = cli("collect", *args, "--backend", "openai", "--base-url", server.url,
                 "--out", str(tmp_path / "served"))  # fmt: skip
    assert served.exit_code == 0, served.output
    want, got = episodes(tmp_path / "hf"), episodes(tmp_path / "served")
    assert len(got) == 6
    assert {e.meta.get("eos_id") for e in want} >= {0, 2}  # both EOS ids, and some steps
    assert any(len(e.steps) > 1 for e in want)
    for w, g in zip(want, got, strict=True):
        assert (g.prompt_ids, g.steps, g.success) == (w.prompt_ids, w.steps, w.success)
        assert g.meta.get("eos_id") == w.meta.get("eos_id")
        assert g.meta["reencoded_actions"] == w.meta["reencoded_actions"]


def test_rollout_through_the_server_writes_a_report(hf, serve, tmp_path):
    server = serve(hf)
    out = tmp_path / "report.json"
    run = cli("rollout", *ENV_ARGS, "--backend", "openai", "--base-url", server.url,
              "--model", "tiny", "--out", str(out))  # fmt: skip
    assert run.exit_code == 0, run.output
    report = json.loads(out.read_text())
    assert report["tasks"] == 4 and report["model"] == "tiny"


def test_cli_errors_are_one_line(serve, tmp_path):
    server = serve()
    for args in (
        ("--base-url", server.url, "--model", "nope"),
        ("--base-url", f"http://127.0.0.1:{free_port()}/v1", "--model", "tiny"),
        ("--model", "tiny"),  # no --base-url
        ("--base-url", server.url, "--model", "tiny", "--chat-template"),  # no tokenizer
    ):
        run = cli("collect", *ENV_ARGS, "--backend", "openai", *args, "--out", str(tmp_path))
        assert run.exit_code == 2, run.output
        errors = [line for line in run.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in run.output, run.output


ALFWORLD = ("--env", "oreo/ALFWorld-v0", "-o", "split=bundled", "-o", "max_episode_steps=4")


def test_served_continuation_scores_equal_the_hf_backend(hf, serve, tiny_model_dir):
    """Each action's summed log-probability from the server's echoed prompt log-probs."""
    server = serve(hf, name=str(tiny_model_dir))
    backend = client(server)
    tok = hf.tokenizer
    context = tok("You are in a room.\n> go to shelf 1\nOn it a mug.\n> ")["input_ids"]
    actions = [tok(t, add_special_tokens=False)["input_ids"] for t in ("look\n", "take mug\n")]
    want = hf.score_continuations(context, actions)
    assert backend.score_continuations(context, actions) == pytest.approx(want, abs=1e-4)


@pytest.mark.slow
def test_ranked_rollout_through_the_server_plays_the_hf_actions(hf, serve, tiny_model_dir,
                                                                 tmp_path):  # fmt: skip
    server = serve(hf, name=str(tiny_model_dir))
    args = (*ALFWORLD, "--model", str(tiny_model_dir), "--rank-actions", "--temperature", "0")
    local = cli("rollout", *args, "--backend", "hf", "--out", str(tmp_path / "hf.json"))
    assert local.exit_code == 0, local.output
    served = cli("rollout", *args, "--backend", "openai", "--base-url", server.url,
                 "--out", str(tmp_path / "served.json"))  # fmt: skip
    assert served.exit_code == 0, served.output

    def texts(name):
        report = json.loads((tmp_path / name).read_text())
        return [[s["text"] for s in r["samples"]] for r in report["records"]]

    want = texts("hf.json")
    assert len(want) >= 2 and all(t and "\n> " in t[0] for t in want)  # actions were played
    assert texts("served.json") == want


def test_a_server_without_prompt_logprobs_gives_one_line(hf, serve, tiny_model_dir, tmp_path):
    server = serve(hf, name=str(tiny_model_dir), echo=False)
    run = cli("rollout", *ALFWORLD, "--model", str(tiny_model_dir), "--rank-actions",
              "--backend", "openai", "--base-url", server.url, "--tasks", "1",
              "--out", str(tmp_path / "r.json"))  # fmt: skip
    assert run.exit_code != 0
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in run.output, run.output
    assert f"the server at {server.url} returns no prompt log-probs" in errors[0]


def test_ranking_a_served_model_without_a_tokenizer_is_refused(hf, serve, tmp_path):
    server = serve(hf)  # served under a name only: no tokenizer here
    run = cli("rollout", *ALFWORLD, "--model", "tiny", "--rank-actions", "--backend", "openai",
              "--base-url", server.url, "--tasks", "1",
              "--out", str(tmp_path / "r.json"))  # fmt: skip
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "needs the model's tokenizer" in errors[0], run.output


def test_chat_messages_without_a_tokenizer_play_the_hf_chat_template_actions(
    serve, chat_model_dir, tmp_path
):
    """A served chat model known by name only: agents' conversations go to
    ``/v1/chat/completions`` as messages, the server applies the template, and greedy play
    chooses the actions the HF backend chooses with the same template here."""
    server = serve(load_backend("hf", str(chat_model_dir), batch_size=4), name="chat")
    args = (*ALFWORLD, "--tasks", "2", "--temperature", "0", "--max-new-tokens", "12",
            "--chat-template")  # fmt: skip
    local = cli("collect", *args, "--backend", "hf", "--model", str(chat_model_dir),
                "--out", str(tmp_path / "hf"))  # fmt: skip
    assert local.exit_code == 0, local.output
    served = cli("collect", *args, "--backend", "openai", "--base-url", server.url,
                 "--model", "chat", "--out", str(tmp_path / "served"))  # fmt: skip
    assert served.exit_code == 0, served.output
    want, got = episodes(tmp_path / "hf"), episodes(tmp_path / "served")
    assert len(got) == 2
    for w, g in zip(want, got, strict=True):
        actions = [[s["action"].strip() for s in e.steps] for e in (w, g)]
        assert actions[0] == actions[1] and actions[0]
        assert g.prompt_ids is None  # text only
