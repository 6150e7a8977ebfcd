"""Reports: the paper's Tables 2 and 3, confusion matrices, training curves and a Figure-3 gallery.

``build_report`` takes eval folders (``metrics.json`` + ``predictions.jsonl``) and training runs
(``metrics.jsonl``; the run's evaluation is read from ``RUN/eval`` when present) and writes one
self-contained HTML file: images are embedded as base64 PNG, curves are inline SVG drawn by
matplotlib (``fadtq.evaluation.charts``), there is no script and no external resource, so the file
opens anywhere and renders without a network. The same tables go to the terminal and to a Markdown
file next to the HTML.

Numbers are percentages with two decimals, as in the paper. In Table 2 the best value of each
column is bold and, for accuracy, the second best underlined (Markdown: italic); Balance Scores
are grey, and lighter below 15 % (the paper's flag for degenerate option choice).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from fadtq.data.dataset import PairDataset
from fadtq.errors import FadtqError
from fadtq.evaluation.charts import COLOURS, curve_chart, svg_markup
from fadtq.evaluation.metrics import UNPARSED, category_order
from fadtq.evaluation.predictions import METRICS, PREDICTIONS
from fadtq.files import atomic_write_text, check_output_file, read_json, read_jsonl
from fadtq.prompts import CLASS_NAMES
from fadtq.table import format_table

LOW_BALANCE = 0.15
THUMBNAIL = 224
CURVES = {
    "reward/total": "total reward", "reward/format": "format reward", "reward/accuracy": "accuracy reward",
    "reward/tq": "thinking-quality reward", "reward/conciseness": "conciseness reward",
    "reward/relevance": "relevance reward", "accuracy": "accuracy", "format_rate": "format rate",
    "length/tokens": "completion length (tokens)", "length/think_words": "reasoning length (words)",
}
SHARE_CURVES = ("accuracy", "format_rate")  # drawn on a fixed 0-1 axis
# What the report reads of an evaluation's metrics.json.
METRIC_KEYS = ("name", "source", "n", "accuracy", "accuracy_category_mean", "balance_score", "unparsed_rate",
               "format_rate", "reasoning_words_mean", "reasoning_tokens_mean", "categories", "confusion", "per_class",
               "macro_f1")


@dataclass
class Entry:
    """One model or run of the report: its evaluation, its training log, or both."""

    name: str
    eval_dir: Path | None = None
    metrics: dict | None = None
    run_dir: Path | None = None
    steps: list[dict] = field(default_factory=list)
    reference_model: bool | None = None


@dataclass
class Report:
    html_path: Path
    markdown_path: Path
    markdown: str


# ----------------------------------------------------------------------------- loading
def load_entry(path: Path) -> Entry:
    """An eval folder (a run's own ``RUN/eval`` brings its run along) or a run (its eval is ``RUN/eval``).
    Other eval folders inside a run (e.g. ``RUN/eval-start``) stand alone, under their own name."""
    if (path / METRICS).is_file():
        own = path.name == "eval" and (path.parent / "metrics.jsonl").is_file()
        eval_dir, run_dir = path, path.parent if own else None
    elif (path / "metrics.jsonl").is_file():
        run_dir, eval_dir = path, path / "eval" if (path / "eval" / METRICS).is_file() else None
    else:
        raise FadtqError(f"{path}: neither an eval folder ({METRICS}) nor a training run (metrics.jsonl)")
    metrics = _read_metrics(eval_dir / METRICS) if eval_dir else None
    entry = Entry(name=run_dir.name if run_dir else metrics.get("name") or path.name, eval_dir=eval_dir, metrics=metrics)
    if run_dir:
        entry.run_dir = run_dir
        entry.steps = [row for _, row in read_jsonl(run_dir / "metrics.jsonl")]
        metadata = run_dir / "metadata.json"
        entry.reference_model = read_json(metadata).get("reference_model") if metadata.is_file() else None
    return entry


def _read_metrics(path: Path) -> dict:
    metrics = read_json(path)
    missing = [key for key in METRIC_KEYS if key not in metrics]
    if missing:
        raise FadtqError(f"{path}: no {missing[0]!r}; expected a {METRICS} written by fadtq eval")
    return metrics


def load_entries(dirs: list[Path]) -> list[Entry]:
    """Entries in the order given; a repeated name gets a ``#2``, ``#3`` suffix."""
    entries = [load_entry(d) for d in dirs]
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry.name] = seen.get(entry.name, 0) + 1
        if seen[entry.name] > 1:
            entry.name = f"{entry.name} #{seen[entry.name]}"
    return entries


