"""Experiment trackers (``output.loggers``): TensorBoard by default, Weights & Biases and Trackio as
optional extras (``pip install 'fadtq[wandb]'``, ``'fadtq[trackio]'``), each imported only when named.

Every tracker gets every scalar the trainer logs (``metrics.jsonl``'s rows), the run's resolved
config once, and the step's sample rows as a table: both images, the reasoning, the answer, the
label, each reward term, the total and the advantage. Rank 0 alone logs. A tracker whose library
is missing is one line when the config loads (:func:`check_loggers`); one that cannot start (no
login, an unwritable folder) is one line before the first step.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fadtq.answer import extract_answer, think_text
from fadtq.errors import FadtqError


class Tracker(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def log_samples(self, step: int, samples: list[dict]) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class RunInfo:
    """What a tracker is started with: the run folder, its name, the project and the config."""

    run_dir: Path
    name: str
    project: str
    config: dict


def sample_columns(samples: list[dict]) -> list[str]:
    """The table's columns: the step's reward terms in order after the fixed ones."""
    terms = list(dict.fromkeys(term for s in samples for term in s["rewards"] if term != "total"))
    return ["step", "id", "label", "reference", "test", "reasoning", "answer", *terms, "total", "advantage"]


def sample_rows(step: int, samples: list[dict], image: Callable[[str | None], object]) -> list[list]:
    """One row per sample, ``image`` turning an image path into the tracker's image object."""
    terms = sample_columns(samples)[7:-2]
    return [[step, s["id"], s["label"], image(s.get("ref_image")), image(s.get("test_image")),
             think_text(s["completion"]) or "", extract_answer(s["completion"]) or "",
             *[s["rewards"].get(term) for term in terms], s["rewards"]["total"], s["advantage"]]
            for s in samples]


def _open_image(path: str | None):
    if not path:
        return None
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


class TensorBoardTracker:
    """Scalars to ``RUN/tensorboard``; the samples as a text table per step."""

    def __init__(self, info: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(info.run_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_samples(self, step: int, samples: list[dict]) -> None:
        columns = sample_columns(samples)
        lines = [" | ".join(columns), " | ".join("---" for _ in columns)]
        lines += [" | ".join(str(v).replace("|", "/").replace("\n", " ") for v in row)
                  for row in sample_rows(step, samples, lambda path: path or "")]
        self.writer.add_text("samples", "\n".join(lines), step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """A W&B run in ``RUN/wandb`` (``WANDB_MODE=offline`` keeps it there, for ``wandb sync`` later)."""

    def __init__(self, info: RunInfo) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=info.project, name=info.name, dir=str(info.run_dir), config=info.config,
                              reinit="create_new")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def log_samples(self, step: int, samples: list[dict]) -> None:
        image = lambda path: None if not path else self.wandb.Image(_open_image(path))  # noqa: E731
        table = self.wandb.Table(columns=sample_columns(samples), data=sample_rows(step, samples, image))
        self.run.log({"samples": table}, step=step)

    def close(self) -> None:
        self.run.finish()


class TrackioTracker:
    """A Trackio run, stored locally (``TRACKIO_DIR``) unless ``space_id`` names a Space."""

    def __init__(self, info: RunInfo) -> None:
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=info.project, name=info.name, config=info.config)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def log_samples(self, step: int, samples: list[dict]) -> None:
        image = lambda path: None if not path else self.trackio.Image(_open_image(path))  # noqa: E731
        rows = sample_rows(step, samples, image)
        self.run.log({"samples": self.trackio.Table(columns=sample_columns(samples), data=rows)}, step=step)

    def close(self) -> None:
        self.run.finish()


# name -> (tracker, the module it imports, the extra that installs it)
TRACKERS: dict[str, tuple[type, str, str]] = {
    "tensorboard": (TensorBoardTracker, "tensorboard", "train"),
    "wandb": (WandbTracker, "wandb", "wandb"),
    "trackio": (TrackioTracker, "trackio", "trackio"),
}


def check_loggers(names: list[str], key: str) -> None:
    """Each named tracker exists and its library is installed: one line otherwise."""
    for name in names:
        if name not in TRACKERS:
            raise FadtqError(f"{key}: {name!r} is not a logger; expected some of {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name][1:]
        if importlib.util.find_spec(module) is None:
            raise FadtqError(f"{key}: {name} needs the {module} package; install it with pip install 'fadtq[{extra}]'")


def start_trackers(names: list[str], info: RunInfo) -> list[Tracker]:
    """The named trackers, started; one that cannot start is one line naming it and why."""
    started = []
    for name in names:
        try:
            started.append(TRACKERS[name][0](info))
        except Exception as exc:  # noqa: BLE001 - whatever the tracker's library raised
            for tracker in started:
                tracker.close()
            detail = " ".join(str(exc).split())
            raise FadtqError(f"output.loggers: {name} could not start ({type(exc).__name__}: {detail})") from None
    return started
