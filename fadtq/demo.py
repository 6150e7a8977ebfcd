"""The main job on its embedded default (``make demo``).

1. ``deepspeed fadtq/train.py --rewards format,accuracy,tq`` with the real launcher: the procedural
   look-alike benchmark, a tiny Qwen2.5-VL built offline with the format warm-up, the heuristic
   judge, GPG.
2. The starting policy and the trained one evaluated on the look-alike test split.
3. One HTML report comparing them (with the run's training curves); its path is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train(run_dir: Path) -> None:
    launcher = Path(sys.executable).with_name("deepspeed")
    command = [str(launcher), str(REPO / "fadtq" / "train.py"), "--rewards", "format,accuracy,tq",
               "--output.dir", str(run_dir.parent), "--output.name", run_dir.name]
    print("$", " ".join(command), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(command, env=env, cwd=REPO, check=True)


def main() -> int:
    from fadtq.evaluation import evaluate_model, write_report

    run_dir = REPO / "runs" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        train(run_dir)
    except subprocess.CalledProcessError as exc:
        return exc.returncode
    metadata = json.loads((run_dir / "metadata.json").read_text())
    benchmark = Path(metadata["benchmark"])
    start = evaluate_model(metadata["model_path"], benchmark, run_dir / "eval-start", batch_size=16,
                           max_new_tokens=64, name="start (format warm-up only)")
    trained = evaluate_model(run_dir / "final", benchmark, run_dir / "eval", batch_size=16, max_new_tokens=64,
                             name=run_dir.name)
    report = write_report([run_dir / "eval-start", run_dir], run_dir / "report.html",
                          baseline="start (format warm-up only)")
    print(f"test accuracy: {start['accuracy']:.3f} at the start -> "
          f"{trained['accuracy']:.3f} after training")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
