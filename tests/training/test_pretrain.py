"""``fadtq pretrain`` and the pretrained policy the CPU default ships.

The shipped checkpoint's recipe reproduces: its first steps, run here from the same fresh model,
give the losses recorded in its ``recipe.json``, and its weights hash to the recorded sha256 (the
full rebuild is ``bench/pretrained_policy.py``). The embedded default resolves to it."""

from __future__ import annotations

import json
from itertools import islice

import pytest

from fadtq.cli import main
from fadtq.prompts import PromptLibrary
from fadtq.run_config import load_run_config
from fadtq.training.pretrain import (FIRST_LOSSES, RECIPE_FILE, PretrainRecipe, load_start, training_losses,
                                     verify_shipped, weights_sha256)
from fadtq.training.setup import SHIPPED_MODELS, pretrained_model_dir


def default_recipe() -> PretrainRecipe:
    cfg = load_run_config(None)
    return PretrainRecipe(size=cfg.model.size, steps=cfg.model.pretrain_steps, seed=cfg.model.pretrain_seed,
                          difficulty=cfg.data.synth_difficulty, image_size=cfg.data.image_size)


@pytest.fixture(scope="module")
def shipped():
    folder = SHIPPED_MODELS / default_recipe().folder_name()
    assert (folder / "config.json").is_file(), f"the CPU default's pretrained policy is not shipped in {folder}"
    return folder, json.loads((folder / RECIPE_FILE).read_text())


def test_the_cpu_default_resolves_to_the_shipped_checkpoint(shipped):
    folder, recipe = shipped
    assert pretrained_model_dir(load_run_config(None)) == folder
    assert weights_sha256(folder) == recipe["sha256"] and verify_shipped(folder) == folder
    assert recipe["recipe"] == vars(default_recipe())
    assert (folder / "model.safetensors").stat().st_size <= 10 * 2**20


def test_the_first_steps_of_the_recipe_reproduce(shipped, tmp_path):
    from fadtq.training.tiny_model import make_tiny_model

    _, recorded = shipped
    recipe = default_recipe()
    model, processor = load_start(make_tiny_model(tmp_path / "base", size=recipe.size, seed=recipe.seed))
    losses = list(islice(training_losses(model, processor, recipe, PromptLibrary()), FIRST_LOSSES))
    assert losses == pytest.approx(recorded["check"]["first_losses"], abs=1e-5)


def test_a_changed_checkpoint_is_refused(shipped, tmp_path):
    import shutil

    from fadtq.errors import FadtqError

    folder, _ = shipped
    copy = shutil.copytree(folder, tmp_path / "copy")
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(FadtqError, match="sha256 differs"):
        verify_shipped(copy)


def test_pretrain_command_trains_saves_and_checks(tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["pretrain", "--out", str(out), "--steps", "2", "--batch-size", "2", "--seed", "1"]) == 0
    report = json.loads(capsys.readouterr().out.split("pretrained model:")[0])
    assert (out / "model.safetensors").is_file() and len(report["first_losses"]) == 2
    assert 0 <= report["test_description_exact"] <= 1 and report["examples"] == 60
    assert main(["pretrain", "--out", str(out), "--steps", "2"]) == 2  # an existing folder is never overwritten
    assert "already exists" in capsys.readouterr().err
