"""MMAD's answers and its summary: accuracy per source dataset and per question type.

Decisions, stated once:

* The answer is the one option letter the reply gives (:func:`fadtq.answer.option_letter`). A
  reply with no letter or two different ones is **unparsed**: wrong, kept in N, and counted.
  (MMAD's scripts drop such replies, after matching some of them to the closest option's text;
  here nothing is guessed and nothing dropped.)
* Cells are (source dataset, question type), with "Object Structure" and "Object Details"
  merged into "Object Analysis" as MMAD's summary does. A cell's **score** is its accuracy,
  except Anomaly Detection's: the mean of its accuracy on normal images (a ``good`` folder) and
  on anomalous ones, as MMAD computes it (over the groups present: MMAD counts an absent group
  as 0).
* A dataset's score is the mean of its cells' scores (MMAD's "Average" column); a type's is the
  mean over datasets (MMAD's "Average" row); the overall score is the mean of the datasets'.
  The pooled accuracy over all questions is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence

from fadtq import formulas
from fadtq.answer import format_ok, option_letter
from fadtq.data.mmad import SUMMARY_TYPES, summary_type
from fadtq.evaluation.predictions import reasoning_tokens, reasoning_words
from fadtq.table import format_table

METRICS = "mmad_metrics.json"


def mmad_record(row: dict, completion: str, tokenizer=None, **extra: object) -> dict:
    """The record of one MMAD question answered with the full text ``completion``."""
    prediction = option_letter(completion)
    return {
        "id": row["id"], "image": row["image"], "dataset": row["dataset"], "type": row["type"],
        "normal": row["normal"], "answer": row["answer"], "completion": completion, "prediction": prediction,
        "correct": prediction == row["answer"], "format_ok": format_ok(completion),
        "reasoning_words": reasoning_words(completion), "reasoning_tokens": reasoning_tokens(completion, tokenizer),
        **extra,
    }


def _counts(records: Sequence[dict]) -> dict:
    correct = sum(r["correct"] for r in records)
    return {"n": len(records), "correct": correct, "unparsed": sum(r["prediction"] is None for r in records),
            "accuracy": correct / len(records)}


def _cell(records: Sequence[dict], question_type: str) -> dict:
    cell = _counts(records)
    cell["score"] = cell["accuracy"]
    if question_type == "Anomaly Detection":
        groups = {"normal": [r for r in records if r["normal"]], "anomalous": [r for r in records if not r["normal"]]}
        accuracies = {name: _counts(group)["accuracy"] for name, group in groups.items() if group}
        cell.update({f"{name}_accuracy": accuracies.get(name) for name in groups})
        cell["score"] = formulas.macro_mean(list(accuracies.values()))
    return cell


def type_order(types: Sequence[str]) -> list[str]:
    known = [t for t in SUMMARY_TYPES if t in types]
    return known + sorted(set(types) - set(known))


def mmad_metrics(records: Sequence[dict]) -> dict:
    """The summary of MMAD answer records (see the module's decisions)."""
    if not records:
        raise ValueError("metrics of no answers")
    types = type_order(sorted({summary_type(r["type"]) for r in records}))
    datasets = {}
    for dataset in sorted({r["dataset"] for r in records}):
        mine = [r for r in records if r["dataset"] == dataset]
        cells = {t: _cell(group, t) for t in types if (group := [r for r in mine if summary_type(r["type"]) == t])}
        datasets[dataset] = {**_counts(mine), "types": cells,
                             "score": formulas.macro_mean([c["score"] for c in cells.values()])}
    by_type = {}
    for t in types:
        scores = [d["types"][t]["score"] for d in datasets.values() if t in d["types"]]
        by_type[t] = {**_counts([r for r in records if summary_type(r["type"]) == t]),
                      "score": formulas.macro_mean(scores)}
    return {**_counts(records), "score": formulas.macro_mean([d["score"] for d in datasets.values()]),
            "datasets": datasets, "types": by_type}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def mmad_table(metrics: dict) -> str:
    """MMAD's summary table: a row per source dataset and an average row, a column per type."""
    types = list(metrics["types"])
    rows = [[name, *(_percent(d["types"][t]["score"]) if t in d["types"] else "-" for t in types),
             _percent(d["score"])] for name, d in metrics["datasets"].items()]
    rows.append(["Average", *(_percent(metrics["types"][t]["score"]) for t in types), _percent(metrics["score"])])
    return format_table(["dataset", *types, "Average"], rows, markdown=True)
