"""The main job on its embedded default (``make demo``).

1. ``deepspeed fadtq/train.py --rewards format,accuracy,tq`` with the real launcher on the embedded
   default (``configs/cpu_default.yaml``): the easy look-alike at CPU scale, the small Qwen2.5-VL
   shipped in ``pretrained/`` (it sees; its answers start at chance), the heuristic judge, GPG.
2. The starting policy and the trained one evaluated greedily on the look-alike's test split (the
   300 test pairs of a tree of another generator seed, ``HELDOUT_SEED_OFFSET``: no choice of the
   recipe read them), both after training: evaluated beside the ranks, the start slowed the first
   steps by more than its own 5 seconds alone.
3. One HTML report comparing them (with the run's training curves); its path, the accuracy gain
   and the report's Tables 2 and 3 are printed, and the figures written to ``bench/results/demo.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "bench" / "results" / "demo.json"  # the figures of the last make demo, written by it
SUPERVISED = REPO / "bench" / "results" / "policy_ceiling.json"  # bench/policy_ceiling.py's, if run
START = "start (before RL)"
EVAL_BATCH = 16
EVAL_TOKENS = 64


def train(run_dir: Path, meanwhile: Callable[[], Prepared]) -> Prepared:
    """One rank per core, two at most (the default's 24 prompts split over them), one thread each.
    ``meanwhile`` runs while DeepSpeed's launcher starts."""
    launcher = Path(sys.executable).with_name("deepspeed")
    ranks = min(2, os.cpu_count() or 1)
    command = [str(launcher), "--num_gpus", str(ranks), str(REPO / "fadtq" / "train.py"), "--rewards",
               "format,accuracy,tq", "--output.dir", str(run_dir.parent), "--output.name", run_dir.name]
    print("$", " ".join(command), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with subprocess.Popen(command, env=env, cwd=REPO) as launched:
        try:
            result = meanwhile()
        except BaseException:
            launched.terminate()
            raise
        if launched.wait():
            raise subprocess.CalledProcessError(launched.returncode, command)
    return result


def evaluate(model: str | Path, benchmark: Path, out: Path, name: str) -> dict:
    from fadtq.evaluation import evaluate_model

    return evaluate_model(model, benchmark, out, batch_size=EVAL_BATCH, max_new_tokens=EVAL_TOKENS, name=name)


@dataclass(frozen=True)
class Prepared:
    """What the demo needs beside the run: the starting policy, the training benchmark, the test
    split's, and the image-statistics baseline on the test split (fitted on the training pairs)."""

    model: Path
    benchmark: Path
    test: Path
    image_statistics: float
    difficulty: str


def prepare() -> Prepared:
    """Runs beside the launcher and the ranks' start-up. The look-alikes are generated here on first
    use, the training one first: the ranks need it. Then the start policy is loaded once
    (``warm_up``)."""
    from fadtq.evaluation.baselines import image_statistics_on
    from fadtq.data.dataset import ensure_heldout_benchmark
    from fadtq.pretraining.default_policy import pretrained_model_dir
    from fadtq.run_config import load_run_config
    from fadtq.training.preflight import training_benchmark

    cfg = load_run_config("cpu_default")  # train.py's default config
    print("start policy: the pretrained policy of cpu_default (shipped in pretrained/, its sha256 checked; "
          "pretrained into the cache if its recipe changed)", flush=True)
    model, benchmark = pretrained_model_dir(cfg), training_benchmark(cfg)
    test = ensure_heldout_benchmark(cfg.data.synth_scale, cfg.data.seed, cfg.data.synth_difficulty)
    print(f"start policy: {model}; test split: {test / 'test.jsonl'}", flush=True)
    statistics = image_statistics_on(benchmark / "train.jsonl", test / "test.jsonl", cfg.data.image_size)
    warm_up(model)
    return Prepared(model, benchmark, test, statistics, cfg.data.synth_difficulty)


def warm_up(model: Path) -> None:
    """Loads the start policy once and lets it go: the imports of torch and the family's modelling
    code (about 4 s) then happen here, on the core the launcher leaves idle, not after training."""
    from transformers import AutoModelForImageTextToText

    AutoModelForImageTextToText.from_pretrained(str(model))


def baselines(start_records: list[dict], prepared: Prepared) -> dict[str, float]:
    """On the test split: chance, the rule on the start policy's own reasoning (``start_records``),
    image statistics fitted on the training pairs (fadtq/evaluation/baselines.py), and the supervised
    ceiling where ``bench/policy_ceiling.py`` recorded it."""
    from fadtq.evaluation.baselines import CHANCE, reasoning_ceiling

    found = {"chance": CHANCE, "reasoning_ceiling": reasoning_ceiling(start_records, prepared.difficulty),
             "image_statistics": prepared.image_statistics}
    if SUPERVISED.is_file():  # bench/policy_ceiling.py: the checkpoint chosen on dev, measured on test
        found["supervised_ceiling"] = json.loads(SUPERVISED.read_text())["test_accuracy"]
    return found


def figures(start: dict, trained: dict, run_dir: Path, seconds: float, baselines_: dict[str, float],
            start_records: list[dict], trained_records: list[dict]) -> dict:
    """What ``bench/results/demo.json`` records: both evaluations' figures, the gain with its 95%
    bootstrap interval over the pairs (paired: the same pairs before and after), the baselines, the
    wall time."""
    from fadtq.data.dataset import HELDOUT_SEED_OFFSET
    from fadtq.evaluation.intervals import paired_difference
    from fadtq.evaluation.predictions import correct_by_id

    def summary(metrics: dict) -> dict:
        return {"accuracy": metrics["accuracy"], "balance_score": metrics["balance_score"],
                "recall": {name: row["recall"] for name, row in metrics["per_class"].items()},
                "reasoning_words": metrics["reasoning_words_mean"], "reasoning_tokens": metrics["reasoning_tokens_mean"]}

    after, before = correct_by_id(trained_records), correct_by_id(start_records)
    pairs = sorted(after)
    gain = paired_difference([[after[pair] for pair in pairs]], [[before[pair] for pair in pairs]])
    benchmark = Path(trained["source"]["benchmark"])
    return {"command": "make demo", "run": run_dir.name,
            "benchmark": str(benchmark.relative_to(REPO) if benchmark.is_relative_to(REPO) else benchmark),
            "split": f"test: the {trained['source']['split']}.jsonl of the look-alike of generator seed data.seed + "
                     f"{HELDOUT_SEED_OFFSET}; training and dev pairs come from data.seed",
            "pairs": trained["n"], "seconds": round(seconds, 1),
            "machine": {"cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S")},
            "start": summary(start), "trained": summary(trained), "gain": gain.as_dict(), "baselines": baselines_}


def main() -> int:
    from fadtq.files import atomic_write_json

    began = time.monotonic()
    runs = REPO / "runs"
    run_dir = runs / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    runs.mkdir(parents=True, exist_ok=True)
    try:
        prepared = train(run_dir, prepare)
    except subprocess.CalledProcessError as exc:
        return exc.returncode
    metadata = json.loads((run_dir / "metadata.json").read_text())
    if (Path(metadata["model_path"]), Path(metadata["benchmark"])) != (prepared.model, prepared.benchmark):
        raise RuntimeError(f"the run trained {metadata['model_path']} on {metadata['benchmark']}; "
                           f"the start would be evaluated as {prepared.model} on {prepared.benchmark}")
    from fadtq.evaluation.report import build_report

    start = evaluate(prepared.model, prepared.test, run_dir / "eval-start", START)
    trained = evaluate(run_dir / "final", prepared.test, run_dir / "eval", run_dir.name)
    report = build_report([run_dir / "eval-start", run_dir], run_dir / "report.html", baseline=START)
    print(report.markdown)
    from fadtq.evaluation.predictions import read_records

    start_records, trained_records = read_records(run_dir / "eval-start"), read_records(run_dir / "eval")
    result = figures(start, trained, run_dir, time.monotonic() - began,
                     baselines(start_records, prepared), start_records, trained_records)
    gain, base = result["gain"], result["baselines"]
    print(f"accuracy on the {trained['n']} pairs of the test split: {100 * start['accuracy']:.1f}% at the start "
          f"-> {100 * trained['accuracy']:.1f}% after training ({100 * gain['mean']:+.1f} points; 95% interval "
          f"over the pairs [{100 * gain['low']:+.1f}, {100 * gain['high']:+.1f}]). Baselines: chance "
          f"{100 * base['chance']:.1f}%, image statistics {100 * base['image_statistics']:.1f}%, a rule on the "
          f"start policy's own reasoning {100 * base['reasoning_ceiling']:.1f}%"
          + (f", supervised ceiling {100 * base['supervised_ceiling']:.1f}%" if "supervised_ceiling" in base else ""))
    print(f"report: {report.html_path}")
    atomic_write_json(RESULT, result)
    print(f"figures: {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
