"""``fadtq report``: one self-contained HTML report (and report.md) over eval folders and training runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="RUN_OR_EVAL_DIR",
                        help="eval folders (metrics.json) or training runs (metrics.jsonl, optionally RUN/eval)")
    parser.add_argument("--out", default="report.html", help="HTML file to write (default report.html); report.md goes next to it")
    parser.add_argument("--baseline", help="name of the entry accuracy gains are measured against (default: the first)")


def run(args: argparse.Namespace) -> int:
    from fadtq.evaluation.report import build_report

    report = build_report([Path(d) for d in args.dirs], Path(args.out), baseline=args.baseline)
    print(report.markdown)
    print(f"report: {report.html_path.resolve()} (tables also in {report.markdown_path})")
    return 0
