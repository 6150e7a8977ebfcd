"""The main job on its embedded default (``make demo``).

Until the trainer lands, it demonstrates what exists: the shipped example rollouts scored with the
default reward composition (format, accuracy, heuristic-judge thinking quality) and GPG advantages.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fadtq.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    out = REPO / "runs" / "demo" / "scored.jsonl"
    return cli_main(["reward", "--rewards", "format,accuracy,tq", "--advantage", "gpg",
                     "--input", str(REPO / "examples" / "rollouts.jsonl"), "--output", str(out)])


if __name__ == "__main__":
    sys.exit(main())
