"""``openai``: a judge behind any OpenAI-compatible chat endpoint (vLLM in the paper).

Options (``judge.options``)::

    base_urls: [http://127.0.0.1:8000/v1]   # one or more; requests go round-robin, a retry moves on
    model: Qwen/Qwen3-8B                    # the served model name (required)
    max_in_flight: 16                       # concurrent requests over all endpoints
    timeout_s: 60                           # per request
    max_retries: 3                          # after the first try, on connection errors, timeouts, 429, 5xx
    backoff_s: 0.5                          # first wait; doubles each retry, capped by backoff_max_s
    backoff_max_s: 8
    max_tokens: 64
    structured_output: true                 # response_format json_schema (turn off for servers without it)
    api_key_env: null                       # name of an environment variable holding a bearer token
    cache: true                             # verdict cache (fadtq.judges.cache), in memory
    cache_path: null                        # and in this SQLite file
    cache_memory_entries: 200000            # most recently used verdicts kept in memory

Every request is temperature 0 with Qwen3's thinking switched off
(``chat_template_kwargs: {enable_thinking: false}``); a ``<think>`` block that still comes back is
stripped by ``parse_verdict``. Other 4xx replies are not retried (the same request fails the same
way). A request that exhausts its retries, a reply that does not parse and a score out of range
become ``Verdict(error=...)``: never a score. Counts (requests, retries, failures by kind, cache)
accumulate in ``judge.counts`` and are logged after every batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from fadtq.api import JudgeFactory, JudgeItem, Verdict, hookimpl
from fadtq.errors import ConfigError
from fadtq.judges.cache import VerdictCache, cache_from_options, judge_through_cache
from fadtq.judges.options import JudgeOptions
from fadtq.judges.protocol import JUDGE_TEMPLATES, VERDICT_JSON_SCHEMA, judge_messages, parse_verdict
from fadtq.prompts import PromptLibrary

log = logging.getLogger("fadtq.judge.openai")
RETRY_STATUS = frozenset({408, 429})
T = TypeVar("T")


@dataclass(frozen=True)
class EndpointConfig:
    base_urls: list[str]
    model: str
    max_in_flight: int
    timeout_s: float
    max_retries: int
    backoff_s: float
    backoff_max_s: float
    max_tokens: int
    structured_output: bool
    api_key: str | None


class Retryable(Exception):
    """A failure worth another try (connection, timeout, 408/429, 5xx); ``kind`` names it."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retry_after = retry_after


