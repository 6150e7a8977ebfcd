"""MMAD's answers and its summary: accuracy per source dataset and per question type, two ways.

Decisions, stated once:

* A reply is read by the evaluation's **protocol**: ``fadtq`` (the project's strict reading,
  :func:`fadtq.answer.option_letter`: exactly one distinct letter, from ``<answer>`` when there is
  one; anything else is **unparsed**) or ``mmad`` (MMAD's reading,
  :func:`fadtq.evaluation.mmad_protocol.read_reply`: the last letter, else the option whose text
  is closest). A record keeps how its answer was read (``read``: ``letter``, ``option text`` or
  None); the replies not read as a letter are counted and shown (``unread``).
* Cells are (source dataset, question type), with "Object Structure" and "Object Details"
  merged into "Object Analysis" as MMAD's summary does. Datasets keep the order they first
  appear in, types MMAD's column order.
* **MMAD's convention** (``mmad_convention``; ``helper/summary.py``, which made MMAD's published
  tables): an answer that is not a letter is dropped; every dataset has every type that any
  dataset has, a missing cell counting 0 in the dataset's average; Anomaly Detection scores the
  mean of the accuracies on normal images (a ``good`` folder) and on anomalous ones, a missing
  half counting 0. summary.py removes dropped answers from the list it is iterating over, so it
  also skips the answer after each dropped one; here none is skipped.
* **Present cells** (the top-level ``score``, ``datasets`` and ``types``; the project's view):
  nothing is dropped (an unparsed answer is wrong), only the cells with questions are averaged,
  and Anomaly Detection is the mean over the halves present.
* In both, a dataset's score is the mean of its cells' scores (MMAD's "Average" column), a
  type's the mean over datasets (its "Average" row), the overall score the mean of the datasets'.
  The pooled accuracy over all questions is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence

from fadtq import formulas
from fadtq.answer import format_ok, option_letter
from fadtq.data.mmad_file import LETTERS, SUMMARY_TYPES, summary_type
from fadtq.evaluation.mmad_protocol import READ_LETTER, READ_OPTION_TEXT, read_reply
from fadtq.evaluation.predictions import reasoning_tokens, reasoning_words
from fadtq.table import format_table

METRICS = "mmad_metrics.json"
PROTOCOLS = ("mmad", "fadtq")
DETECTION = "Anomaly Detection"
UNREAD_WARNING = 0.2  # warn when more than this share of replies is not read as a letter
EXAMPLES = 3


def mmad_record(row: dict, completion: str, tokenizer=None, *, protocol: str = "fadtq", **extra: object) -> dict:
    """The record of one MMAD question answered with the full text ``completion``, read by ``protocol``."""
    if protocol == "mmad":
        prediction, read = read_reply(completion, row["options"])
    else:
        prediction = option_letter(completion)
        read = READ_LETTER if prediction is not None else None
    return {
        **_identity(row), "completion": completion, "prediction": prediction, "read": read,
        "correct": prediction == row["answer"], "format_ok": format_ok(completion),
        "reasoning_words": reasoning_words(completion), "reasoning_tokens": reasoning_tokens(completion, tokenizer),
        **extra,
    }


def answer_record(row: dict, gpt_answer: str) -> dict:
    """The record of an answer MMAD's scripts wrote (``gpt_answer``: the letter they read, else
    what they kept of the reply)."""
    prediction = gpt_answer if gpt_answer in LETTERS else None
    return {**_identity(row), "completion": None, "gpt_answer": gpt_answer, "prediction": prediction,
            "read": READ_LETTER if prediction else None, "correct": prediction == row["answer"]}


def _identity(row: dict) -> dict:
    return {key: row[key] for key in ("id", "image", "dataset", "type", "normal", "answer")}


def _counts(records: Sequence[dict]) -> dict:
    correct = sum(r["correct"] for r in records)
    return {"n": len(records), "correct": correct, "unparsed": sum(r["prediction"] is None for r in records),
            "accuracy": correct / len(records) if records else None}


def _cell(records: Sequence[dict], question_type: str, zero_fill: bool) -> dict:
    """A cell's counts and score; ``zero_fill``: an empty cell or Anomaly Detection half counts 0."""
    cell = _counts(records)
    parts = [cell["accuracy"]]
    if question_type == DETECTION:
        halves = {"normal": _counts([r for r in records if r["normal"]])["accuracy"],
                  "anomalous": _counts([r for r in records if not r["normal"]])["accuracy"]}
        cell.update({f"{name}_accuracy": value for name, value in halves.items()})
        parts = list(halves.values())
    present = [0.0 if part is None else part for part in parts] if zero_fill else [p for p in parts if p is not None]
    cell["score"] = formulas.macro_mean(present)
    return cell


