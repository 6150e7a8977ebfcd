"""An async client for OpenAI-compatible chat endpoints (vLLM's API server, hosted APIs).

It is what the ``openai`` judge and ``fadtq eval --server`` send their requests through:

* requests run concurrently, at most ``max_in_flight`` at a time, over one or more base URLs
  (round-robin; a retry moves on to the next URL);
* connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff (a
  ``Retry-After`` header is honoured up to the cap); another 4xx or a malformed envelope is not
  retried, since the same request would fail the same way;
* a request that still fails is a :class:`Failed` value, never an answer: callers decide what a
  failure means for them (the judge: a verdict with an error; the evaluation: a pair left out and
  asked again on resume);
* counts (``requests``, ``retries``, ``failed_<kind>``) accumulate in :attr:`ChatClient.counts`.

Request bodies are built lazily, one when a slot is free, so that thousands of image requests do
not sit encoded in memory at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from fadtq.errors import ConfigError

RETRY_STATUS = frozenset({408, 429})
T = TypeVar("T")


@dataclass(frozen=True)
class EndpointConfig:
    base_urls: list[str]
    model: str
    max_in_flight: int = 16
    timeout_s: float = 60.0
    max_retries: int = 3  # after the first try
    backoff_s: float = 0.5  # first wait; doubles each retry, capped by backoff_max_s
    backoff_max_s: float = 8.0
    api_key: str | None = None


@dataclass(frozen=True)
class Reply:
    """The text of ``choices[0].message.content``, and what the server said of its length."""

    text: str
    finished: bool | None = None  # finish_reason "stop" (False: cut at max_tokens; None: not said)
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Failed:
    """A request that failed after its retries; ``kind`` is ``connection``, ``timeout``,
    ``http_<status>`` or ``bad_response``."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


