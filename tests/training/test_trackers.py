"""Experiment trackers (``output.loggers``): one run logs to TensorBoard, W&B (offline) and Trackio
(local) at once, and every scalar of ``metrics.jsonl``, the config and each step's sample table
(both images, the reasoning, the answer, the label, every reward term) are read back from each."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from trainer_testlib import SIGNAL_REWARD, ok, python_cmd, rows, run

from fadtq.errors import FadtqError
from fadtq.training.trackers import RunInfo, check_loggers, start_trackers

STEPS = 2


def wandb_records(path: Path):
    """The protobuf records of a W&B transaction log (LevelDB's log format after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data, position, block, chunks = path.read_bytes(), 7, 32768, []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = block - position % block
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        if left < 7 or kind == 0:  # a block's padding
            position += left
            continue
        payload, position = data[position + 7:position + 7 + length], position + 7 + length
        chunks = [payload] if kind in (1, 2) else [*chunks, payload]
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            yield record


@pytest.fixture(scope="module")
def tracked(train_env, model_args, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("trackers")
    env = {**train_env, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "TRACKIO_DIR": str(out / "trackio")}
    ok(run(python_cmd(*model_args, "--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--train.max_steps", str(STEPS),
                      "--output.loggers", "[tensorboard, wandb, trackio]", "--output.project", "fadtq-test",
                      "--output.samples_per_step", "2", "--output.dir", out, "--output.name", "run"), env))
    return out / "run", out / "trackio"


def test_wandb_holds_every_scalar_the_config_and_the_sample_tables(tracked):
    run_dir, _ = tracked
    metrics = rows(run_dir / "metrics.jsonl")
    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = list(wandb_records(log))
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [h["_step"] for h in history] == list(range(STEPS))
    for logged, row in zip(history, metrics):
        assert all(logged[key] == pytest.approx(value) for key, value in row.items() if key != "step" and value is not None)
    config = {item.key: json.loads(item.value_json) for r in records if r.WhichOneof("record_type") == "run"
              for item in r.run.config.update}
    assert config["train"]["max_steps"] == STEPS and config["output"]["loggers"] == ["tensorboard", "wandb", "trackio"]
    samples = rows(run_dir / "samples.jsonl")
    tables = [json.loads(p.read_text()) for p in sorted(log.parent.glob("files/media/table/samples_*.table.json"))]
    assert len(tables) == STEPS
    columns = tables[0]["columns"]
    assert columns[:7] == ["step", "id", "label", "reference", "test", "reasoning", "answer"]
    assert {"format", "accuracy", SIGNAL_REWARD, "total", "advantage"} <= set(columns)
    first = dict(zip(columns, tables[0]["data"][0]))
    assert first["reference"] == first["test"] == "Image"  # W&B keeps the images in the table's artifact
    assert (first["id"], first["label"], first["total"]) == (samples[0]["id"], samples[0]["label"],
                                                             pytest.approx(samples[0]["rewards"]["total"]))


def test_trackio_holds_every_scalar_the_config_and_the_sample_tables_with_their_images(tracked):
    run_dir, trackio_dir = tracked
    metrics = rows(run_dir / "metrics.jsonl")
    with sqlite3.connect(trackio_dir / "fadtq-test.db") as db:
        logged = [(step, json.loads(text)) for step, text in db.execute("SELECT step, metrics FROM metrics ORDER BY id")]
        config = json.loads(db.execute("SELECT config FROM configs WHERE run_name = 'run'").fetchone()[0])
    scalars = {step: values for step, values in logged if "samples" not in values}
    for row in metrics:
        assert all(scalars[row["step"]][k] == pytest.approx(v) for k, v in row.items() if k != "step" and v is not None)
    assert config["train"]["max_steps"] == STEPS
    tables = [values["samples"]["_value"] for _, values in logged if "samples" in values]
    assert len(tables) == STEPS and len(tables[0]) == 2
    sample = tables[0][0]
    assert {"reasoning", "answer", "label", "format", "total", "advantage"} <= sample.keys()
    for column in ("reference", "test"):
        assert sample[column]["_type"] == "trackio.image"
        assert (trackio_dir / "media" / sample[column]["file_path"]).stat().st_size > 0


def test_tensorboard_holds_the_scalars_and_the_samples(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = tracked
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    assert [e.value for e in events.Scalars("accuracy")] == pytest.approx([m["accuracy"] for m in rows(run_dir / "metrics.jsonl")])
    assert "samples/text_summary" in events.Tags()["tensors"]


def test_an_unknown_or_missing_logger_is_one_line(monkeypatch):
    from fadtq.run_config import load_run_config

    with pytest.raises(FadtqError, match=r"output\.loggers: expected one of tensorboard, wandb, trackio, got 'mlflow'"):
        load_run_config(None, {"output.loggers": "[mlflow]"})
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(FadtqError, match=r"output\.loggers: wandb needs the wandb package; install it with "
                                         r"pip install 'fadtq\[wandb\]'"):
        check_loggers(["tensorboard", "wandb"], "output.loggers")


def test_a_logger_that_cannot_start_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "nonsense")
    with pytest.raises(FadtqError, match=r"^output\.loggers: wandb could not start \(.*nonsense") as error:
        start_trackers(["tensorboard", "wandb"], RunInfo(tmp_path, "run", "project", {}))
    assert "\n" not in str(error.value)