# ----------------------------------------------------------------------------- tables as data
def pct(value: float | None) -> str:
    """A share as a percentage with two decimals; -0.00 (the Balance Score of a single option is
    -log(1 + eps) / log 3, a hair below zero) is shown as 0.00."""
    if value is None:
        return "–"
    shown = round(100 * value, 2)
    return f"{shown if shown != 0 else 0.0:.2f}"


def pretty(category: str) -> str:
    return category.replace("_", " ").title()


def table2(evaluated: list[Entry]) -> tuple[list[str], list[list[float | None]], list[str]]:
    """Header, values (fractions) and column kinds (``acc``/``bs``) of Table 2, one row per entry."""
    categories = category_order(sorted({c for e in evaluated for c in e.metrics["categories"]}))
    header, kinds = ["Model"], []
    for category in categories:
        header += [f"{pretty(category)} Acc.", f"{pretty(category)} BS"]
        kinds += ["acc", "bs"]
    header += ["Overall Acc.", "Overall BS", "Category-mean Acc."]
    kinds += ["acc", "bs", "acc"]
    rows = []
    for entry in evaluated:
        m = entry.metrics
        row: list[float | None] = []
        for category in categories:
            cat = m["categories"].get(category)
            row += [cat["accuracy"], cat["balance_score"]] if cat else [None, None]
        rows.append(row + [m["accuracy"], m["balance_score"], m["accuracy_category_mean"]])
    return header, rows, kinds


def ranks(rows: list[list[float | None]]) -> list[list[int]]:
    """1 for the best value of each column (ties share it), 2 for the second best, 0 otherwise.

    One row gets no marks, and two rows no second best (it would just mark the worse one).
    """
    marks = [[0] * len(row) for row in rows]
    if len(rows) < 2:
        return marks
    marked = 1 if len(rows) == 2 else 2
    for col in range(len(rows[0])):
        distinct = sorted({row[col] for row in rows if row[col] is not None}, reverse=True)[:marked]
        for i, row in enumerate(rows):
            if row[col] in distinct:
                marks[i][col] = distinct.index(row[col]) + 1
    return marks


def table3(evaluated: list[Entry], baseline: Entry) -> tuple[list[str], list[list[str]]]:
    """The paper's Table 3: method, +Ref, accuracy, gain over the baseline, mean reasoning length."""
    header = ["Method", "+Ref", "Accuracy", "Accuracy Gain", "Avg. Length (words)", "Avg. Length (tokens)"]
    rows = []
    for entry in evaluated:
        m = entry.metrics
        gain = "baseline" if entry is baseline else f"{100 * (m['accuracy'] - baseline.metrics['accuracy']):+.2f}"
        ref = {True: "✓", False: "✗", None: ""}[entry.reference_model]
        rows.append([entry.name, ref, pct(m["accuracy"]), gain, _length(m["reasoning_words_mean"]),
                     _length(m["reasoning_tokens_mean"])])
    return header, rows


def _length(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.2f}"


def diagnostics(evaluated: list[Entry]) -> tuple[list[str], list[list[str]]]:
    header = ["Model", "N", "Format", "Unparsed", "Macro-F1", *(f"P/R {c}" for c in CLASS_NAMES)]
    rows = []
    for entry in evaluated:
        m = entry.metrics
        per = [f"{pct(m['per_class'][c]['precision'])}/{pct(m['per_class'][c]['recall'])}" for c in CLASS_NAMES]
        rows.append([entry.name, m["n"], pct(m["format_rate"]), pct(m["unparsed_rate"]), pct(m["macro_f1"]), *per])
    return header, rows


def pick_baseline(evaluated: list[Entry], name: str | None) -> Entry:
    if name is None:
        return evaluated[0]
    for entry in evaluated:
        if entry.name == name:
            return entry
    raise FadtqError(f"--baseline {name}: no such entry; known: {', '.join(e.name for e in evaluated)}")


# ----------------------------------------------------------------------------- Markdown
def _md_cell(value: float | None, rank: int, kind: str) -> str:
    text = pct(value)
    if rank == 1:
        return f"**{text}**"
    return f"*{text}*" if rank == 2 and kind == "acc" else text


def table2_cells(evaluated: list[Entry], cell) -> tuple[list[str], list[list[str]]]:
    """Table 2's header and, per entry, its name and cells, each drawn by ``cell(value, rank, kind)``."""
    header, rows, kinds = table2(evaluated)
    body = [[e.name] + [cell(v, r, k) for v, r, k in zip(row, mark, kinds)]
            for e, row, mark in zip(evaluated, rows, ranks(rows))]
    return header, body


def table2_markdown(evaluated: list[Entry]) -> str:
    return format_table(*table2_cells(evaluated, _md_cell), markdown=True)


