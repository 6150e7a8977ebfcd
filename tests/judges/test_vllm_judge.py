"""The ``openai`` judge against a real vLLM server (tiny random Qwen3, structured output)."""

from __future__ import annotations

import time

from judge_testlib import items, openai_judge, openai_scorer, rollouts, server_metric

SUCCESS = "vllm:request_success_total"
LATENCY_SUM = "vllm:e2e_request_latency_seconds_sum"


def test_a_batch_is_scored_through_the_server_with_every_reply_parsed(shared_server):
    batch = rollouts(48, wrong_every=4)
    before = server_metric(shared_server.base_url, SUCCESS)
    scored = openai_scorer([shared_server.base_url]).score(batch)
    judged = [i for i, r in enumerate(batch) if "<answer>" + r.label in r.completion]
    assert scored.judge.judged == len(judged) == 36 and scored.judge.skipped == 12
    assert scored.judge.failed == 0
    assert all(scored.components["tq"][i] is not None for i in judged)
    assert all(0.0 <= scored.components["conciseness"][i] <= 1.0 for i in judged)
    assert server_metric(shared_server.base_url, SUCCESS) - before == 36
    assert scored.judge.counts["requests"] == 36 and "judge/perfect_share" in scored.logs


def test_concurrency_is_used_on_the_server_and_pays(shared_server):
    """The server's own end-to-end latencies prove the overlap: their sum over a batch exceeds the
    batch's wall time only when requests were in the server at the same time. (Sampling the
    ``num_requests_running`` gauge missed short batches: vLLM updates it between log intervals.)"""
    url = shared_server.base_url
    latency_before = server_metric(url, LATENCY_SUM)
    started = time.perf_counter()
    verdicts = openai_judge([url], max_in_flight=16, cache=False).judge(items(32, "wide"))
    concurrent = time.perf_counter() - started
    overlapped = server_metric(url, LATENCY_SUM) - latency_before
    started = time.perf_counter()
    openai_judge([url], max_in_flight=1, cache=False).judge(items(32, "narrow"))
    sequential = time.perf_counter() - started
    assert all(v.ok for v in verdicts)
    assert overlapped > 3 * concurrent, "the server never held several judge requests at once"
    assert sequential > 1.5 * concurrent


def test_the_cache_answers_repeated_reasoning_without_requests(shared_server, tmp_path):
    url, path = shared_server.base_url, str(tmp_path / "verdicts.sqlite")
    first = openai_judge([url], cache_path=path)
    verdicts = first.judge(items(8) + items(8))
    assert first.counts["requests"] == 8 and first.counts["deduplicated"] == 8
    before = server_metric(url, SUCCESS)
    again = openai_judge([url], cache_path=path)  # a new judge (a later run) reading the same file
    assert again.judge(items(8)) == verdicts[:8]
    assert again.counts["requests"] == 0 and again.counts["cache_hits"] == 8
    assert server_metric(url, SUCCESS) == before
