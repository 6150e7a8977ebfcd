"""Checkpoints carry a manifest of their files' sizes and hashes: a damaged one is found before any
model loads, and ``--resume`` falls back to the newest intact one with one warning line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fadtq.errors import FadtqError
from fadtq.training.checkpoint import MANIFEST_FILE, checkpoint_problem, resumable_checkpoint, write_manifest

FILES = {"state.json": b'{"steps_done": 2}', "policy/model.safetensors": b"weights" * 50,
         "deepspeed/state/mp_rank_00_model_states.pt": b"engine" * 40, "rng-rank0.pt": b"rng" * 30}


def fake_checkpoint(run_dir: Path, steps: int) -> Path:
    folder = run_dir / "checkpoints" / f"step-{steps:06d}"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data.replace(b"2", str(steps).encode()) if name == "state.json" else data)
    write_manifest(folder)
    return folder


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


DAMAGES = {
    "state.json truncated": (lambda c: truncate(c / "state.json"), "state.json has"),
    "state.json not an object": (lambda c: (c / "state.json").write_text("[4]"), "state.json has"),
    "engine state half-written": (lambda c: truncate(c / "deepspeed/state/mp_rank_00_model_states.pt"),
                                  "mp_rank_00_model_states.pt has"),
    "RNG state half-written": (lambda c: truncate(c / "rng-rank0.pt"), "rng-rank0.pt has"),
    "weights garbled, same size": (lambda c: (c / "policy/model.safetensors").write_bytes(b"x" * 350),
                                   "model.safetensors differs from its manifest"),
    "manifest missing": (lambda c: (c / MANIFEST_FILE).unlink(), "no manifest.json"),
}


def test_an_intact_checkpoint_has_no_problem(tmp_path):
    folder = fake_checkpoint(tmp_path, 2)
    assert checkpoint_problem(folder) is None
    assert set(json.loads((folder / MANIFEST_FILE).read_text())) == set(FILES)


@pytest.mark.parametrize("damage", DAMAGES)
def test_resume_falls_back_past_a_damaged_checkpoint_with_one_line(tmp_path, damage):
    older, newer = fake_checkpoint(tmp_path, 2), fake_checkpoint(tmp_path, 4)
    spoil, words = DAMAGES[damage]
    spoil(newer)
    warnings: list[str] = []
    assert resumable_checkpoint(tmp_path, warnings.append) == older
    assert len(warnings) == 1 and str(newer) in warnings[0] and words in warnings[0]


def test_no_intact_checkpoint_is_one_error_line(tmp_path):
    for steps in (2, 4):
        truncate(fake_checkpoint(tmp_path, steps) / "rng-rank0.pt")
    with pytest.raises(FadtqError, match=r"^--resume .*: no intact checkpoint \(2 damaged: step-000002, step-000004\)$"):
        resumable_checkpoint(tmp_path, lambda line: None)
    with pytest.raises(FadtqError, match="no complete checkpoint"):
        resumable_checkpoint(tmp_path / "elsewhere", lambda line: None)