def _first_order(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def type_order(types: Sequence[str]) -> list[str]:
    known = [t for t in SUMMARY_TYPES if t in types]
    return known + sorted(set(types) - set(known))


def _view(records: Sequence[dict], datasets: list[str], types: list[str], zero_fill: bool) -> dict:
    """Scores per dataset and type of ``records`` (see the module's decisions)."""
    table = {}
    for dataset in datasets:
        mine = [r for r in records if r["dataset"] == dataset]
        groups = {t: [r for r in mine if summary_type(r["type"]) == t] for t in types}
        cells = {t: _cell(group, t, zero_fill) for t, group in groups.items() if group or zero_fill}
        table[dataset] = {**_counts(mine), "types": cells,
                          "score": formulas.macro_mean([c["score"] for c in cells.values()])}
    by_type = {t: {**_counts([r for r in records if summary_type(r["type"]) == t]),
                   "score": formulas.macro_mean([d["types"][t]["score"] for d in table.values() if t in d["types"]])}
               for t in types}
    return {"score": formulas.macro_mean([d["score"] for d in table.values()]), "datasets": table, "types": by_type}


def mmad_metrics(records: Sequence[dict]) -> dict:
    """Both views of MMAD answer records, with the pooled counts and the replies not read as a letter."""
    if not records:
        raise ValueError("metrics of no answers")
    datasets = _first_order([r["dataset"] for r in records])
    types = type_order(sorted({summary_type(r["type"]) for r in records}))
    kept = [r for r in records if r["prediction"] is not None]
    unread = [r for r in records if r["read"] != READ_LETTER]
    return {
        **_counts(records), "read_by_option_text": sum(r["read"] == READ_OPTION_TEXT for r in records),
        "unread": len(unread),
        "unread_examples": [{"id": r["id"], "reply": _reply(r)} for r in unread[:EXAMPLES]],
        **_view(records, datasets, types, zero_fill=False),
        "mmad_convention": {"dropped": len(records) - len(kept), **_view(kept, datasets, types, zero_fill=True)},
    }


def _reply(record: dict) -> str:
    return record["completion"] if record["completion"] is not None else record["gpt_answer"]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def mmad_table(view: dict) -> str:
    """MMAD's summary table of one view: a row per source dataset and an average row, a column per type."""
    types = list(view["types"])
    rows = [[name, *(_percent(d["types"][t]["score"]) if t in d["types"] else "-" for t in types),
             _percent(d["score"])] for name, d in view["datasets"].items()]
    rows.append(["Average", *(_percent(view["types"][t]["score"]) for t in types), _percent(view["score"])])
    return format_table(["dataset", *types, "Average"], rows, markdown=True)


def unread_warning(metrics: dict) -> str | None:
    """One line when more than ``UNREAD_WARNING`` of the replies were not read as a letter, with examples."""
    if metrics["unread"] <= UNREAD_WARNING * metrics["n"]:
        return None
    examples = "; ".join(f"{e['id']}: {_short(e['reply'])!r}" for e in metrics["unread_examples"])
    how = (f"{metrics['read_by_option_text']} matched to an option's text, " if metrics["read_by_option_text"]
           else "") + f"{metrics['unparsed']} unparsed"
    return (f"warning: {metrics['unread']} of {metrics['n']} replies ({100 * metrics['unread'] / metrics['n']:.0f}%) "
            f"were not read as one option letter ({how}), e.g. {examples}")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