class RequestError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class Retryable(RequestError):
    """A failure worth another try (connection, timeout, 408/429, 5xx)."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(kind, detail)
        self.retry_after = retry_after


class Fatal(RequestError):
    """A failure that another try would repeat (another 4xx, a malformed response envelope)."""


class ChatClient:
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.counts: Counter[str] = Counter()
        self._next_url = itertools.count()

    def complete(self, body: dict) -> Reply:
        """One request (retried); raises :class:`RequestError` when it fails."""
        return run_to_completion(self._complete_one(body))

    def complete_all(self, bodies: Iterable[dict],
                     on_reply: Callable[[int, Reply | Failed], None] | None = None) -> list[Reply | Failed]:
        """Send every body, ``max_in_flight`` at a time; returns the replies in order.

        ``on_reply(index, reply)`` is called as each request finishes (in completion order), so a
        caller can save answers as they come; ``bodies`` is read one body per free slot."""
        return run_to_completion(self._complete_all(bodies, on_reply))

    def served_models(self) -> dict[str, str | None]:
        """The model ids the first base URL lists at ``GET /models``, each with its ``root`` (vLLM
        gives the folder or hub id it serves; ``None`` where the server does not say); raises
        :class:`RequestError`."""
        return run_to_completion(self._served_models())

    def _session(self) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        connector = aiohttp.TCPConnector(limit=self.config.max_in_flight)
        return aiohttp.ClientSession(connector=connector, headers=headers)

    async def _complete_one(self, body: dict) -> Reply:
        async with self._session() as session:
            return await self._with_retries(session, body)

    async def _complete_all(self, bodies: Iterable[dict],
                            on_reply: Callable[[int, Reply | Failed], None] | None) -> list[Reply | Failed]:
        gate = asyncio.Semaphore(self.config.max_in_flight)
        tasks = []
        async with self._session() as session:
            try:
                for index, body in enumerate(bodies):
                    await gate.acquire()
                    tasks.append(asyncio.create_task(self._guarded(session, gate, index, body, on_reply)))
                return list(await asyncio.gather(*tasks))
            finally:  # a body that could not be built, or a failing on_reply: stop the others
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _guarded(self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, index: int, body: dict,
                       on_reply: Callable[[int, Reply | Failed], None] | None) -> Reply | Failed:
        try:
            try:
                reply: Reply | Failed = await self._with_retries(session, body)
            except RequestError as exc:
                self.counts[f"failed_{exc.kind}"] += 1
                reply = Failed(exc.kind, str(exc))
            if on_reply is not None:
                on_reply(index, reply)
            return reply
        finally:
            gate.release()

    async def _with_retries(self, session: aiohttp.ClientSession, body: dict) -> Reply:
        """Try, then retry retryable failures with exponential backoff, each on the endpoint after
        the one that failed (not the next one of the shared rotation, which concurrent requests
        advance: a retry could land on the dead endpoint again)."""
        attempt = 0
        urls = self.config.base_urls
        index = next(self._next_url) % len(urls)
        while True:
            try:
                return await self._post(session, urls[index], body)
            except Retryable as exc:
                if attempt >= self.config.max_retries:
                    raise
                self.counts["retries"] += 1
                delay = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** attempt)
                await asyncio.sleep(max(delay, min(exc.retry_after or 0.0, self.config.backoff_max_s)))
                attempt += 1
                index = (index + 1) % len(urls)

    async def _post(self, session: aiohttp.ClientSession, base_url: str, body: dict) -> Reply:
        self.counts["requests"] += 1
        payload = await self._request(session, "POST", f"{base_url}/chat/completions", body)
        return _reply(payload, base_url)

    async def _served_models(self) -> dict[str, str | None]:
        base_url = self.config.base_urls[0]
        async with self._session() as session:
            payload = await self._request(session, "GET", f"{base_url}/models")
        try:
            return {str(entry["id"]): entry.get("root") for entry in payload["data"]}  # type: ignore[index]
        except (KeyError, TypeError):
            raise Fatal("bad_response", f"{base_url}/models: no data[].id in the response") from None

    async def _request(self, session: aiohttp.ClientSession, method: str, url: str, body: dict | None = None):
        """The JSON of a 200 reply; anything else raises :class:`Retryable` or :class:`Fatal`."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with session.request(method, url, json=body, timeout=timeout) as response:
                if response.status != 200:
                    raise _status_error(response.status, (await response.text())[:200], response.headers)
                return await response.json(content_type=None)
        except asyncio.TimeoutError:
            raise Retryable("timeout", f"no reply within {self.config.timeout_s:g} s from {url}") from None
        except aiohttp.ClientPayloadError as exc:
            raise Retryable("connection", f"{url}: {exc}") from None
        except aiohttp.ClientConnectionError as exc:
            raise Retryable("connection", f"{url}: {type(exc).__name__} {exc}") from None
        except ValueError as exc:
            raise Fatal("bad_response", f"{url}: response is not JSON ({exc})") from None


def run_to_completion(coroutine: Coroutine[object, object, T]) -> T:
    """``asyncio.run``, also from code that already runs an event loop (a notebook, an async
    trainer): there the coroutine gets its own loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="openai-client") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _status_error(status: int, text: str, headers) -> RequestError:
    if status in RETRY_STATUS or status >= 500:
        return Retryable(f"http_{status}", f"HTTP {status}: {text}", _retry_after(headers.get("Retry-After")))
    return Fatal(f"http_{status}", f"HTTP {status}: {text}")


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _reply(payload: object, base_url: str) -> Reply:
    try:
        choice = payload["choices"][0]  # type: ignore[index]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise Fatal("bad_response", f"{base_url}: no choices[0].message.content in the response") from None
    if not isinstance(content, str):
        raise Fatal("bad_response", f"{base_url}: message content is {type(content).__name__}, not text")
    reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    usage = payload.get("usage") if isinstance(payload, dict) else None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return Reply(content, None if reason is None else reason == "stop", tokens if isinstance(tokens, int) else None)


def check_base_url(url: str, where: str) -> str:
    """``url`` without a trailing slash; ``where`` (a flag or config key) is named when it is not
    an http(s) address."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(where, f"expected http(s)://HOST:PORT/v1 addresses, got {url!r}")
    return url.rstrip("/")


def api_key_from_env(name: str | None, where: str) -> str | None:
    """The bearer token in the environment variable ``name`` (``None``: no token)."""
    if name and not os.environ.get(name):
        raise ConfigError(where, f"environment variable {name} is not set")
    return os.environ[name] if name else None