def metrics_markdown(metrics_list: list[dict], baseline: str | None = None) -> str:
    """Table 2 (and Table 3 for several entries) and the diagnostics, as Markdown."""
    return _markdown([Entry(name=m["name"], metrics=m) for m in metrics_list], baseline)


def _markdown(evaluated: list[Entry], baseline: str | None) -> str:
    parts = ["## Table 2: accuracy (Acc.) and Balance Score (BS), %", table2_markdown(evaluated)]
    if len(evaluated) > 1:
        base = pick_baseline(evaluated, baseline)
        parts += [f"## Table 3: accuracy gain over {base.name}", format_table(*table3(evaluated, base), markdown=True)]
    parts += ["## Diagnostics, % (P/R: precision/recall per class)", format_table(*diagnostics(evaluated), markdown=True)]
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- HTML pieces
def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_table(header: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_cell(value: float | None, rank: int, kind: str) -> str:
    text = esc(pct(value))
    if kind == "bs":
        css = "bs low" if value is not None and value < LOW_BALANCE else "bs"
        text = f'<span class="{css}">{text}</span>'
    if rank == 1:
        return f"<b>{text}</b>"
    return f"<u>{text}</u>" if rank == 2 and kind == "acc" else text


def table2_html(evaluated: list[Entry]) -> str:
    """Table 2 with the paper's two header rows: a group per category (Acc., BS), then Overall."""
    header, cells = table2_cells(evaluated, _html_cell)
    groups = [h.rsplit(" ", 1)[0] for h in header[1:-1:2]]
    top = "".join(f'<th colspan="2">{esc(g)}</th>' for g in groups)
    sub = "".join(f"<th>{esc(h.rsplit(' ', 1)[1])}</th>" for h in header[1:-1])
    body = "".join(f"<tr><td>{esc(name)}</td>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                   for name, *row in cells)
    return (f'<table class="results"><thead><tr><th rowspan="2">Model</th>{top}'
            f'<th rowspan="2">Category-mean<br>Acc.</th></tr><tr>{sub}</tr></thead><tbody>{body}</tbody></table>')


def confusion_html(entry: Entry) -> str:
    """The 3x3 matrix (rows: true class) plus the unparsed column; cells shaded by row share."""
    confusion = entry.metrics["confusion"]
    rows = []
    for name, counts in zip(confusion["rows"], confusion["matrix"]):
        total = sum(counts) or 1
        cells = [f'<td style="background:rgba(31,119,180,{count / total:.3f}){";color:#fff" if count / total > 0.6 else ""}">'
                 f"{count}</td>" for count in counts]
        rows.append(f"<tr><th>{esc(name)}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>{esc(c)}</th>" for c in confusion["columns"])
    return (f'<figure class="confusion"><figcaption>{esc(entry.name)}</figcaption><table class="cm">'
            f"<thead><tr><th>true \\ predicted</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></figure>")


def curve_keys(runs: list[Entry]) -> list[str]:
    present = {k for e in runs for row in e.steps for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
    extra = sorted(k for k in present if k.startswith("reward/") and k not in CURVES)
    return [k for k in CURVES if k in present] + extra


def curves_html(runs: list[Entry]) -> str:
    """One chart per curve key, each run in the same colour in every chart."""
    colours = {e.name: COLOURS[i % len(COLOURS)] for i, e in enumerate(runs)}
    charts = []
    for key in curve_keys(runs):
        series = [(e.name, colours[e.name], [(float(row.get("step", i)), float(row[key]))
                                               for i, row in enumerate(e.steps)
                                               if isinstance(row.get(key), (int, float))]) for e in runs]
        y_range = (0, 1) if key in SHARE_CURVES else None
        charts.append(svg_markup(curve_chart(CURVES.get(key, key), [s for s in series if s[2]], y_range)))
    return f'<div class="charts">{"".join(charts)}</div>'


def png_data_uri(image) -> str:
    image = image.copy()
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gallery_examples(entry: Entry) -> list[dict]:
    """One record per true class: the first correct one in evaluation order, else the first."""
    records = [row for _, row in read_jsonl(entry.eval_dir / PREDICTIONS)]
    picked = []
    for name in CLASS_NAMES:
        of_class = [r for r in records if r["label"] == name]
        chosen = next((r for r in of_class if r["correct"]), of_class[0] if of_class else None)
        if chosen is not None:
            picked.append(chosen)
    return picked


def gallery_html(entry: Entry) -> str:
    """Figure 3: per class, the reference and test images, the prompt and the model's full output."""
    source = entry.metrics["source"]
    manifest = Path(source["benchmark"]) / f"{source['split']}.jsonl"
    if not manifest.is_file():
        raise FadtqError(f"{entry.eval_dir / METRICS}: source.benchmark: {manifest} not found (moved?)")
    dataset = PairDataset(manifest, max_side=None)
    rows = {row["id"]: row for row in dataset.rows}
    cards = []
    for record in gallery_examples(entry):
        row = rows[record["id"]]
        verdict = "correct" if record["correct"] else "wrong"
        output = record["completion"] if record["completion"] is not None else f"(prediction only) {record['prediction']}"
        cards.append(
            f'<article class="case"><h4>{esc(record["label"])} — predicted {esc(record["prediction"] or UNPARSED)} '
            f'<span class="{verdict}">({verdict})</span></h4><div class="pair">'
            f'<figure><img src="{png_data_uri(dataset.image(row["ref_image"]))}" alt="reference image {esc(row["id"])}">'
            f"<figcaption>reference</figcaption></figure>"
            f'<figure><img src="{png_data_uri(dataset.image(row["test_image"]))}" alt="test image {esc(row["id"])}">'
            f"<figcaption>test: {esc(row['id'])}</figcaption></figure></div>"
            f"<h5>prompt</h5><pre>{esc(dataset.question(row['category']))}</pre>"
            f"<h5>output</h5><pre>{esc(output)}</pre></article>")
    return f'<h3>{esc(entry.name)}</h3><div class="gallery">{"".join(cards)}</div>'


# ----------------------------------------------------------------------------- the page
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1240px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3}
.bs{color:#777}.bs.low{color:#bbb}.note{color:#555;font-size:13px}
.cms{display:flex;flex-wrap:wrap;gap:18px}.confusion{margin:0}.confusion figcaption{font-weight:600;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:10px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.case{border:1px solid #ddd;border-radius:6px;padding:10px}.case h4{margin:0 0 6px}.case h5{margin:8px 0 2px}
.pair{display:flex;gap:8px}.pair figure{margin:0}.pair img{width:160px;image-rendering:auto;border:1px solid #ccc}
.pair figcaption{font-size:11px;color:#555;word-break:break-all;max-width:160px}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:6px;font-size:12px;margin:0}
.correct{color:#2a7a2a}.wrong{color:#b22}
"""


def render_html(entries: list[Entry], baseline: str | None) -> str:
    evaluated = [e for e in entries if e.metrics]
    runs = [e for e in entries if e.steps]
    sections = ["<h1>FAD-TQ evaluation report</h1>",
                f'<p class="note">{len(evaluated)} evaluated, {len(runs)} training runs. Accuracy is pooled over '
                "all pairs (category mean in the last column); Balance Score = H(p)/log 3 over the parseable "
                "answers; unparseable answers count as wrong.</p>"]
    if evaluated:
        sections += ["<h2>Accuracy and Balance Score (Table 2 layout), %</h2>", table2_html(evaluated)]
        if len(evaluated) > 1:
            base = pick_baseline(evaluated, baseline)
            header, rows = table3(evaluated, base)
            sections += [f"<h2>Training strategies (Table 3 layout): gain over {esc(base.name)}</h2>",
                         _html_table(header, [[esc(c) for c in row] for row in rows])]
        header, rows = diagnostics(evaluated)
        sections += ["<h2>Diagnostics, % (P/R: precision/recall per class)</h2>",
                     _html_table(header, [[esc(c) for c in row] for row in rows]),
                     "<h2>Confusion matrices</h2>", f'<div class="cms">{"".join(map(confusion_html, evaluated))}</div>']
    if runs:
        sections += ["<h2>Training curves</h2>", curves_html(runs)]
    if evaluated:
        sections += ["<h2>Examples per class (Figure 3 layout)</h2>", *map(gallery_html, evaluated)]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>FAD-TQ report</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f"<body>{''.join(sections)}</body></html>\n")


def build_report(dirs: list[Path], out_html: Path, baseline: str | None = None) -> Report:
    """Write ``out_html`` and the Markdown tables to ``out_html`` with suffix ``.md``."""
    if not dirs:
        raise FadtqError("report: give at least one eval folder or training run")
    if out_html.suffix.lower() not in (".html", ".htm"):
        raise FadtqError(f"--out {out_html}: expected an .html file name (the Markdown tables go next to it as .md)")
    check_output_file(out_html, "--out")
    check_output_file(out_html.with_suffix(".md"), "--out")
    entries = load_entries(dirs)
    evaluated = [e for e in entries if e.metrics]
    markdown = _markdown(evaluated, baseline) if evaluated else "No evaluations given: training curves only.\n"
    markdown_path = out_html.with_suffix(".md")
    atomic_write_text(out_html, render_html(entries, baseline))
    atomic_write_text(markdown_path, "# FAD-TQ evaluation report\n\n" + markdown)
    return Report(html_path=out_html, markdown_path=markdown_path, markdown=markdown)
