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
accumulate in ``judge.counts`` and are logged after every batch. Requests, retries and the bound
on requests in flight are :mod:`fadtq.openai_client`'s, shared with ``fadtq eval --server``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

from fadtq.api import JudgeFactory, JudgeItem, Verdict, hookimpl
from fadtq.errors import ConfigError
from fadtq.judges.cache import VerdictCache, cache_from_options, judge_through_cache
from fadtq.judges.options import JudgeOptions
from fadtq.judges.protocol import JUDGE_TEMPLATES, VERDICT_JSON_SCHEMA, judge_messages, parse_verdict
from fadtq.openai_client import (
    ChatClient,
    EndpointConfig,
    Failed,
    Reply,
    RequestError,
    api_key_from_env,
    check_base_url,
)
from fadtq.prompts import PromptLibrary

log = logging.getLogger("fadtq.judge.openai")


class OpenAIJudge:
    name = "openai"

    def __init__(self, client: ChatClient, prompts: PromptLibrary, cache: VerdictCache | None, *,
                 max_tokens: int, structured_output: bool) -> None:
        self.client = client
        self.prompts = prompts
        self.cache = cache
        self.max_tokens = max_tokens
        self.structured_output = structured_output
        self.counts: Counter[str] = client.counts  # the client's requests, retries and failures, and the judge's

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        started, before = time.perf_counter(), Counter(self.counts)
        hits_before = self.cache.hits if self.cache else 0
        sent: list[int] = []

        def judge_new(todo: list[JudgeItem]) -> list[Verdict]:
            sent.append(len(todo))
            return [self._verdict(reply) for reply in self.client.complete_all(map(self.request_body, todo))]

        verdicts = judge_through_cache(self.cache, items, judge_new)
        hits = (self.cache.hits if self.cache else 0) - hits_before
        self.counts.update(items=len(items), sent=sum(sent), cache_hits=hits,
                           deduplicated=len(items) - sum(sent) - hits)
        self._log_batch(self.counts - before, time.perf_counter() - started)
        return verdicts

    def _verdict(self, reply: Reply | Failed) -> Verdict:
        if isinstance(reply, Failed):
            return Verdict(error=str(reply))
        verdict = parse_verdict(reply.text)
        if not verdict.ok:
            self.counts["failed_unparseable"] += 1
        return verdict

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
            self.client.complete(self.request_body(item))
        except RequestError as exc:
            key = "model" if exc.kind.startswith("http_4") else "base_urls"
            raise ConfigError(f"judge.options.{key}", f"the judge server did not answer ({exc.kind}: {exc})") from None

    def request_body(self, item: JudgeItem) -> dict:
        body = {
            "model": self.client.config.model,
            "messages": judge_messages(self.prompts, item),
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
            "chat_template_kwargs": {"enable_thinking": False},
        }
        if self.structured_output:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "verdict", "schema": VERDICT_JSON_SCHEMA, "strict": True}}
        return body


def build(options: dict, prompts: PromptLibrary) -> OpenAIJudge:
    opts = JudgeOptions(options, "openai")
    config = EndpointConfig(
        base_urls=[check_base_url(url, "judge.options.base_urls") for url in opts.strings("base_urls")],
        model=opts.string("model"),
        max_in_flight=opts.integer("max_in_flight", 16, 1),
        timeout_s=opts.number("timeout_s", 60.0, 0.001),
        max_retries=opts.integer("max_retries", 3, 0),
        backoff_s=opts.number("backoff_s", 0.5, 0.0),
        backoff_max_s=opts.number("backoff_max_s", 8.0, 0.0),
        api_key=api_key_from_env(opts.string("api_key_env", None), "judge.options.api_key_env"),
    )
    max_tokens = opts.integer("max_tokens", 64, 8)
    structured_output = opts.boolean("structured_output", True)
    cache = cache_from_options(opts, config.model, prompts)
    opts.check_unknown()
    return OpenAIJudge(ChatClient(config), prompts, cache, max_tokens=max_tokens, structured_output=structured_output)


@hookimpl
def register_judges():
    return [JudgeFactory("openai", build, description="an OpenAI-compatible chat endpoint (vLLM), async, retried, cached",
                         templates=JUDGE_TEMPLATES)]
