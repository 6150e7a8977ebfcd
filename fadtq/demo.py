"""The main job on its embedded default (``make demo``).

1. ``deepspeed fadtq/train.py --rewards format,accuracy,tq`` with the real launcher on the embedded
   default (``configs/cpu_default.yaml``): the easy look-alike at CPU scale, the small Qwen2.5-VL
   shipped in ``pretrained/`` (it sees; its answers start at chance), the heuristic judge, GPG.
2. The starting policy and the trained one evaluated greedily on the same 150 stratified test pairs.
3. One HTML report comparing them (with the run's training curves); its path, the accuracy gain
   and the report's Tables 2 and 3 are printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = "start (before RL)"
EVAL_PAIRS = 150  # at most the first 150 test pairs in stratified order: 10 per (category, class)
EVAL_BATCH = 16
EVAL_TOKENS = 64


def train(run_dir: Path) -> None:
    """One rank per core, two at most (the default's 24 prompts split over them), one thread each."""
    launcher = Path(sys.executable).with_name("deepspeed")
    ranks = min(2, os.cpu_count() or 1)
    command = [str(launcher), "--num_gpus", str(ranks), str(REPO / "fadtq" / "train.py"), "--rewards",
               "format,accuracy,tq", "--output.dir", str(run_dir.parent), "--output.name", run_dir.name]
    print("$", " ".join(command), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with subprocess.Popen(command, env=env, cwd=REPO) as launched:
        import_evaluation()
        if launched.wait():
            raise subprocess.CalledProcessError(launched.returncode, command)


def import_evaluation() -> None:
    """The evaluation's imports (7 s), while DeepSpeed's launcher, one process at a time, leaves a core idle."""
    import transformers.models.qwen2_5_vl.modeling_qwen2_5_vl  # noqa: F401

    import fadtq.generation.hf  # noqa: F401


def main() -> int:
    from fadtq.evaluation import evaluate_model
    from fadtq.evaluation.report import build_report

    run_dir = REPO / "runs" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        train(run_dir)
    except subprocess.CalledProcessError as exc:
        return exc.returncode
    metadata = json.loads((run_dir / "metadata.json").read_text())
    benchmark = Path(metadata["benchmark"])
    start = evaluate_model(metadata["model_path"], benchmark, run_dir / "eval-start", batch_size=EVAL_BATCH,
                           max_new_tokens=EVAL_TOKENS, limit=EVAL_PAIRS, name=START)
    trained = evaluate_model(run_dir / "final", benchmark, run_dir / "eval", batch_size=EVAL_BATCH,
                             max_new_tokens=EVAL_TOKENS, limit=EVAL_PAIRS, name=run_dir.name)
    report = build_report([run_dir / "eval-start", run_dir], run_dir / "report.html", baseline=START)
    print(report.markdown)
    gain = 100 * (trained["accuracy"] - start["accuracy"])
    print(f"test accuracy on {trained['n']} stratified test pairs: {100 * start['accuracy']:.1f}% at the start "
          f"-> {100 * trained['accuracy']:.1f}% after training ({gain:+.1f} points)")
    print(f"report: {report.html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
