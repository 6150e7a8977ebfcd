"""Prediction records: built from a completion or a bare answer, kept in ``predictions.jsonl``.

One record per benchmark pair: ``id, category, label, completion, prediction, correct,
format_ok, reasoning_words, reasoning_tokens`` (plus ``completion_tokens`` and ``finished`` when
the completion was generated here). ``completion`` is ``null`` for a bare prediction, and so are
the fields derived from it.

``predictions.jsonl`` is appended to batch by batch and flushed, so an interrupted evaluation
keeps what it finished; a process killed mid-write leaves at most one partial last line, which
:func:`load_resumable` drops.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

from fadtq.answer import extract_answer, format_ok, parse_class, think_text
from fadtq.errors import FadtqError
from fadtq.evaluation.metrics import compute_metrics
from fadtq.files import atomic_write_json, drop_partial_last_line, listed, read_jsonl

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
SHOWN_IDS = 3


def reasoning_words(completion: str) -> int:
    return len((think_text(completion) or "").split())


def reasoning_tokens(completion: str, tokenizer) -> int | None:
    if tokenizer is None:
        return None
    return len(tokenizer(think_text(completion) or "", add_special_tokens=False)["input_ids"])


def from_completion(row: dict, completion: str, tokenizer=None, **extra: object) -> dict:
    """The record of a benchmark row answered with the full text ``completion``."""
    prediction = extract_answer(completion)
    return {
        "id": row["id"], "category": row["category"], "label": row["label"],
        "completion": completion, "prediction": prediction, "correct": prediction == row["label"],
        "format_ok": format_ok(completion), "reasoning_words": reasoning_words(completion),
        "reasoning_tokens": reasoning_tokens(completion, tokenizer), **extra,
    }


def from_prediction(row: dict, answer: str | None) -> dict:
    """The record of a benchmark row answered with a bare class name or option letter."""
    prediction = parse_class(answer) if answer is not None else None
    return {
        "id": row["id"], "category": row["category"], "label": row["label"],
        "completion": None, "prediction": prediction, "correct": prediction == row["label"],
        "format_ok": None, "reasoning_words": None, "reasoning_tokens": None,
    }


def load_resumable(path: Path) -> list[dict]:
    """Rows already in ``path``; a partial last line (no newline yet) is removed from the file."""
    if not path.is_file():
        return []
    drop_partial_last_line(path)
    return [row for _, row in read_jsonl(path)]


def read_records(eval_dir: Path) -> list[dict]:
    """The records of an evaluation folder's ``predictions.jsonl``, in order."""
    return [row for _, row in read_jsonl(Path(eval_dir) / PREDICTIONS)]


def correct_by_id(records: Sequence[dict]) -> dict[str, int]:
    """Pair id -> 1 where the record's answer is right, else 0 (a bootstrap's per-pair scores)."""
    return {record["id"]: int(record["correct"]) for record in records}


def append_rows(handle, rows: Sequence[dict]) -> None:
    handle.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    handle.flush()


def _few(ids: Sequence[str]) -> str:
    return listed([repr(i) for i in ids], SHOWN_IDS)


def import_predictions(path: Path, rows: Sequence[dict], tokenizer=None) -> list[dict]:
    """Records for ``rows`` from a file of ``{"id", "completion"}`` or ``{"id", "prediction"}`` rows.

    Every row must name a benchmark id, once, and every benchmark id must be answered.
    """
    by_id = {row["id"]: row for row in rows}
    records: dict[str, dict] = {}
    unknown: list[str] = []
    for number, line in read_jsonl(path):
        where = f"{path}:{number}"
        pair_id = line.get("id")
        if not isinstance(pair_id, str):
            raise FadtqError(f"{where}: field 'id': expected a string, got {pair_id!r}")
        if pair_id in records:
            raise FadtqError(f"{where}: id {pair_id!r} answered twice")
        if pair_id not in by_id:
            unknown.append(f"{pair_id} (line {number})")
            continue
        records[pair_id] = _record_from_line(line, by_id[pair_id], where, tokenizer)
    if unknown:
        raise FadtqError(f"{path}: {len(unknown)} ids not in the benchmark split: {_few(unknown)}")
    missing = [pair_id for pair_id in by_id if pair_id not in records]
    if missing:
        raise FadtqError(f"{path}: {len(missing)} benchmark ids have no prediction: {_few(missing)}")
    return [records[row["id"]] for row in rows]


def _record_from_line(line: dict, row: dict, where: str, tokenizer) -> dict:
    has_completion, has_prediction = "completion" in line, "prediction" in line
    if has_completion == has_prediction:
        raise FadtqError(f"{where}: give exactly one of 'completion' (full output) or 'prediction' (class name)")
    if has_completion:
        if not isinstance(line["completion"], str):
            raise FadtqError(f"{where}: field 'completion': expected a string, got {line['completion']!r}")
        return from_completion(row, line["completion"], tokenizer)
    if line["prediction"] is not None and not isinstance(line["prediction"], str):
        raise FadtqError(f"{where}: field 'prediction': expected a class name, letter or null, got {line['prediction']!r}")
    return from_prediction(row, line["prediction"])


def round_robin(rows: Sequence[dict], group: Callable[[dict], Hashable]) -> list[dict]:
    """``rows`` taken one group at a time (groups and rows in their first order), so that any
    prefix covers every group evenly."""
    groups: dict[Hashable, list[dict]] = defaultdict(list)
    for row in rows:
        groups[group(row)].append(row)
    return [g[i] for i in range(max(map(len, groups.values()), default=0)) for g in groups.values() if i < len(g)]


def select_rows(rows: Sequence[dict], limit: int | None) -> list[dict]:
    """Rows in evaluation order: round-robin over (category, label) groups in manifest order.

    So the first ``limit`` pairs are a stratified subset, and a partial evaluation covers every
    group evenly; without a limit every row is kept.
    """
    ordered = round_robin(rows, lambda row: (row["category"], row["label"]))
    return ordered if limit is None else ordered[:limit]


def write_metrics(out_dir: Path, records: Sequence[dict], name: str, source: dict, **extra: object) -> dict:
    """``metrics.json`` (atomic) for ``records``: the metrics plus the evaluation's name and source
    (and ``extra``: a server's request counts)."""
    metrics = {"name": name, "source": source, **compute_metrics(records), **extra}
    atomic_write_json(out_dir / METRICS, metrics)
    return metrics
