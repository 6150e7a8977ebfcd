"""The judge at batch scale, against a real vLLM server: concurrency, gate and cache savings, share of a step.

Usage: .venv/bin/python bench/bench_judge.py [--concurrency 16] [--other-step-seconds 60]
       [--base-url http://HOST:PORT/v1 --model NAME]   # an already running server instead of the tiny one

Without ``--base-url`` it starts the tiny offline judge with ``fadtq.judges.server`` (vLLM from this
venv: ``make vllm``) and stops it at the end. A batch of 256 rollouts (64 groups of 4;
40% wrong answers; in each group two samples share their reasoning) is judged:

* 256 distinct items with ``--concurrency`` requests in flight, then one at a time: the ratio;
* scored as in training (the paper's reward, accuracy-gated, cache on): requests the gate saved,
  requests the cache saved within the batch, and all of them when the batch is scored again;
* the judge's share of a training step: gated judge time / (that + ``--other-step-seconds``),
  an assumed time for the rest of the step (rollouts and update), since it depends on the policy.

Writes ``bench/results/judge.json`` atomically and prints the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from fadtq.api import JudgeItem  # noqa: E402
from fadtq.composition import PluginChoice, RewardConfig, TermConfig  # noqa: E402
from fadtq.judges.server import TINY_SERVED_NAME, serve  # noqa: E402
from fadtq.plugin_manager import default_plugins  # noqa: E402
from fadtq.prompts import PromptLibrary  # noqa: E402
from fadtq.rollout import Rollout  # noqa: E402
from fadtq.scoring import build_scorer  # noqa: E402
from fadtq.serving.vllm_server import detect_device, free_port  # noqa: E402

LABELS = ("good", "structural", "logical")
BATCH = 256
GROUP = 4


def batch_rollouts() -> list[Rollout]:
    out = []
    for i in range(BATCH):
        group, label = i // GROUP, LABELS[(i // GROUP) % 3]
        answer = LABELS[(LABELS.index(label) + 1) % 3] if i % 5 in (0, 3) else label
        variant = min(i % GROUP, 2)  # samples 2 and 3 of a group reason identically
        reasoning = (f"Group {group}, variant {variant}: the test image differs from the reference in the "
                     f"count of parts; the position of part {variant} is shifted.")
        out.append(Rollout(f"r{i}", f"g{group}", "Which class?", f"<think>{reasoning}</think><answer>{answer}</answer>",
                           label, "screw_bag"))
    return out


def distinct_items() -> list[JudgeItem]:
    return [JudgeItem("Which class?", f"Item {i}: the test image matches the reference image.", "good", "pushpins")
            for i in range(BATCH)]


def timed_judge(options: dict, concurrency: int) -> float:
    judge = default_plugins().judges.get("openai").build({**options, "max_in_flight": concurrency, "cache": False},
                                                         PromptLibrary())
    started = time.perf_counter()
    verdicts = judge.judge(distinct_items())
    seconds = time.perf_counter() - started
    failed = sum(not v.ok for v in verdicts)
    if failed:
        raise SystemExit(f"{failed} of {BATCH} judge requests failed; is the server healthy?")
    return seconds


def seed_reward() -> RewardConfig:
    terms = {"format": TermConfig(reward="format"), "accuracy": TermConfig(reward="accuracy"),
             "conciseness": TermConfig(reward="conciseness", gate="accuracy"),
             "relevance": TermConfig(reward="relevance", gate="accuracy"),
             "tq": TermConfig(mix={"conciseness": "eta", "relevance": "1-eta"}, gate="accuracy")}
    return RewardConfig(terms=terms, active=["format", "accuracy", "tq"])


def scored_savings(options: dict, concurrency: int) -> dict:
    choice = PluginChoice("openai", {**options, "max_in_flight": concurrency})
    scorer = build_scorer(seed_reward(), choice, default_plugins(), PromptLibrary())
    rollouts = batch_rollouts()
    first = scorer.score(rollouts)
    again = scorer.score(rollouts)
    return {
        "rollouts": BATCH,
        "requests": first.judge.counts["requests"],
        "saved_by_gate": first.judge.skipped,
        "saved_by_cache_in_batch": first.judge.counts["deduplicated"] + first.judge.counts["cache_hits"],
        "requests_when_scored_again": again.judge.counts["requests"],
        "saved_by_cache_when_scored_again": again.judge.counts["cache_hits"],
        "failed": first.judge.failed + again.judge.failed,
        "judge_seconds": round(first.judge.seconds, 3),
    }


def run(options: dict, args: argparse.Namespace) -> dict:
    concurrent = timed_judge(options, args.concurrency)
    sequential = timed_judge(options, 1)
    savings = scored_savings(options, args.concurrency)
    share = savings["judge_seconds"] / (savings["judge_seconds"] + args.other_step_seconds)
    return {
        "batch": BATCH,
        "concurrency": args.concurrency,
        "seconds_concurrent": round(concurrent, 3),
        "seconds_one_at_a_time": round(sequential, 3),
        "speedup": round(sequential / concurrent, 2),
        "scoring": savings,
        "requests_saved_share": round(1 - savings["requests"] / BATCH, 3),
        "other_step_seconds_assumed": args.other_step_seconds,
        "judge_share_of_step": round(share, 4),
        "model": options["model"],
        **benchlib.host(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--other-step-seconds", type=float, default=60.0)
    parser.add_argument("--base-url")
    parser.add_argument("--model", default=TINY_SERVED_NAME)
    args = parser.parse_args()
    benchlib.unpin_threads()  # the judge server under test runs with the threads it would have without benchlib
    server = None if args.base_url else serve("tiny", free_port(), detect_device())
    options = {"base_urls": [args.base_url or server.base_url], "model": args.model if args.base_url else server.model}
    try:
        result = run(options, args)
    finally:
        if server is not None:
            server.stop()
    benchlib.atomic_write_json(benchlib.RESULTS / "judge.json", result)
    s = result["scoring"]
    print(f"{BATCH} judge requests: {result['seconds_concurrent']:.2f} s with {args.concurrency} in flight vs "
          f"{result['seconds_one_at_a_time']:.2f} s one at a time = {result['speedup']:.1f}x")
    print(f"scoring {BATCH} rollouts: {s['requests']} requests; saved {s['saved_by_gate']} by the accuracy gate, "
          f"{s['saved_by_cache_in_batch']} by the cache ({result['requests_saved_share']:.0%} saved); "
          f"scored again: {s['requests_when_scored_again']} requests")
    print(f"judge share of a step: {result['judge_share_of_step']:.2%} "
          f"({s['judge_seconds']:.2f} s judge + {args.other_step_seconds:g} s assumed for the rest)")


if __name__ == "__main__":
    main()
