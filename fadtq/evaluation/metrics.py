"""The paper's evaluation metrics (section 3.1) and the diagnostics the report shows next to them.

Decisions, stated once:

* **Unparseable answers** (no single ``<answer>`` block, or text naming no class or several) are
  *wrong* for accuracy, recall and macro-F1: they stay in N. They are *excluded* from the
  Balance Score's distribution, which is over the three options the model actually chose; an
  unparseable answer is not an option. Their count and rate are reported next to it
  (``unparsed``) and they fill the fourth column of the confusion matrix. A category with no
  parseable answer at all has no Balance Score (``null``).
* **Overall accuracy** is pooled over all pairs, as in the paper: its 55.89 is 541 / 968 correct
  pairs, while the mean of its five category accuracies is 56.89. Both are reported
  (``accuracy`` and ``accuracy_category_mean``). The overall Balance Score is that of the pooled
  distribution of chosen options.
* **Format compliance** is the share of completions that pass :func:`fadtq.answer.format_ok`,
  over the rows that have a completion (a predictions file may give bare predictions).
* **Reasoning length** is measured on the ``<think>`` block (0 without one), in whitespace-separated
  words and in tokens of the policy's tokenizer (``add_special_tokens=False``); the mean is over
  all rows. Tokens need a tokenizer; without one they are ``null``.
* **Precision** of a class is 0 when the class is never predicted; F1 is 0 when P + R = 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from fadtq import formulas
from fadtq.prompts import CLASS_NAMES

UNPARSED = "unparsed"
# The paper's Table 2 column order; other categories follow alphabetically.
TABLE2_ORDER = ("breakfast_box", "splicing_connectors", "juice_bottle", "screw_bag", "pushpins")


def category_order(categories: Sequence[str]) -> list[str]:
    known = [c for c in TABLE2_ORDER if c in categories]
    return known + sorted(set(categories) - set(known))


def prediction_counts(records: Sequence[dict]) -> dict[str, int]:
    counts = Counter(r["prediction"] if r["prediction"] in CLASS_NAMES else UNPARSED for r in records)
    return {name: counts.get(name, 0) for name in (*CLASS_NAMES, UNPARSED)}


def balance(records: Sequence[dict]) -> float | None:
    """Balance Score of the parseable predictions; ``None`` when there are none."""
    counts = prediction_counts(records)
    chosen = [counts[name] for name in CLASS_NAMES]
    return formulas.balance_score(chosen) if sum(chosen) else None


def group_metrics(records: Sequence[dict]) -> dict:
    """Accuracy, Balance Score and option counts of one group of predictions (a category, or all)."""
    counts = prediction_counts(records)
    return {
        "n": len(records),
        "accuracy": formulas.accuracy([r["prediction"] == r["label"] for r in records]),
        "balance_score": balance(records),
        "prediction_counts": counts,
        "unparsed": counts[UNPARSED],
    }


def confusion_matrix(records: Sequence[dict]) -> list[list[int]]:
    """Rows: true class (good, structural, logical); columns: predicted class, then unparsed."""
    columns = (*CLASS_NAMES, UNPARSED)
    matrix = [[0] * len(columns) for _ in CLASS_NAMES]
    for record in records:
        predicted = record["prediction"] if record["prediction"] in CLASS_NAMES else UNPARSED
        matrix[CLASS_NAMES.index(record["label"])][columns.index(predicted)] += 1
    return matrix


def per_class(matrix: list[list[int]]) -> dict[str, dict]:
    """Precision, recall and F1 per class from the confusion matrix (unparsed counts as a miss)."""
    out = {}
    for i, name in enumerate(CLASS_NAMES):
        true_positive = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        actual = sum(matrix[i])
        precision, recall, f1 = formulas.precision_recall_f1(true_positive, predicted, actual)
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": actual, "predicted": predicted}
    return out


def mean_of_known(values: Sequence[float | None]) -> float | None:
    """Mean over all rows when every row has the value, else ``None`` (never a mean of a subset)."""
    if not values or any(v is None for v in values):
        return None
    return float(sum(values) / len(values))


def format_rate(records: Sequence[dict]) -> float | None:
    known = [r["format_ok"] for r in records if r.get("format_ok") is not None]
    return formulas.accuracy(known) if known else None


def compute_metrics(records: Sequence[dict]) -> dict:
    """All metrics of a list of prediction records (``category``, ``label``, ``prediction``, ...)."""
    if not records:
        raise ValueError("metrics of no predictions")
    categories = category_order(sorted({r["category"] for r in records}))
    by_category = {c: group_metrics([r for r in records if r["category"] == c]) for c in categories}
    overall = group_metrics(records)
    matrix = confusion_matrix(records)
    classes = per_class(matrix)
    return {
        "n": overall["n"],
        "accuracy": overall["accuracy"],
        "accuracy_category_mean": formulas.macro_mean([m["accuracy"] for m in by_category.values()]),
        "balance_score": overall["balance_score"],
        "prediction_counts": overall["prediction_counts"],
        "unparsed": overall["unparsed"],
        "unparsed_rate": overall["unparsed"] / overall["n"],
        "format_rate": format_rate(records),
        "reasoning_words_mean": mean_of_known([r.get("reasoning_words") for r in records]),
        "reasoning_tokens_mean": mean_of_known([r.get("reasoning_tokens") for r in records]),
        "categories": by_category,
        "confusion": {"rows": list(CLASS_NAMES), "columns": [*CLASS_NAMES, UNPARSED], "matrix": matrix},
        "per_class": classes,
        "macro_f1": formulas.macro_mean([m["f1"] for m in classes.values()]),
    }
