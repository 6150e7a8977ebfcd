"""Shared evaluation fixtures, built once per session: a tiny model, a small benchmark, one model
evaluation, and a training-like run folder whose evaluation comes from a predictions file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from eval_support import BATCH, MAX_NEW_TOKENS, N_PAIRS, SMALL_SIZE, plausible_completion


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fadtq.pretraining.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("eval-model") / "tiny", "tiny", 0)


@pytest.fixture(scope="session")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny look-alike at 32 px: 4 test pairs per category and class (60 in all)."""
    from fadtq.data.pair3c import build_pair3c, write_benchmark
    from fadtq.data.synth import synthesize

    base = tmp_path_factory.mktemp("eval-bench")
    root = synthesize(base / "loco", seed=0, scale="tiny", size=SMALL_SIZE, workers=1)
    return write_benchmark(build_pair3c(root, seed=0, train_per_class=6), base / "pair3c")


@pytest.fixture(scope="session")
def model_eval(tiny_model: Path, small_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted greedy evaluation of the tiny model on a stratified 12-pair subset."""
    from fadtq.evaluation import evaluate_model

    out = tmp_path_factory.mktemp("eval-model-out") / "base"
    evaluate_model(tiny_model, small_bench, out, batch_size=BATCH, max_new_tokens=MAX_NEW_TOKENS,
                   limit=N_PAIRS, name="tiny-base")
    return out


@pytest.fixture(scope="session")
def demo_run(small_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training-like run folder: config.yaml, metadata.json, 20 steps of metrics.jsonl and RUN/eval."""
    from fadtq.data.pair3c import read_manifest
    from fadtq.evaluation.runner import evaluate_file

    run = tmp_path_factory.mktemp("eval-runs") / "fadtq-demo"
    run.mkdir()
    (run / "config.yaml").write_text("advantage: {name: gpg}\n")
    (run / "metadata.json").write_text(json.dumps({"reference_model": False, "loss": "pg"}))
    rng = random.Random(0)
    steps = []
    for step in range(20):
        acc = min(0.9, 0.3 + 0.03 * step + rng.uniform(-0.05, 0.05))
        fmt = min(1.0, 0.5 + 0.04 * step)
        tq = 0.4 + 0.01 * step
        steps.append({"step": step, "accuracy": acc, "format_rate": fmt, "reward/format": fmt,
                      "reward/accuracy": acc, "reward/conciseness": tq + 0.05, "reward/relevance": tq - 0.05,
                      "reward/tq": tq, "reward/total": fmt + acc + acc * tq,
                      "length/tokens": 60 - step, "length/think_words": 40 - step / 2})
    (run / "metrics.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    preds = run / "outputs.jsonl"
    rows = read_manifest(small_bench / "test.jsonl")
    preds.write_text("".join(json.dumps({"id": r["id"], "completion": plausible_completion(r["label"], rng)}) + "\n"
                             for r in rows))
    evaluate_file(preds, small_bench, run / "eval", name="fadtq-demo")
    return run
