"""The main job on its embedded default (``make demo``): FAD-TQ training with the real DeepSpeed
launcher on the procedural look-alike benchmark, a tiny Qwen2.5-VL built offline and the heuristic
judge, exactly ``deepspeed fadtq/train.py --rewards format,accuracy,tq``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    run_name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    launcher = Path(sys.executable).with_name("deepspeed")
    command = [str(launcher), str(REPO / "fadtq" / "train.py"), "--rewards", "format,accuracy,tq",
               "--output.dir", str(REPO / "runs"), "--output.name", run_name]
    print("$", " ".join(command), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(command, env=env, cwd=REPO)
    if result.returncode:
        return result.returncode
    print(f"run folder: {REPO / 'runs' / run_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
