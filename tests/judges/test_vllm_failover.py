"""A judge server killed in the middle of a batch, and a second server taking over, with the real
vLLM server. (Round-robin over several servers is checked request by request in
test_openai_judge_unit.py.)"""

from __future__ import annotations

import os
import signal
import threading
import time

from judge_testlib import openai_judge, rollouts, scorer_around, server_metric

SUCCESS = "vllm:request_success_total"
RETRIES = {"max_retries": 2, "backoff_s": 0.05, "backoff_max_s": 0.2}


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_killed_mid_batch_then_another_server_takes_over(server_factory, shared_server, tmp_path):
    server = server_factory()
    cache = {"cache_path": str(tmp_path / "verdicts.sqlite")}  # one cache for both judges, as across a restart
    judge = openai_judge([server.base_url], max_in_flight=2, **RETRIES, **cache)
    batch = rollouts(60, prefix="kill")
    result = {}
    worker = threading.Thread(target=lambda: result.update(scored=scorer_around(judge).score(batch)))
    worker.start()
    # the client's own count, not the server's metrics (which can lag): 12 sent with 2 in flight
    # means at least 10 answered, and the kill lands long before the other 48 are through
    _wait_for(lambda: judge.counts["requests"] >= 12, 60)
    os.killpg(server.pid, signal.SIGKILL)  # the whole group: API server and engine
    worker.join(120)
    assert not worker.is_alive(), "the scoring call did not finish after the server died"

    scored = result["scored"]
    failed = [i for i, v in enumerate(scored.components["tq"]) if v is None]
    assert scored.judge.judged == 60 and 10 <= scored.judge.judged - scored.judge.failed < 60
    assert scored.judge.failed == len(failed) > 0
    assert scored.judge.counts["failed_connection"] + scored.judge.counts.get("failed_timeout", 0) == scored.judge.failed
    assert all(scored.total[i] == 2.0 for i in failed)  # format + accuracy, tq counted as 0

    # the dead server first in the list: each request that lands on it is retried on the live one
    both = openai_judge([server.base_url, shared_server.base_url], max_in_flight=2, **RETRIES, **cache)
    before = server_metric(shared_server.base_url, SUCCESS)
    again = scorer_around(both).score(batch)
    assert again.judge.failed == 0 and all(v is not None for v in again.components["tq"])
    assert again.judge.counts["cache_hits"] == 60 - scored.judge.failed  # failures were not cached
    # exactly the failed ones reached the live server (its counter may trail the replies a moment)
    _wait_for(lambda: server_metric(shared_server.base_url, SUCCESS) - before == scored.judge.failed, 10)
    assert again.judge.counts["failed_connection"] == 0 and again.judge.counts["retries"] > 0
