"""The main job on its embedded default (``make demo``).

1. ``deepspeed fadtq/train.py --rewards format,accuracy,tq`` with the real launcher on the embedded
   default (``configs/cpu_default.yaml``): the easy look-alike at CPU scale, the small Qwen2.5-VL
   shipped in ``pretrained/`` (it sees; its answers start at chance), the heuristic judge, GPG.
2. The starting policy and the trained one evaluated greedily on the same 150 stratified test pairs,
   the starting one while DeepSpeed's launcher starts.
3. One HTML report comparing them (with the run's training curves); its path, the accuracy gain
   and the report's Tables 2 and 3 are printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = "start (before RL)"
EVAL_PAIRS = 150  # at most the first 150 test pairs in stratified order: 10 per (category, class)
EVAL_BATCH = 16
EVAL_TOKENS = 64


def train(run_dir: Path, meanwhile: Callable[[], tuple]) -> tuple:
    """One rank per core, two at most (the default's 24 prompts split over them), one thread each.
    ``meanwhile`` runs while DeepSpeed's launcher starts, one process at a time, leaving a core idle."""
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

    return evaluate_model(model, benchmark, out, batch_size=EVAL_BATCH, max_new_tokens=EVAL_TOKENS, limit=EVAL_PAIRS,
                          name=name)


def evaluate_start(out: Path) -> tuple[dict, Path, Path]:
    """The starting policy on the test pairs: its metrics, the policy and the benchmark. The look-alike
    is generated here on first use, before the ranks need it."""
    from fadtq.pretraining.default_policy import pretrained_model_dir
    from fadtq.run_config import load_run_config
    from fadtq.training.preflight import training_benchmark

    cfg = load_run_config("cpu_default")  # train.py's default config
    print("start policy: the pretrained policy of cpu_default (shipped in pretrained/, its sha256 checked; "
          "pretrained into the cache if its recipe changed)", flush=True)
    model, benchmark = pretrained_model_dir(cfg), training_benchmark(cfg)
    print(f"start policy: {model}", flush=True)
    return evaluate(model, benchmark, out, START), model, benchmark


def main() -> int:
    runs = REPO / "runs"
    run_dir = runs / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    runs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{run_dir.name}-", dir=runs) as scratch:
        early = Path(scratch) / "eval-start"
        try:
            start, model, benchmark = train(run_dir, lambda: evaluate_start(early))
        except subprocess.CalledProcessError as exc:
            return exc.returncode
        metadata = json.loads((run_dir / "metadata.json").read_text())
        if (Path(metadata["model_path"]), Path(metadata["benchmark"])) != (model, benchmark):
            raise RuntimeError(f"the run trained {metadata['model_path']} on {metadata['benchmark']}; "
                               f"the start was evaluated as {model} on {benchmark}")
        early.rename(run_dir / "eval-start")
    from fadtq.evaluation.report import build_report

    trained = evaluate(run_dir / "final", benchmark, run_dir / "eval", run_dir.name)
    report = build_report([run_dir / "eval-start", run_dir], run_dir / "report.html", baseline=START)
    print(report.markdown)
    gain = 100 * (trained["accuracy"] - start["accuracy"])
    print(f"test accuracy on {trained['n']} stratified test pairs: {100 * start['accuracy']:.1f}% at the start "
          f"-> {100 * trained['accuracy']:.1f}% after training ({gain:+.1f} points)")
    print(f"report: {report.html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
