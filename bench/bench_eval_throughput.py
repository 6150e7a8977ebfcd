"""Evaluation throughput on the tiny model: batched generation against one pair at a time.

Usage: .venv/bin/python bench/bench_eval_throughput.py [--batch-size 16] [--pairs 48] [--tokens 64] [--rounds 5]

Each measurement is one full ``fadtq.evaluation.evaluate_model`` call into a fresh folder (model
load, images, greedy generation, predictions and metrics written), i.e. what ``fadtq eval``
costs a user; the load is the same fixed cost on both sides. A warm-up call first loads the
libraries and fills the OS file cache; the rounds then alternate which batch size goes first,
and pairs/s is the median over rounds. The tiny model is untrained, so greedy decoding runs to
``--tokens`` on nearly every pair: both sides generate the same amount.

Writes ``bench/results/eval_throughput.json`` atomically and prints the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402


def timed_eval(model: Path, batch_size: int, pairs: int, tokens: int, tag: str) -> dict:
    """One evaluation of ``pairs`` test pairs into a scratch folder; seconds and generated tokens."""
    from fadtq.evaluation import evaluate_model
    from fadtq.files import read_jsonl

    out = benchlib.SCRATCH / f"eval-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    evaluate_model(model, None, out, split="test", batch_size=batch_size, max_new_tokens=tokens, limit=pairs)
    seconds = time.perf_counter() - started
    records = [row for _, row in read_jsonl(out / "predictions.jsonl")]
    shutil.rmtree(out, ignore_errors=True)
    generated = sum(int(r.get("completion_tokens") or 0) for r in records)
    return {"seconds": seconds, "pairs": len(records), "tokens": generated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    benchlib.one_thread()
    model = benchlib.cached_model("tiny")
    timed_eval(model, args.batch_size, min(args.pairs, args.batch_size), args.tokens, "warmup")
    sizes = (args.batch_size, 1)
    runs: dict[int, list[dict]] = {size: [] for size in sizes}
    for round_ in range(args.rounds):
        for size in (sizes if round_ % 2 == 0 else sizes[::-1]):
            runs[size].append(timed_eval(model, size, args.pairs, args.tokens, f"b{size}"))
            print(f"round {round_ + 1}/{args.rounds} batch {size}: {runs[size][-1]['seconds']:.2f} s", flush=True)
    figures = {size: summarize(runs[size]) for size in sizes}
    batched, single = figures[args.batch_size], figures[1]
    result = {
        "setup": {"model": str(model), "split": "test", "pairs": args.pairs, "max_new_tokens": args.tokens,
                  "decoding": "greedy", "rounds": args.rounds, **benchlib.machine()},
        "batched": {"batch_size": args.batch_size, **batched},
        "one_at_a_time": {"batch_size": 1, **single},
        "ratio_batched_over_one_at_a_time": benchlib.ratio(batched["pairs_per_second"], single["pairs_per_second"]),
        "command": ".venv/bin/python bench/bench_eval_throughput.py",
    }
    benchlib.atomic_write_json(benchlib.RESULTS / "eval_throughput.json", result)
    print(f"tiny model, {args.pairs} test pairs, greedy, up to {args.tokens} new tokens, 1 thread")
    print(f"  batch {args.batch_size}: {batched['pairs_per_second']:.2f} pairs/s   "
          f"one at a time: {single['pairs_per_second']:.2f} pairs/s")
    print(f"batched/one-at-a-time throughput: {result['ratio_batched_over_one_at_a_time']:.2f}x")
    print(f"wrote {benchlib.RESULTS / 'eval_throughput.json'}")


def summarize(runs: list[dict]) -> dict:
    rates = [r["pairs"] / r["seconds"] for r in runs]
    return {"pairs_per_second": round(benchlib.median(rates), 3),
            "pairs_per_second_all": [round(x, 3) for x in rates],
            "seconds_median": round(benchlib.median([r["seconds"] for r in runs]), 3),
            "completion_tokens_per_pair": round(runs[0]["tokens"] / max(runs[0]["pairs"], 1), 1)}


if __name__ == "__main__":
    main()
