"""The ``openai`` judge against a scripted endpoint: request shape, retries, backoff, failures."""

from __future__ import annotations

import time

import pytest
from fake_openai import FakeOpenAI, ok
from judge_testlib import items, openai_judge

from fadtq.api import Verdict
from fadtq.errors import FadtqError
from fadtq.judges.protocol import VERDICT_JSON_SCHEMA

GOOD = ok('{"conciseness": 2, "relevance": 1}')
FAST = {"backoff_s": 0.01, "backoff_max_s": 0.05}


def test_request_is_temperature_0_thinking_off_and_schema_constrained():
    with FakeOpenAI([GOOD]) as server:
        verdicts = openai_judge([server.url], **FAST).judge(items(1))
    assert verdicts == [Verdict(2, 1)]
    body = server.bodies[0]
    assert body["temperature"] == 0.0
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["response_format"]["json_schema"]["schema"] == VERDICT_JSON_SCHEMA
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_structured_output_can_be_turned_off_and_think_blocks_are_stripped():
    with FakeOpenAI([ok('<think>hmm {"conciseness": 3, "relevance": 3}</think>{"conciseness": 0, "relevance": 1}')]) as server:
        verdicts = openai_judge([server.url], structured_output=False).judge(items(1))
    assert "response_format" not in server.bodies[0]
    assert verdicts == [Verdict(0, 1)]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retryable_status_is_retried_then_succeeds(status):
    with FakeOpenAI([(status, "busy"), (status, "busy"), GOOD]) as server:
        judge = openai_judge([server.url], **FAST)
        verdicts = judge.judge(items(1))
    assert verdicts == [Verdict(2, 1)]
    assert judge.counts["requests"] == 3 and judge.counts["retries"] == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_is_not_retried_and_is_a_failure(status):
    with FakeOpenAI([(status, '{"error": "bad request"}'), GOOD]) as server:
        judge = openai_judge([server.url], **FAST)
        [verdict] = judge.judge(items(1))
    assert not verdict.ok and verdict.conciseness is None and f"http_{status}" in verdict.error
    assert judge.counts["requests"] == 1 and judge.counts[f"failed_http_{status}"] == 1


def test_exhausted_retries_give_a_failure_after_exponential_backoff():
    with FakeOpenAI([(503, "down")]) as server:
        judge = openai_judge([server.url], max_retries=3, backoff_s=0.1, backoff_max_s=0.25)
        started = time.perf_counter()
        [verdict] = judge.judge(items(1))
        waited = time.perf_counter() - started
    assert not verdict.ok and "http_503" in verdict.error
    assert judge.counts["requests"] == 4 and judge.counts["failed_http_503"] == 1
    assert waited >= 0.1 + 0.2 + 0.25  # it waited 0.1, 0.2, then the cap 0.25 between the 4 tries


def test_timeout_is_retried_and_counted():
    with FakeOpenAI(["slow"]) as server:
        judge = openai_judge([server.url], timeout_s=0.2, max_retries=1, **FAST)
        [verdict] = judge.judge(items(1))
    assert not verdict.ok and verdict.error.startswith("timeout")
    assert judge.counts["requests"] == 2 and judge.counts["failed_timeout"] == 1


def test_connection_refused_is_a_counted_failure():
    with FakeOpenAI([GOOD]) as server:
        url = server.url
    judge = openai_judge([url], max_retries=2, **FAST)
    verdicts = judge.judge(items(3))
    assert all(not v.ok and v.error.startswith("connection") for v in verdicts)
    assert judge.counts["failed_connection"] == 3 and judge.counts["requests"] == 9


@pytest.mark.parametrize("content", [
    "Sure! The scores are 3 and 3.",
    '{"conciseness": 4, "relevance": 1}',
    '{"conciseness": 3, "relevance": 3, "bonus": 1}',
    '{"conciseness": 3}',
    "",
])
def test_garbage_or_out_of_range_reply_is_a_failure_never_a_score(content):
    with FakeOpenAI([ok(content)]) as server:
        judge = openai_judge([server.url], **FAST)
        [verdict] = judge.judge(items(1))
    assert verdict.error and verdict.conciseness is None and verdict.relevance is None
    assert judge.counts["failed_unparseable"] == 1 and judge.counts["retries"] == 0


@pytest.mark.parametrize("text", ["not json at all", '{"choices": []}', '{"choices": [{"message": {"content": null}}]}'])
def test_malformed_response_envelope_is_a_failure(text):
    with FakeOpenAI([(200, text)]) as server:
        judge = openai_judge([server.url], **FAST)
        [verdict] = judge.judge(items(1))
    assert verdict.error.startswith("bad_response") and judge.counts["failed_bad_response"] == 1


