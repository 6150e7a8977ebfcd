"""What ``make demo`` writes to ``bench/results/demo.json``, from two evaluations made by hand."""

from __future__ import annotations

import json

import pytest

from fadtq.demo import figures
from fadtq.evaluation.predictions import read_records


def _metrics(accuracy: float, good_recall: float) -> dict:
    return {"accuracy": accuracy, "balance_score": 0.5, "n": 4, "reasoning_words_mean": 12.0,
            "reasoning_tokens_mean": 20.0, "source": {"benchmark": "/data/pair3c", "split": "test"},
            "per_class": {"good": {"recall": good_recall}, "structural": {"recall": 1.0}, "logical": {"recall": 0.5}}}


def test_the_demo_records_both_evaluations_and_a_paired_gain_with_its_interval(tmp_path):
    run = tmp_path / "demo-1"
    for folder, correct in (("eval-start", [0, 0, 1, 1]), ("eval", [1, 1, 1, 0])):
        (run / folder).mkdir(parents=True)
        (run / folder / "predictions.jsonl").write_text(
            "".join(json.dumps({"id": f"pair-{i}", "correct": bool(c)}) + "\n" for i, c in enumerate(correct)))
    result = figures(_metrics(0.5, 0.0), _metrics(0.75, 1.0), run, 61.0, {"chance": 1 / 3},
                     read_records(run / "eval-start"), read_records(run / "eval"))
    assert (result["run"], result["pairs"], result["seconds"]) == ("demo-1", 4, 61.0)
    assert result["split"].startswith("test: the test.jsonl of the look-alike of generator seed data.seed + 1000")
    assert result["start"]["recall"]["good"] == 0.0 and result["trained"]["recall"]["good"] == 1.0
    assert result["baselines"] == {"chance": 1 / 3}
    # pair by pair the trained policy gains +1, +1, 0, -1: a mean of +0.25; the mean of a resample
    # of 4 of those differences lies in [-1, +1]
    gain = result["gain"]
    assert gain["mean"] == pytest.approx(0.25)
    assert -1.0 <= gain["low"] < 0.25 < gain["high"] <= 1.0
