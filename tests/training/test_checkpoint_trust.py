"""Checkpoints carry a manifest of their files' sizes and hashes: a damaged one is found before any
model loads, and ``--resume`` falls back to the newest intact one with one warning line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_testlib import CHECKPOINT_DAMAGES, truncate

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


def test_an_intact_checkpoint_has_no_problem(tmp_path):
    folder = fake_checkpoint(tmp_path, 2)
    assert checkpoint_problem(folder) is None
    assert set(json.loads((folder / MANIFEST_FILE).read_text())) == set(FILES)


@pytest.mark.parametrize("damage", CHECKPOINT_DAMAGES)
def test_resume_falls_back_past_a_damaged_checkpoint_with_one_line(tmp_path, damage):
    older, newer = fake_checkpoint(tmp_path, 2), fake_checkpoint(tmp_path, 4)
    spoil, words = CHECKPOINT_DAMAGES[damage]
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


def test_a_disk_too_small_for_the_kept_checkpoints_is_refused_before_training(tmp_path):
    from fadtq.training.checkpoint import check_disk_space

    check_disk_space(tmp_path, per_checkpoint=2**30, keep=2, free=3 * 2**30)  # fits: 2 kept + 1 being written
    with pytest.raises(FadtqError, match=r"^output.dir .*: 2.50 GiB free, but a checkpoint takes about 1.00 GiB and "
                                         r"2 are kept \(output.keep_checkpoints\) while one more is written: 3.00 GiB"):
        check_disk_space(tmp_path, per_checkpoint=2**30, keep=2, free=int(2.5 * 2**30))


def test_the_checkpoint_size_counts_weights_and_each_trained_weight_s_optimizer_state():
    import torch

    from fadtq.training.checkpoint import checkpoint_bytes

    model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 10))  # 2 x 110 parameters
    model[1].requires_grad_(False)
    assert checkpoint_bytes(model) == 220 * 4 + 110 * 12


class _FullDisk:
    """A DeepSpeed engine whose checkpoint write fails as a full disk does."""

    module = None

    def save_checkpoint(self, folder, **_):
        raise OSError(28, "No space left on device", f"{folder}/state/mp_rank_00_model_states.pt")


def test_a_full_disk_while_writing_is_one_line_with_the_partial_folder_removed(tmp_path):
    from types import SimpleNamespace

    from fadtq.training.checkpoint import save_checkpoint

    earlier = fake_checkpoint(tmp_path, 2)
    actor = SimpleNamespace(model=_FullDisk())
    strategy = SimpleNamespace(save_model=lambda actor, tokenizer, folder: Path(folder).mkdir(parents=True))
    processor = SimpleNamespace(tokenizer=None, save_pretrained=lambda folder: None)
    with pytest.raises(FadtqError) as error:
        save_checkpoint(tmp_path, 4, strategy, actor, processor, rank=0, keep=2, image_size=None)
    message = str(error.value)
    assert message.startswith("checkpoint step-000004 could not be written: ")
    assert "mp_rank_00_model_states.pt: No space left on device" in message
    assert f"--resume {tmp_path} from step-000002" in message
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002"]
    assert checkpoint_problem(earlier) is None
