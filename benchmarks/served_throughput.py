"""Served-model client throughput: how requests in flight (``--concurrency``) hide latency.

    python benchmarks/served_throughput.py                          # a local fake server
    python benchmarks/served_throughput.py --delay 0.5 --prompts 64
    python benchmarks/served_throughput.py --base-url http://127.0.0.1:8000/v1 --model NAME

`OpenAIBackend` sends one request per prompt and keeps up to ``concurrency`` of them in flight,
so a round of N prompts against a server that answers each in d seconds (and can serve that many
at once) should take about ceil(N / C) x d. Without ``--base-url`` the script starts a server
of its own on 127.0.0.1 that waits ``--delay`` seconds per request and answers "ok", so the
table measures the client alone; with ``--base-url`` it times a real server (the speed-up then
also says how well the server batches concurrent requests). Each concurrency generates the same
``--prompts`` prompts once after an untimed warm-up request; the speed-up is against the first
concurrency listed (1 by default). A second table times `oreo collect --backend openai` itself
(``--episodes`` one-step GSMSymbolic episodes, ``--batch-size`` envs side by side, in this
process) against the fake server: episodes/s beside concurrency / delay, what a collector that
keeps ``--concurrency`` requests in flight reaches. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from oreo_agents.generation import SamplingParams, load_backend


def fake_server(delay: float, name: str) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 that lists ``name`` and answers every completion after ``delay``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no delayed ACKs

        def log_message(self, *args):
            pass

        def answer(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.answer({"object": "list", "data": [{"id": name}]})

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay)
            self.answer({"choices": [{"index": 0, "text": "ok", "finish_reason": "length"}]})

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024  # the default 5 makes later connections wait a second
        daemon_threads = True

    httpd = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def collect_rate(base_url: str, model: str, concurrency: int, episodes: int, batch: int) -> float:
    """Episodes per second of `oreo collect --backend openai` (one-step episodes), in process."""
    from oreo_cli.launch import main as oreo

    out = Path(tempfile.mkdtemp()) / "eps"
    args = ["collect", "--env", "oreo/GSMSymbolic-v0", "--backend", "openai", "--base-url",
            base_url, "--model", model, "--tasks", str(episodes), "--batch-size", str(batch),
            "--concurrency", str(concurrency), "--max-new-tokens", "8", "--out", str(out)]
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # collect's own progress and table
            oreo(args)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    seconds = time.perf_counter() - start
    shutil.rmtree(out.parent)
    return episodes / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a real server's API root (default: a fake one)")
    parser.add_argument("--model", default="fake", help="the served model name")
    parser.add_argument("--delay", type=float, default=0.2, help="the fake server's latency")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--episodes", type=int, default=64, help="collect's table (fake server)")
    parser.add_argument("--batch-size", type=int, default=32, help="collect's envs side by side")
    args = parser.parse_args()
    httpd = None
    if args.base_url is None:
        httpd = fake_server(args.delay, args.model)
        args.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    params = SamplingParams(temperature=0, max_new_tokens=args.max_new_tokens)
    prompts = [f"Question {i}: what is {i} + {i}?" for i in range(args.prompts)]
    rows, first = [], None
    for c in args.concurrency:
        backend = load_backend("openai", args.model, base_url=args.base_url, concurrency=c)
        backend.generate(prompts[:1], params)  # warm-up: the connection
        start = time.perf_counter()
        backend.generate(prompts, params)
        seconds = time.perf_counter() - start
        backend.close()
        first = first or seconds
        ideal = math.ceil(args.prompts / c) * args.delay if httpd else float("nan")
        rows.append((c, seconds, ideal, args.prompts / seconds, first / seconds))
    print(f"{args.prompts} prompts to {args.base_url} ({args.model})")
    print(f"{'concurrency':>11} {'seconds':>8} {'ideal s':>8} {'prompts/s':>9} {'speed-up':>8}")
    for c, seconds, ideal, rate, speedup in rows:
        print(f"{c:>11} {seconds:>8.2f} {ideal:>8.2f} {rate:>9.1f} {speedup:>7.1f}x")
    if httpd is not None:
        print(f"\noreo collect: {args.episodes} one-step episodes, --batch-size {args.batch_size}")
        print(f"{'concurrency':>11} {'episodes/s':>10} {'C / delay':>9} {'ratio':>6}")
        for c in args.concurrency:
            rate = collect_rate(args.base_url, args.model, c, args.episodes, args.batch_size)
            ideal = min(c, args.batch_size) / args.delay
            print(f"{c:>11} {rate:>10.1f} {ideal:>9.1f} {rate / ideal:>6.0%}")
        httpd.shutdown()


if __name__ == "__main__":
    main()
