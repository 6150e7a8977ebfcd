"""Reports: the tables' numbers and marks, Markdown next to the HTML, curves, gallery, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fadtq.cli import main as cli_main
from fadtq.errors import FadtqError
from fadtq.evaluation import write_report
from fadtq.evaluation.report import CURVES, curve_keys, curve_svg, load_entry, ranks


def test_ranks_mark_best_and_second_with_ties_and_gaps():
    rows = [[0.5, None], [0.7, 0.2], [0.7, 0.1], [0.6, None]]
    assert ranks(rows) == [[0, 0], [1, 1], [1, 2], [2, 0]]
    assert ranks([[0.1], [0.2]]) == [[0], [1]]  # two rows: no second best
    assert ranks([[0.3]]) == [[0]]


def test_report_tables_and_markdown(model_eval: Path, demo_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "r" / "report.html"
    assert cli_main(["report", str(model_eval), str(demo_run), "--out", str(out), "--baseline", "tiny-base"]) == 0
    printed = capsys.readouterr().out
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert printed.split("report: ")[0].strip() in markdown
    base = json.loads((model_eval / "metrics.json").read_text())
    demo = json.loads((demo_run / "eval" / "metrics.json").read_text())
    gain = f"{100 * (demo['accuracy'] - base['accuracy']):+.2f}"
    table3 = markdown.split("## Table 3")[1].split("##")[0]
    assert re.search(rf"\| fadtq-demo +\| ✗ +\| {100 * demo['accuracy']:.2f} +\| {re.escape(gain)} ", table3)
    assert re.search(r"\| tiny-base +\| +\| [\d.]+ +\| baseline", table3)
    table2 = markdown.split("## Table 2")[1].split("##")[0]
    demo_row = next(line for line in table2.splitlines() if line.startswith("| fadtq-demo"))
    overall = f"{100 * demo['accuracy']:.2f}"
    best = max(demo["accuracy"], base["accuracy"]) == demo["accuracy"]
    assert (f"**{overall}**" in demo_row) == best
    assert f"{100 * demo['balance_score']:.2f}" in demo_row


def test_report_html_is_self_contained_with_curves_confusions_and_gallery(model_eval, demo_run, tmp_path):
    out = write_report([model_eval, demo_run], tmp_path / "report.html")
    page = out.read_text()
    assert "<script" not in page and not re.search(r"(src|href)=\"(?!data:)", page)
    steps = [json.loads(line) for line in (demo_run / "metrics.jsonl").read_text().splitlines()]
    keys = [k for k in CURVES if k in steps[0]]
    assert page.count("<svg") == len(keys) == 10
    assert page.count('class="confusion"') == 2
    # Figure 3: one case per class for each evaluation, two embedded PNGs per case.
    assert page.count('class="case"') == 6
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)) == 12
    assert "&lt;think&gt;" in page  # outputs are shown escaped, in full
    assert '<th colspan="2">Breakfast Box</th>' in page and '<th colspan="2">Overall</th>' in page


def test_curve_keys_follow_the_known_order_then_extra_rewards():
    class Run:
        steps = [{"step": 0, "accuracy": 0.5, "reward/total": 1.0, "reward/zz_custom": 0.1, "note": "x"}]

    assert curve_keys([Run()]) == ["reward/total", "accuracy", "reward/zz_custom"]


def test_a_run_without_evaluation_gives_curves_only(demo_run, tmp_path):
    run = tmp_path / "bare-run"
    run.mkdir()
    (run / "metrics.jsonl").write_text((demo_run / "metrics.jsonl").read_text())
    entry = load_entry(run)
    assert entry.metrics is None and len(entry.steps) == 20 and entry.name == "bare-run"
    out = write_report([run], tmp_path / "curves.html")
    assert out.read_text().count("<svg") == 10
    assert "training curves only" in (tmp_path / "curves.md").read_text()


def test_report_errors_name_the_folder_or_flag(model_eval, tmp_path):
    with pytest.raises(FadtqError, match=rf"{re.escape(str(tmp_path))}: neither an eval folder"):
        write_report([tmp_path], tmp_path / "x.html")
    with pytest.raises(FadtqError, match="--baseline nope: no such entry; known: tiny-base"):
        write_report([model_eval, model_eval], tmp_path / "x.html", baseline="nope")


def test_curve_axes_show_whole_steps_and_a_fixed_share_range():
    flat = [("gpg", "#000", [(0.0, 0.333), (1000.0, 0.333), (2310.0, 0.333)])]
    svg = curve_svg("test accuracy", flat, y_range=(0, 1))
    labels = re.findall(r">([^<>]+)</text>", svg)
    assert "2310" in labels and not any("e+" in label for label in labels)
    assert labels[1:6] == ["0", "0.25", "0.5", "0.75", "1"]  # y ticks span 0-1, not 0.333 +- 0.5
    outside = curve_svg("share", [("a", "#000", [(0.0, -0.5), (1.0, 0.5)])], y_range=(0, 1))
    assert re.findall(r">([^<>]+)</text>", outside)[1] == "-0.5"  # values outside the range widen it