class Fatal(Exception):
    """A failure that another try would repeat (another 4xx, a malformed response envelope)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class OpenAIJudge:
    name = "openai"

    def __init__(self, config: EndpointConfig, prompts: PromptLibrary, cache: VerdictCache | None) -> None:
        self.config = config
        self.prompts = prompts
        self.cache = cache
        self.counts: Counter[str] = Counter()
        self._next_url = itertools.count()

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        started, before = time.perf_counter(), Counter(self.counts)
        hits_before = self.cache.hits if self.cache else 0
        sent: list[int] = []

        def judge_new(todo: list[JudgeItem]) -> list[Verdict]:
            sent.append(len(todo))
            return run_to_completion(self._judge_all(todo))

        verdicts = judge_through_cache(self.cache, items, judge_new)
        hits = (self.cache.hits if self.cache else 0) - hits_before
        self.counts.update(items=len(items), sent=sum(sent), cache_hits=hits,
                           deduplicated=len(items) - sum(sent) - hits)
        self._log_batch(self.counts - before, time.perf_counter() - started)
        return verdicts

    def _log_batch(self, delta: Counter[str], seconds: float) -> None:
        failures = {k: v for k, v in sorted(delta.items()) if k.startswith("failed_")}
        log.info("openai judge: %d items in %.2f s, %d sent, %d requests, %d retries, %d cache hits, "
                 "%d deduplicated, failures %s", delta["items"], seconds, delta["sent"], delta["requests"],
                 delta["retries"], delta["cache_hits"], delta["deduplicated"], failures or "none")

    def check(self) -> None:
        """One request, past the cache: an unreachable server or a model it does not serve fails
        now, naming the option, instead of zeroing every verdict of the run."""
        item = JudgeItem(question="Is the test image good?", reasoning="Both images match.", answer="good")
        try:
            run_to_completion(self._reach(item))
        except (Retryable, Fatal) as exc:
            key = "model" if exc.kind.startswith("http_4") else "base_urls"
            raise ConfigError(f"judge.options.{key}", f"the judge server did not answer ({exc.kind}: {exc})") from None

    async def _reach(self, item: JudgeItem) -> str:
        async with self._session() as session:
            return await self._with_retries(session, self.request_body(item))

    def _session(self) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        connector = aiohttp.TCPConnector(limit=self.config.max_in_flight)
        return aiohttp.ClientSession(connector=connector, headers=headers)

    async def _judge_all(self, items: list[JudgeItem]) -> list[Verdict]:
        gate = asyncio.Semaphore(self.config.max_in_flight)
        async with self._session() as session:
            return list(await asyncio.gather(*(self._judge_one(session, gate, item) for item in items)))

    async def _judge_one(self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, item: JudgeItem) -> Verdict:
        async with gate:
            try:
                reply = await self._with_retries(session, self.request_body(item))
            except (Retryable, Fatal) as exc:
                self.counts[f"failed_{exc.kind}"] += 1
                return Verdict(error=f"{exc.kind}: {exc}")
        verdict = parse_verdict(reply)
        if not verdict.ok:
            self.counts["failed_unparseable"] += 1
        return verdict

    def request_body(self, item: JudgeItem) -> dict:
        body = {
            "model": self.config.model,
            "messages": judge_messages(self.prompts, item),
            "temperature": 0.0,
            "max_tokens": self.config.max_tokens,
            "chat_template_kwargs": {"enable_thinking": False},
        }
        if self.config.structured_output:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "verdict", "schema": VERDICT_JSON_SCHEMA, "strict": True}}
        return body

    async def _with_retries(self, session: aiohttp.ClientSession, body: dict) -> str:
        """Try, then retry retryable failures with exponential backoff, each on the next endpoint."""
        attempt = 0
        while True:
            url = self.config.base_urls[next(self._next_url) % len(self.config.base_urls)]
            try:
                return await self._post(session, url, body)
            except Retryable as exc:
                if attempt >= self.config.max_retries:
                    raise
                self.counts["retries"] += 1
                delay = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** attempt)
                await asyncio.sleep(max(delay, min(exc.retry_after or 0.0, self.config.backoff_max_s)))
                attempt += 1

    async def _post(self, session: aiohttp.ClientSession, base_url: str, body: dict) -> str:
        self.counts["requests"] += 1
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with session.post(f"{base_url}/chat/completions", json=body, timeout=timeout) as response:
                if response.status != 200:
                    raise _status_error(response.status, (await response.text())[:200], response.headers)
                payload = await response.json(content_type=None)
        except asyncio.TimeoutError:
            raise Retryable("timeout", f"no reply within {self.config.timeout_s:g} s from {base_url}") from None
        except aiohttp.ClientPayloadError as exc:
            raise Retryable("connection", f"{base_url}: {exc}") from None
        except aiohttp.ClientConnectionError as exc:
            raise Retryable("connection", f"{base_url}: {type(exc).__name__} {exc}") from None
        except ValueError as exc:
            raise Fatal("bad_response", f"{base_url}: response is not JSON ({exc})") from None
        return _content(payload, base_url)


def run_to_completion(coroutine: Coroutine[object, object, T]) -> T:
    """``asyncio.run``, also from code that already runs an event loop (a notebook, an async
    trainer): there the coroutine gets its own loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="openai-judge") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _status_error(status: int, text: str, headers) -> Exception:
    if status in RETRY_STATUS or status >= 500:
        return Retryable(f"http_{status}", f"HTTP {status}: {text}", _retry_after(headers.get("Retry-After")))
    return Fatal(f"http_{status}", f"HTTP {status}: {text}")


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _content(payload: object, base_url: str) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise Fatal("bad_response", f"{base_url}: no choices[0].message.content in the response") from None
    if not isinstance(content, str):
        raise Fatal("bad_response", f"{base_url}: message content is {type(content).__name__}, not text")
    return content


def _base_urls(opts: JudgeOptions) -> list[str]:
    urls = [url.rstrip("/") for url in opts.strings("base_urls")]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("judge.options.base_urls", f"expected http(s)://HOST:PORT/v1 addresses, got {url!r}")
    return urls


def _api_key(opts: JudgeOptions) -> str | None:
    name = opts.string("api_key_env", None)
    if name and not os.environ.get(name):
        raise ConfigError("judge.options.api_key_env", f"environment variable {name} is not set")
    return os.environ[name] if name else None


def build(options: dict, prompts: PromptLibrary) -> OpenAIJudge:
    opts = JudgeOptions(options, "openai")
    config = EndpointConfig(
        base_urls=_base_urls(opts),
        model=opts.string("model"),
        max_in_flight=opts.integer("max_in_flight", 16, 1),
        timeout_s=opts.number("timeout_s", 60.0, 0.001),
        max_retries=opts.integer("max_retries", 3, 0),
        backoff_s=opts.number("backoff_s", 0.5, 0.0),
        backoff_max_s=opts.number("backoff_max_s", 8.0, 0.0),
        max_tokens=opts.integer("max_tokens", 64, 8),
        structured_output=opts.boolean("structured_output", True),
        api_key=_api_key(opts),
    )
    cache = cache_from_options(opts, config.model, prompts)
    opts.check_unknown()
    return OpenAIJudge(config, prompts, cache)


@hookimpl
def register_judges():
    return [JudgeFactory("openai", build, description="an OpenAI-compatible chat endpoint (vLLM), async, retried, cached",
                         templates=JUDGE_TEMPLATES)]
