"""Does the trainer learn? GPG and GRPO from the format-warmed tiny model, side by side.

Both methods train with ``configs/learnability.yaml`` (GRPO with ``--advantage.name grpo``) for a
wall-clock budget each, in parallel, one thread each; every saved checkpoint is then evaluated
greedily on a fixed stratified subset of the look-alike test split. Writes
``bench/results/learnability.json`` and ``docs/learnability.png`` (test accuracy and reward curves).
``--task control`` runs the same on the control task of ``bench/control_task.py`` (labels any
model can see) and writes ``learnability_control.json`` and ``docs/learnability_control.png``.
``--name`` renames the run folder and both outputs; any other ``--section.key value`` is passed
on to ``fadtq/train.py`` as a config override for both methods.

    .venv/bin/python bench/learnability.py --minutes 25 --eval-pairs 150
    .venv/bin/python bench/learnability.py --task control --minutes 25
    .venv/bin/python bench/learnability.py --task control --minutes 17 --name learnability_control_t05 \
        --rollout.temperature 0.5
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
TRAIN_WINDOW = 25  # training curves are saved and drawn as means over this many steps


def train(method: str, out: Path, benchmark: Path | None, overrides: list[str]) -> subprocess.Popen:
    command = [sys.executable, str(REPO / "fadtq" / "train.py"), "--config", "learnability", "--rewards",
               "format,accuracy,tq", "--advantage.name", method, "--output.dir", str(out), "--output.name", method,
               *overrides]
    if benchmark is not None:
        command += ["--data.benchmark", str(benchmark)]
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


def collect(run: Path, eval_pairs: int) -> dict:
    """Test accuracy of the start and of every checkpoint, and the per-step training curves, of one run."""
    from fadtq.evaluation import evaluate_model

    metadata = json.loads((run / "metadata.json").read_text())
    benchmark = Path(metadata["benchmark"])
    base = evaluate_model(metadata["model_path"], benchmark, run / "eval-start", batch_size=16, max_new_tokens=32,
                          limit=eval_pairs, name="start")
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {
        "test_accuracy": [(0, base["accuracy"])] + evaluate_checkpoints(run, benchmark, eval_pairs),
        "train_reward": windowed_means([(row["step"], row["reward/total"]) for row in steps]),
        "train_accuracy": windowed_means([(row["step"], row["accuracy"]) for row in steps]),
        "steps": len(steps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per method (wall clock)")
    parser.add_argument("--eval-pairs", type=int, default=150)
    parser.add_argument("--task", choices=("lookalike", "control"), default="lookalike",
                        help="the look-alike's labels, or the control task of bench/control_task.py")
    parser.add_argument("--name", help="names the run folder runs/<name>, bench/results/<name>.json and "
                                           "docs/<name>.png (default: learnability, or learnability_control)")
    parser.add_argument("--replot", action="store_true", help="only redraw the figure from the saved results")
    args, overrides = parser.parse_known_args()  # the rest, e.g. --rollout.temperature 0.5, goes to train.py
    name = args.name or ("learnability" if args.task == "lookalike" else "learnability_control")
    results_file, figure = REPO / "bench" / "results" / f"{name}.json", REPO / "docs" / f"{name}.png"
    if args.replot:
        plot(json.loads(results_file.read_text())["results"], figure)
        return 0
    out = REPO / "runs" / name
    out.mkdir(parents=True, exist_ok=True)
    benchmark = None
    if args.task == "control":
        from control_task import control_benchmark

        benchmark = control_benchmark(out / "control-benchmark")
    stop_after({method: train(method, out, benchmark, overrides) for method in METHODS}, args.minutes)
    results = {}
    for method in METHODS:
        results[method] = collect(out / method, args.eval_pairs)
        print(f"{method}: {results[method]['steps']} steps; test accuracy {results[method]['test_accuracy']}")
    from fadtq.io import atomic_write_json

    atomic_write_json(results_file, {"task": args.task, "minutes_per_method": args.minutes,
                                     "eval_pairs": args.eval_pairs, "overrides": overrides,
                                     "train_window": TRAIN_WINDOW, "results": results})
    plot(results, figure)
    return 0


def windowed_means(points: list, window: int = TRAIN_WINDOW) -> list[tuple[float, float]]:
    """A per-step training curve averaged over consecutive windows of ``window`` steps (at their last step)."""
    return [(points[i + len(chunk) - 1][0], sum(v for _, v in chunk) / len(chunk))
            for i in range(0, len(points), window) if (chunk := points[i:i + window])]


def plot(results: dict, png: Path) -> None:
    from fadtq.evaluation.report import curve_svg, screenshot

    window = f"mean of {TRAIN_WINDOW} steps"
    panels = (("test accuracy (greedy)", "test_accuracy", (0, 1)),
              (f"train reward R ({window})", "train_reward", None),
              (f"train accuracy, sampled ({window})", "train_accuracy", (0, 1)))
    charts = [curve_svg(title, [(m, METHODS[m], [tuple(p) for p in results[m][key]]) for m in results], y_range)
              for title, key, y_range in panels]
    legend = " ".join(f'<span style="color:{c}">&#9632; {m}</span>' for m, c in METHODS.items())
    style = "<style>svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#999}</style>"
    html = f"<html><body style='font-family:sans-serif'><p>{legend}</p>{style}{''.join(charts)}</body></html>"
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "learnability.html"
        page.write_text(html)
        screenshot(page, png, width=1120, height=260)


if __name__ == "__main__":
    sys.exit(main())
