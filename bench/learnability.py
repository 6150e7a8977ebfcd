"""Does the trainer learn? GPG and GRPO from the format-warmed tiny model, side by side.

Both methods train with ``configs/learnability.yaml`` (GRPO with ``--advantage.name grpo``) for a
wall-clock budget each, in parallel, one thread each; every saved checkpoint is then evaluated
greedily on a fixed stratified subset of the look-alike test split. Writes
``bench/results/learnability.json`` and ``docs/learnability.png`` (test accuracy and reward curves).

    .venv/bin/python bench/learnability.py --minutes 30 --eval-pairs 150
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = {"gpg": "#1f77b4", "grpo": "#d62728"}


def train(method: str, out: Path, minutes: float) -> subprocess.Popen:
    command = [sys.executable, str(REPO / "fadtq" / "train.py"), "--config", "learnability", "--rewards",
               "format,accuracy,tq", "--advantage.name", method, "--output.dir", str(out), "--output.name", method]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = (out / f"{method}.log").open("w")
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_after(processes: dict[str, subprocess.Popen], minutes: float) -> None:
    """Let each run go on for ``minutes``, then interrupt it (Ctrl-C: checkpoints stay complete)."""
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline and any(p.poll() is None for p in processes.values()):
        time.sleep(5)
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    for process in processes.values():
        process.wait()


def evaluate_checkpoints(run: Path, benchmark: Path, pairs: int) -> list[tuple[int, float]]:
    from fadtq.evaluation import evaluate_model

    points = []
    for checkpoint in sorted((run / "checkpoints").glob("step-??????")):
        step = int(checkpoint.name.split("-")[1])
        metrics = evaluate_model(checkpoint / "policy", benchmark, run / f"eval-{checkpoint.name}", batch_size=16,
                                 max_new_tokens=32, limit=pairs, name=f"{run.name}@{step}")
        points.append((step, metrics["accuracy"]))
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per method (wall clock)")
    parser.add_argument("--eval-pairs", type=int, default=150)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "learnability")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    processes = {method: train(method, args.out, args.minutes) for method in METHODS}
    stop_after(processes, args.minutes)
    results = {}
    for method in METHODS:
        run = args.out / method
        benchmark = Path(json.loads((run / "metadata.json").read_text())["benchmark"])
        start = json.loads((run / "metadata.json").read_text())["model_path"]
        from fadtq.evaluation import evaluate_model

        base = evaluate_model(start, benchmark, run / "eval-start", batch_size=16, max_new_tokens=32,
                              limit=args.eval_pairs, name="start")
        steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        results[method] = {
            "test_accuracy": [(0, base["accuracy"])] + evaluate_checkpoints(run, benchmark, args.eval_pairs),
            "train_reward": [(row["step"], row["reward/total"]) for row in steps],
            "train_accuracy": [(row["step"], row["accuracy"]) for row in steps],
            "steps": len(steps),
        }
        print(f"{method}: {len(steps)} steps; test accuracy {results[method]['test_accuracy']}")
    from fadtq.io import atomic_write_json

    atomic_write_json(REPO / "bench" / "results" / "learnability.json",
                      {"minutes_per_method": args.minutes, "eval_pairs": args.eval_pairs, "results": results})
    plot(results, REPO / "docs" / "learnability.png")
    return 0


def plot(results: dict, png: Path) -> None:
    from fadtq.evaluation.report import curve_svg, screenshot

    charts = [curve_svg(title, [(m, METHODS[m], [tuple(p) for p in results[m][key]]) for m in results])
              for title, key in (("test accuracy (greedy)", "test_accuracy"), ("train reward R", "train_reward"),
                                 ("train accuracy (sampled)", "train_accuracy"))]
    legend = " ".join(f'<span style="color:{c}">&#9632; {m}</span>' for m, c in METHODS.items())
    html = (f"<html><body style='font-family:sans-serif'><p>{legend}</p>"
            f"<style>svg .grid{{stroke:#eee}}svg .frame{{fill:none;stroke:#999}}</style>{''.join(charts)}</body></html>")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "learnability.html"
        page.write_text(html)
        screenshot(page, png, width=1120, height=260)


if __name__ == "__main__":
    sys.exit(main())
