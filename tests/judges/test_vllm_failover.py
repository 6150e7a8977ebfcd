"""Servers dying, coming back and sharing the load, with the real vLLM server."""

from __future__ import annotations

import os
import signal
import threading
import time

from judge_testlib import items, openai_judge, openai_scorer, rollouts, server_metric

SUCCESS = "vllm:request_success_total"


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_killed_mid_batch_then_restarted_then_sharing_the_load(server_factory, shared_server):
    server = server_factory()
    url, port = server.base_url, server.port
    scorer = openai_scorer([url], max_in_flight=2, max_retries=2, backoff_s=0.05, backoff_max_s=0.2)
    batch = rollouts(60, prefix="kill")
    result = {}
    worker = threading.Thread(target=lambda: result.update(scored=scorer.score(batch)))
    worker.start()
    _wait_for(lambda: server_metric(url, SUCCESS) >= 10, 60)
    os.killpg(server.pid, signal.SIGKILL)  # the whole group: API server and engine
    worker.join(120)
    assert not worker.is_alive(), "the scoring call did not finish after the server died"

    scored = result["scored"]
    failed = [i for i, v in enumerate(scored.components["tq"]) if v is None]
    assert scored.judge.judged == 60 and 10 <= scored.judge.judged - scored.judge.failed < 60
    assert scored.judge.failed == len(failed) > 0
    assert scored.judge.counts["failed_connection"] + scored.judge.counts.get("failed_timeout", 0) == scored.judge.failed
    assert all(scored.total[i] == 2.0 for i in failed)  # format + accuracy, tq counted as 0

    restarted = server_factory(port)  # same address: the judge's configuration does not change
    again = scorer.score(batch)
    assert again.judge.failed == 0 and all(v is not None for v in again.components["tq"])
    assert again.judge.counts["cache_hits"] == 60 - scored.judge.failed  # failures were not cached
    assert server_metric(restarted.base_url, SUCCESS) == scored.judge.failed

    both = [restarted.base_url, shared_server.base_url]
    before = [server_metric(u, SUCCESS) for u in both]
    verdicts = openai_judge(both, cache=False).judge(items(40, "shared load"))
    after = [server_metric(u, SUCCESS) for u in both]
    assert all(v.ok for v in verdicts)
    assert [a - b for a, b in zip(after, before)] == [20, 20]

