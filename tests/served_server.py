"""An OpenAI-compatible server for tests, written here: a ``/v1`` API over an in-process backend
(the tiny HF model in the tests), answering as vLLM does (``stop_reason``, ids as
``token_id:N``, the prompt's log-probs for ``echo: true``), with faults to inject (429, 500,
slow answers, dropped connections).

A module of its own so that the backend's tests (tests/agents/test_openai_backend.py) and the
tests of commands run through it (tests/cli/test_served_collect.py) share one server."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from oreo_agents.generation import SamplingParams
from oreo_agents.generation.hf import _first_stop_end


class Server:
    """An OpenAI-compatible server on 127.0.0.1 (port 0) in a thread.

    Args:
        backend: Generates the completions (greedy or seeded, as asked); None answers every
            request with "ok" (for timing the client).
        name: The served model name.
        key: The API key it accepts; None accepts any request.
        ids: Whether it returns the sampled ids (``return_tokens_as_token_ids``).
        delay: Seconds it takes for every completion request.
        echo: Whether it honours ``echo`` (the prompt's tokens and log-probs, computed by the
            backend's model, before the completion's), as vLLM does; False ignores it, as
            servers without prompt log-probs do.
    """

    def __init__(self, backend=None, name="tiny", *, key=None, ids=True, delay=0.0, echo=True):
        self.backend, self.name, self.key, self.ids, self.delay = backend, name, key, ids, delay
        self.echo = echo
        # "429", "500", "400", "slow", "drop": one per request, in order
        self.faults: list[str] = []
        self.requests = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed ACKs

            def log_message(self, *args):
                pass

            def reply(self, status, body, headers=()):
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout)
                    pass

            def authorized(self):
                if server.key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.key}":
                    return True
                self.reply(401, {"error": {"message": "invalid API key"}})
                return False

            def do_GET(self):
                if not self.authorized():
                    return
                if self.path != "/v1/models":
                    return self.reply(404, {"error": {"message": "not found"}})
                self.reply(200, {"object": "list", "data": [{"id": server.name}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self.authorized():
                    return
                with server.lock:
                    server.requests += 1
                    fault = server.faults.pop(0) if server.faults else None
                if fault == "drop":  # close the connection without an answer
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault in ("429", "500", "400"):
                    return self.reply(int(fault), {"error": {"message": "busy"}},
                                      [("Retry-After", "0")])  # fmt: skip
                if fault == "slow":
                    time.sleep(1.0)
                if body["model"] != server.name:
                    return self.reply(404, {"error": {"message": "no such model"}})
                time.sleep(server.delay)
                if self.path.endswith("/chat/completions"):
                    return self.reply(200, {"choices": server.chat_choices(body)})
                self.reply(200, {"choices": server.choices(body)})

        return Handler

    def choices(self, body):
        if self.backend is None:
            return [{"index": 0, "text": "ok", "finish_reason": "length"}]
        params = SamplingParams(
            n=body.get("n", 1), max_new_tokens=body.get("max_tokens", 16),
            temperature=body.get("temperature", 1.0), top_p=body.get("top_p", 1.0),
            top_k=body.get("top_k", 0), stop=tuple(body.get("stop", ())),
        )  # fmt: skip
        seeds = [body["seed"]] if "seed" in body else None
        out = []
        for i, c in enumerate(self.backend.generate([body["prompt"]], params, seeds)[0]):
            ids, text, stop_reason = list(c.token_ids), c.text, None
            if c.finish_reason == "eos":  # vLLM: the EOS id is among the ids, not in the text
                ids.append(c.eos_id)
                if c.eos_id != self.backend.tokenizer.eos_token_id:
                    stop_reason = c.eos_id
            if c.finish_reason == "stop":  # vLLM cuts the text at the stop string
                end = _first_stop_end(text, params.stop)
                stop_reason = next(s for s in params.stop if text[:end].endswith(s))
                text = text[: end - len(stop_reason)]
            choice = {
                "index": i, "text": text, "stop_reason": stop_reason,
                "finish_reason": "length" if c.finish_reason == "length" else "stop",
            }  # fmt: skip
            if self.ids and body.get("return_tokens_as_token_ids"):
                choice["logprobs"] = {"tokens": [f"token_id:{t}" for t in ids]}
            if self.echo and body.get("echo") and body.get("logprobs") is not None:
                self.echoed(choice, body["prompt"])
            out.append(choice)
        return out

    def chat_choices(self, body):
        """``/v1/chat/completions``: the messages rendered by the backend tokenizer's chat
        template, the assistant's turn opened, and continued as a completion; each choice's
        text is its message's content (ids are not returned, as chat answers have none)."""
        tok = self.backend.tokenizer
        text = tok.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True)
        body = {k: v for k, v in body.items() if k not in ("messages", "logprobs")}
        out = []
        for c in self.choices({**body, "prompt": text}):
            c["message"] = {"role": "assistant", "content": c.pop("text")}
            out.append(c)
        return out

    def echoed(self, choice, prompt):
        """``choice`` with the prompt before its completion, as vLLM echoes it: the prompt's
        text and tokens, and its tokens' log-probs (None for the first, which nothing
        predicts) before the completion's (None here: no test reads them)."""
        import torch

        tok = self.backend.tokenizer
        if isinstance(prompt, str):
            prompt = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = list(prompt)
        model = self.backend.model
        with torch.no_grad():
            logits = model(torch.tensor([ids], device=model.device)).logits[0].float()
        logps = torch.log_softmax(logits, dim=-1)
        scores = [None] + [logps[j - 1, t].item() for j, t in enumerate(ids) if j > 0]
        logprobs = choice.setdefault("logprobs", {})
        generated = logprobs.get("tokens", [])
        logprobs["tokens"] = [f"token_id:{t}" for t in ids] + generated
        logprobs["token_logprobs"] = scores + [None] * len(generated)
        choice["text"] = tok.decode(ids, skip_special_tokens=False) + choice["text"]