def test_in_flight_requests_are_bounded_and_used():
    with FakeOpenAI([GOOD], delay_s=0.1) as server:
        verdicts = openai_judge([server.url], max_in_flight=4, cache=False).judge(items(12))
    assert all(v.ok for v in verdicts)
    assert server.max_in_flight == 4  # the bound was reached and never exceeded


def test_round_robin_over_base_urls_and_retry_moves_to_the_next():
    with FakeOpenAI([GOOD]) as a, FakeOpenAI([GOOD]) as b:
        openai_judge([a.url, b.url], cache=False).judge(items(10))
        assert len(a.bodies) == 5 and len(b.bodies) == 5
    with FakeOpenAI([(503, "down")]) as down, FakeOpenAI([GOOD]) as up:
        judge = openai_judge([down.url, up.url], max_in_flight=1, **FAST)
        verdicts = judge.judge(items(4))
        assert len(down.bodies) == 2 and len(up.bodies) == 4  # items 0 and 2: down first, their retries on up
    assert all(v.ok for v in verdicts) and judge.counts["retries"] == 2


def test_a_retry_never_returns_to_the_endpoint_that_failed_while_others_share_the_rotation():
    with FakeOpenAI([(503, "down")], delay_s=0.02) as down, FakeOpenAI([GOOD], delay_s=0.02) as up:
        judge = openai_judge([down.url, up.url], max_in_flight=8, cache=False, **{**FAST, "max_retries": 1})
        verdicts = judge.judge(items(40))
    assert all(v.ok for v in verdicts)  # one retry is always enough: it goes to the other endpoint
    assert len(down.bodies) == judge.counts["retries"] == 20 and len(up.bodies) == 40


@pytest.mark.parametrize("options, key", [
    ({"base_urls": []}, "base_urls"),
    ({"base_urls": ["127.0.0.1:8000"]}, "base_urls"),
    ({"model": ""}, "model"),
    ({"max_in_flight": 0}, "max_in_flight"),
    ({"timeout_s": "fast"}, "timeout_s"),
    ({"max_retries": -1}, "max_retries"),
    ({"structured_output": "yes"}, "structured_output"),
    ({"api_key_env": "FADTQ_TEST_NO_SUCH_VARIABLE"}, "api_key_env"),
    ({"cache": False, "cache_path": "x.sqlite"}, "cache_path"),
    ({"temperature": 0.7}, "temperature"),
])
def test_options_are_validated_with_their_key(options, key):
    with pytest.raises(FadtqError) as info:
        openai_judge(["http://127.0.0.1:9/v1"], **options)
    assert str(info.value).startswith(f"judge.options.{key}:") and "\n" not in str(info.value)


def test_model_is_required():
    from fadtq.plugin_manager import default_plugins
    from fadtq.prompts import PromptLibrary

    with pytest.raises(FadtqError, match=r"^judge.options.model: required"):
        default_plugins().judges.get("openai").build({"base_urls": ["http://127.0.0.1:9/v1"]}, PromptLibrary())


def test_judging_from_inside_a_running_event_loop_works():
    """A notebook or an async trainer already runs a loop, where ``asyncio.run`` alone would raise."""
    import asyncio

    async def from_a_notebook_cell():
        return openai_judge([server.url], **FAST).judge(items(2))

    with FakeOpenAI([GOOD]) as server:
        verdicts = asyncio.run(from_a_notebook_cell())
    assert verdicts == [Verdict(2, 1), Verdict(2, 1)] and len(server.bodies) == 2


def test_check_sends_one_request_past_the_cache_and_names_the_option_when_it_fails():
    with FakeOpenAI([GOOD]) as server:
        judge = openai_judge([server.url], cache=True, **FAST)
        judge.judge(items(1))
        judge.check()  # the item above is cached; the check still reaches the server
    assert len(server.bodies) == 2
    with FakeOpenAI([(404, '{"error": "The model judge does not exist"}')]) as server:
        with pytest.raises(FadtqError, match=r"^judge\.options\.model: the judge server did not answer \(http_404"):
            openai_judge([server.url], **FAST).check()
    with FakeOpenAI([(503, "busy")]) as server:
        with pytest.raises(FadtqError, match=r"^judge\.options\.base_urls: the judge server did not answer \(http_503"):
            openai_judge([server.url], max_retries=1, **FAST).check()
