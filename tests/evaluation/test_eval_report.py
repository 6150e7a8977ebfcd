"""Reports: the tables' numbers and marks, Markdown next to the HTML, curves, gallery, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from PIL import Image

from fadtq.cli import main as cli_main
from fadtq.errors import FadtqError
from fadtq.evaluation import write_report
from fadtq.evaluation.charts import CHART_SIZE, curve_chart, save_png, svg_markup, value_range
from fadtq.evaluation.report import CURVES, curve_keys, load_entry, ranks


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
    assert "<script" not in page and not re.search(r"(src|href)=\"(?!data:|#)", page)  # #id: inside the page
    steps = [json.loads(line) for line in (demo_run / "metrics.jsonl").read_text().splitlines()]
    keys = [k for k in CURVES if k in steps[0]]
    assert page.count("<svg") == len(keys) == 10
    assert page.count(">fadtq-demo</text>") == 10  # each chart's legend names the run
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


FLAT = ("gpg", "#1f77b4", [(0.0, 0.333), (1000.0, 0.333), (2310.0, 0.333)])
RISING = ("grpo <ref> $x$", "#d62728", [(0.0, 0.2), (2310.0, 0.6)])  # shown as is, not as TeX


def texts(svg: str) -> list[str]:
    return re.findall(r">([^<>]+)</text>", svg)


def step_labels(chart: Figure) -> list[str]:
    """The x axis's tick labels, each a whole number (no 0.5 step, no exponent)."""
    labels = texts(svg_markup(chart))
    steps = labels[:labels.index("step")]
    assert all(re.fullmatch(r"\d+", label) for label in steps), steps
    return steps


def test_chart_svg_has_the_title_a_line_per_series_and_a_legend():
    svg = svg_markup(curve_chart("test accuracy", [FLAT, RISING], y_range=(0, 1)))
    assert svg.startswith("<svg ") and svg.rstrip().endswith("</svg>")  # inlined: no XML declaration or DOCTYPE
    plot, legend = svg.split('<g id="legend_1">')
    for name, colour, points in (FLAT, RISING):
        lines = re.findall(rf'<path d="[^"]*"[^>]*stroke: {colour};[^>]*>', plot)
        assert [line.count("L") + 1 for line in lines] == [len(points)]  # one line, through every point
        assert "clip-path" not in lines[0]  # drawn whole where it lies on the frame (a format rate of 1.0)
        assert colour in legend
    labels = texts(svg)
    assert "test accuracy" in labels and "step" in labels
    assert texts(legend) == ["gpg", "grpo &lt;ref&gt; $x$"]  # the runs' names, escaped


def test_chart_svg_is_the_same_bytes_for_the_same_data():
    first, again = (svg_markup(curve_chart("share", [FLAT, RISING], (0, 1))) for _ in range(2))
    assert first == again and "<metadata" not in first  # fixed ids, no date
    assert svg_markup(curve_chart("share", [FLAT], (0, 1))) != first


def test_chart_axes_show_whole_steps_and_a_fixed_share_range():
    chart = curve_chart("test accuracy", [FLAT], y_range=(0, 1))
    assert chart.axes[0].get_ylim() == (0, 1)  # a flat 0.333 stays flat, not 0.333 +- 0.5
    assert "2100" in step_labels(chart)  # not 2.1e+03
    assert step_labels(curve_chart("reward", [("a", "#000000", [(0.0, 1.0), (2.0, 1.5)])])) == ["0", "1", "2"]
    assert "100002" in step_labels(curve_chart("reward", [("a", "#000000", [(100000.0, 1.0), (100004.0, 1.5)])]))
    below = curve_chart("share", [("a", "#000000", [(0.0, -0.5), (1.0, 0.5)])], y_range=(0, 1))
    assert below.axes[0].get_ylim() == (-0.5, 1)  # values outside the range widen it
    assert curve_chart("reward", [FLAT]).axes[0].get_ylim() == pytest.approx((-0.167, 0.833))


def test_value_range_is_the_data_widened_to_the_fixed_range():
    assert value_range([0.2, 0.7]) == (0.2, 0.7)
    assert value_range([0.2, 0.7], (0, 1)) == (0, 1)
    assert value_range([1.5, -0.2], (0, 1)) == (-0.2, 1.5)
    assert value_range([3.0]) == (2.5, 3.5)


def test_png_is_written_whole_into_a_new_folder(tmp_path):
    png = save_png(curve_chart("share", [FLAT, RISING], (0, 1)), tmp_path / "docs" / "chart.png", dpi=50)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (round(CHART_SIZE[0] * 50), round(CHART_SIZE[1] * 50))
    assert [p.name for p in png.parent.iterdir()] == ["chart.png"]  # no temporary file left behind
