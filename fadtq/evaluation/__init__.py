"""Evaluation: predictions from a model or a file, the paper's metrics, and HTML/Markdown reports.

``evaluate_model`` and ``write_report`` are the entry points the main job calls; the command line
(``fadtq eval``, ``fadtq report``) wraps the same functions. Heavy imports (torch, transformers)
happen only when a model is evaluated.
"""

from __future__ import annotations

from pathlib import Path


def evaluate_model(model_path: str | Path, benchmark_dir: str | Path | None, out_dir: str | Path, *,
                   split: str = "test", batch_size: int = 8, max_new_tokens: int = 128,
                   limit: int | None = None, name: str | None = None) -> dict:
    """Greedy predictions of the model at ``model_path`` on a benchmark split; returns the metrics.

    Writes ``predictions.jsonl`` (resumable) and ``metrics.json`` in ``out_dir``. Without a
    benchmark the cached look-alike (``ensure_default_benchmark``) is used.
    """
    from fadtq.evaluation.runner import GenerationSettings, evaluate

    settings = GenerationSettings(batch_size=batch_size, max_new_tokens=max_new_tokens)
    return evaluate(model_path, benchmark_dir, out_dir, split=split, settings=settings, limit=limit, name=name)


def write_report(dirs: list[str | Path], out_html: str | Path, baseline: str | None = None) -> Path:
    """One self-contained HTML report (and ``report.md`` next to it) over eval folders and runs."""
    from fadtq.evaluation.report import build_report

    return build_report([Path(d) for d in dirs], Path(out_html), baseline=baseline).html_path
