"""A client of an OpenAI-compatible HTTP server (`oreo_agents.generation.openai_backend` is
its one user): requests in flight up to a limit, retries of what a network or a busy server
makes fail (429, 5xx, dropped connections, timeouts) with exponential backoff and jitter, and
one check at start that finds what cannot work (no server at the URL, a model it does not
serve, a rejected key) within seconds, each raised on one line.

The API key is read from the ``OPENAI_API_KEY`` environment variable (never a flag, so it is not
in shell histories, logs or reports); without it no ``Authorization`` header is sent.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from typing import Any

API_KEY_VARIABLE = "OPENAI_API_KEY"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
CHECK_TIMEOUT = 2.5  # seconds: a bad URL, model name or key is reported within 3 s


class ServedModelError(ValueError):
    """A request the server refused for good (a wrong model name, a rejected key, a bad
    request): retrying cannot help. One line, which the CLI prints as it is."""


class ServerUnreachable(ConnectionError):
    """No answer from the server: nothing listens at the URL, or it kept failing through every
    retry. One line, which the CLI prints as it is."""


class ServerClient:
    """POSTs JSON to one server, retrying and in parallel (module docstring).

    Args:
        base_url: The API's root, e.g. ``http://127.0.0.1:8000/v1``.
        model: The served model name that `check` looks for in ``/v1/models``.
        concurrency: Requests in flight at once.
        request_timeout: Seconds one request may take before it is retried.
        max_retries: Retries of one request after a retryable failure (0: none).
        backoff: Seconds before the first retry; each later one waits twice as long (at most
            `max_backoff`), scaled by a random factor in [0.5, 1) so clients that failed
            together do not retry together. A ``Retry-After`` header is honoured.
        max_backoff: Longest wait between two tries.

    Raises:
        ServerUnreachable: Nothing answers at ``base_url``.
        ServedModelError: The server rejects the key or does not serve ``model``.
        ValueError: A bad option or URL.
    """

    def __init__(
        self, base_url: str | None, model: str, *, concurrency: int = 8,
        request_timeout: float = 600.0, max_retries: int = 5, backoff: float = 0.5,
        max_backoff: float = 30.0,
    ):  # fmt: skip
        try:
            import httpx
        except ImportError as e:
            raise ImportError("the openai backend needs httpx: pip install 'oreo[served]'") from e
        if not base_url:
            raise ValueError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0, got {request_timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.model_name = model
        self.base_url = base_url.rstrip("/")
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self._httpx = httpx
        headers = {}
        key = os.environ.get(API_KEY_VARIABLE)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(headers=headers, limits=limits, timeout=request_timeout)
        self.check()

    def check(self) -> None:
        """Ask ``/v1/models`` once, briefly: the server answers, accepts the key and serves
        the model.

        Raises:
            ServerUnreachable: No connection, or no answer within `CHECK_TIMEOUT`.
            ServedModelError: The key is rejected (401, 403), or the model is not listed.
        """
        url = f"{self.base_url}/models"
        try:
            # httpx's timeouts are per phase (connect, then read): half of it each
            response = self._client.get(url, timeout=CHECK_TIMEOUT / 2)
        except (self._httpx.InvalidURL, self._httpx.UnsupportedProtocol) as e:
            raise ValueError(f"--base-url {self.base_url!r} is not an http(s) URL: {e}") from None
        except self._httpx.TimeoutException:
            raise ServerUnreachable(
                f"the server at {self.base_url} did not answer {url} within {CHECK_TIMEOUT:g} s"
            ) from None
        except self._httpx.TransportError as e:
            raise ServerUnreachable(
                f"cannot reach a server at {self.base_url} ({_reason(e)}); is it running, and "
                "does --base-url end with /v1?"
            ) from None
        if response.status_code in (401, 403):
            raise ServedModelError(_key_error(self.base_url, response))
        if response.status_code == 404:
            raise ServedModelError(
                f"{url} was not found (404): --base-url {self.base_url} is not an "
                "OpenAI-compatible API root (it usually ends with /v1)"
            )
        if response.status_code >= 400:
            raise ServerUnreachable(f"{url} answered {_status(response)}")
        try:
            served = [m["id"] for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ServedModelError(f"{url} did not answer with a model list") from None
        if self.model_name not in served:
            raise ServedModelError(
                f"the server at {self.base_url} does not serve the model {self.model_name!r}; "
                f"it serves {', '.join(map(repr, served)) or 'none'} (pass one as --model)"
            )

    def close(self) -> None:
        self._client.close()

    def post_all(self, path: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`post` every body, up to ``concurrency`` at once; the answers in order.

        The workers are daemon threads, so a Ctrl-C or a failed request ends the call at once
        (the process does not wait for requests still in flight); after a failure no new
        request starts, and the first failure is raised.
        """
        if len(bodies) <= 1:
            return [self.post(path, b) for b in bodies]
        answers: list[Any] = [None] * len(bodies)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(bodies)):
            todo.put(i)
        failures: list[BaseException] = []
        finished = threading.Semaphore(0)

        def work() -> None:
            try:
                while not failures:
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    answers[i] = self.post(path, bodies[i])
            except BaseException as e:  # handed to the caller's thread
                failures.append(e)
            finally:
                finished.release()

        workers = min(self.concurrency, len(bodies))
        for _ in range(workers):
            threading.Thread(target=work, daemon=True).start()
        for _ in range(workers):
            finished.acquire()  # interruptible by Ctrl-C
            if failures:
                raise failures[0]
        return answers

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` and return the JSON answer, retrying 429, 5xx, timeouts and dropped
        connections with backoff (class docstring).

        Raises:
            ServerUnreachable: Every try failed.
            ServedModelError: A final refusal (4xx other than 408, 409, 425 and 429).
        """
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                response = self._client.post(url, json=body)
            except self._httpx.TransportError as e:  # refused, dropped, timed out
                failure = _reason(e)
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        failure = "an answer that is not JSON"
                elif response.status_code in (401, 403):
                    raise ServedModelError(_key_error(self.base_url, response))
                elif response.status_code not in RETRY_STATUS:
                    raise ServedModelError(f"{url} refused a request: {_status(response)}")
                else:
                    failure = _status(response)
                    wait = _retry_after(response)
            if attempt < self.max_retries:
                time.sleep(self.delay(attempt) if wait is None else min(wait, self.max_backoff))
        raise ServerUnreachable(
            f"{url} failed {self.max_retries + 1} times, last with {failure} (--max-retries, "
            "--request-timeout)"
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt + 1``: exponential, capped, jittered."""
        base = min(self.backoff * 2**attempt, self.max_backoff)
        return base * random.uniform(0.5, 1.0)


def _retry_after(response: Any) -> float | None:
    """The seconds a ``Retry-After`` header asks for (None: absent or a date)."""
    try:
        return max(float(response.headers.get("retry-after", "")), 0.0)
    except ValueError:
        return None


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _status(response: Any) -> str:
    """``503 Service Unavailable: <the server's message>``, on one line."""
    detail = response.text.strip().replace("\n", " ")[:200]
    return f"{response.status_code} {response.reason_phrase}" + (f": {detail}" if detail else "")


def _key_error(base_url: str, response: Any) -> str:
    have = "was rejected" if API_KEY_VARIABLE in os.environ else "is not set"
    return (f"the server at {base_url} refused the request ({response.status_code}): the API key "
            f"in ${API_KEY_VARIABLE} {have}")  # fmt: skip
