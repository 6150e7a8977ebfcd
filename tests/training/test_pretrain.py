"""``fadtq pretrain`` and how a run finds its pretrained policy.

A recipe reproduces: its first steps give the same losses on every run, the same command gives
the same weights. A checkpoint shipped in ``pretrained/`` is used only when its ``recipe.json``
names the configured recipe and its weights hash to the recorded sha256; otherwise the recipe is
pretrained into the cache (``tools/pretrained_policy.py`` rebuilds a shipped one in full)."""

from __future__ import annotations

import json
import tempfile
from itertools import islice
from pathlib import Path

import pytest

from fadtq.cli import main
from fadtq.data.dataset import trained_image_size
from fadtq.errors import FadtqError
from fadtq.policy.family import family_of_model
from fadtq.prompts import PromptLibrary
from fadtq.run_config import load_run_config
from fadtq.pretraining import default_policy
from fadtq.pretraining.pretrain import (FIRST_LOSSES, RECIPE_FILE, PretrainRecipe, build_pretrained, load_start,
                                     recipe_from_config, training_losses, verify_shipped, weights_sha256,
                                     write_recipe)

RECIPE = PretrainRecipe(vision_steps=2, steps=2)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    from fadtq.pretraining.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("base") / "model", size=RECIPE.size, seed=RECIPE.seed)


def test_the_first_steps_of_a_recipe_reproduce(base_model):
    # two steps of the vision tower on the facts, then two of the whole model on descriptions
    runs = [list(islice(training_losses(*load_start(base_model), RECIPE, PromptLibrary()), 4)) for _ in range(2)]
    assert runs[0] == runs[1] and runs[0][0] > runs[0][1] > 0 and runs[0][3] > 0
    assert abs(runs[0][2] - runs[0][1]) > 0.5  # the description stage's loss adds the text's


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, base_model):
    """A checkpoint made by RECIPE, shipped in a stand-in ``pretrained/`` folder."""
    folder = tmp_path_factory.mktemp("pretrained") / RECIPE.folder_name()
    check = build_pretrained(folder, RECIPE, base_model=base_model, progress=False, check_examples=2)
    write_recipe(folder, RECIPE, check)
    assert trained_image_size(folder) == RECIPE.image_size
    return folder


def config_asking_for(recipe: PretrainRecipe):
    return load_run_config("cpu_default", {"model.pretrain_steps": str(recipe.steps),
                                              "model.pretrain_vision_steps": str(recipe.vision_steps)})


def test_a_run_uses_the_shipped_checkpoint_of_its_recipe(shipped, monkeypatch):
    monkeypatch.setattr(default_policy, "SHIPPED_MODELS", shipped.parent)
    cfg = config_asking_for(RECIPE)
    assert recipe_from_config(cfg) == RECIPE and default_policy.pretrained_model_dir(cfg) == shipped
    record = json.loads((shipped / "recipe.json").read_text())
    assert record["sha256"] == weights_sha256(shipped) and f"--steps {RECIPE.steps}" in record["command"]
    assert f"--vision-steps {RECIPE.vision_steps}" in record["command"]


def test_a_checkpoint_of_another_recipe_under_the_same_name_is_refused(shipped, tmp_path):
    import dataclasses
    import shutil

    copy = shutil.copytree(shipped, tmp_path / shipped.name)
    write_recipe(copy, dataclasses.replace(RECIPE, batch_size=4), {})
    with pytest.raises(FadtqError, match="not by the configured"):
        verify_shipped(copy, RECIPE)


def test_a_changed_checkpoint_is_refused(shipped, tmp_path):
    import shutil

    copy = shutil.copytree(shipped, tmp_path / "copy")
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(FadtqError, match="sha256 differs"):
        verify_shipped(copy, RECIPE)


def test_pretrain_command_trains_saves_checks_and_reproduces(tmp_path, capsys):
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["pretrain", "--out", str(out), "--vision-steps", "2", "--steps", "2", "--batch-size", "2",
                     "--seed", "1"]) == 0
        out_text = capsys.readouterr().out  # DeepSpeed may log its accelerator on the first line
        report = json.loads(out_text[out_text.index("{\n"):].split("pretrained model:")[0])
        assert (out / "model.safetensors").is_file() and len(report["first_losses"]) == 3  # FIRST_LOSSES
        assert 0 <= report["test_description_exact"] <= 1 and report["examples"] == 60
        digests.append(weights_sha256(out))
    assert digests[0] == digests[1]
    assert main(["pretrain", "--out", str(tmp_path / "a"), "--steps", "2"]) == 2  # never overwritten
    assert "already exists" in capsys.readouterr().err


def test_pretrain_flags_are_checked_before_any_work(tmp_path, capsys):
    for flags, fragment in ((["--single-share", "2"], "--single-share 2.0: expected a number between 0 and 1"),
                            (["--categories", "pushpin"], "--categories: unknown pushpin"),
                            (["--steps", "0"], "--steps 0: expected at least 1"),
                            (["--vision-steps", "-1"], "--vision-steps -1")):
        assert main(["pretrain", "--out", str(tmp_path / "m"), *flags]) == 2
        assert fragment in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_shipped_checkpoint_s_first_steps_reproduce():
    """The command in the shipped ``recipe.json``, run for its first steps from a fresh model, gives
    the losses recorded there (``tools/pretrained_policy.py`` rebuilds it in full)."""
    from fadtq.pretraining.tiny_model import make_tiny_model

    recipe = recipe_from_config(load_run_config("cpu_default"))
    shipped = default_policy.SHIPPED_MODELS / recipe.folder_name()
    record = json.loads((shipped / RECIPE_FILE).read_text())
    assert verify_shipped(shipped, recipe) == shipped
    with tempfile.TemporaryDirectory() as scratch:
        start = make_tiny_model(Path(scratch) / "base", size=recipe.size, seed=recipe.seed)
        losses = list(islice(training_losses(*load_start(start), recipe, PromptLibrary()), FIRST_LOSSES))
    assert losses == pytest.approx(record["check"]["first_losses"], abs=1e-5)


def test_the_lab_s_checkpoint_goes_on_from_the_demo_s_and_its_first_steps_reproduce():
    """configs/learnability.yaml's policy: the shipped demo policy pretrained further on varied
    reasonings (``start``), its tower frozen; its own recipe, hash and first losses check out."""
    recipe = recipe_from_config(load_run_config("learnability"))
    assert recipe.reasoning == "varied" and recipe.start == recipe_from_config(load_run_config("cpu_default")).folder_name()
    shipped = default_policy.SHIPPED_MODELS / recipe.folder_name()
    assert default_policy.pretrained_model_dir(load_run_config("learnability")) == shipped
    record = json.loads((shipped / RECIPE_FILE).read_text())
    model, processor = load_start(default_policy.SHIPPED_MODELS / recipe.start)
    tower = family_of_model(model).tower(model)
    before = {name: p.clone() for name, p in tower.named_parameters()}
    losses = list(islice(training_losses(model, processor, recipe, PromptLibrary()), FIRST_LOSSES))
    assert losses == pytest.approx(record["check"]["first_losses"], abs=1e-5)
    assert all(p.equal(before[name]) for name, p in tower.named_parameters())


def test_a_start_that_names_no_shipped_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "m"), "--start", "nothing-here", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "pretrain start 'nothing-here': no checkpoint of that name" in err and "known: qwen2.5-vl-base" in err
    assert main(["pretrain", "--out", str(tmp_path / "m"), "--start", "x", "--vision-steps", "5"]) == 2
    assert "pretrain start 'x' with 5 vision steps: expected 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_config_going_on_from_a_checkpoint_keeps_its_tower():
    with pytest.raises(FadtqError, match="model.pretrain_vision_steps: set 0 with pretrain_start"):
        load_run_config("learnability", {"model.pretrain_vision_steps": "10"})
    with pytest.raises(FadtqError, match="model.pretrain_reasoning"):
        load_run_config("cpu_default", {"model.pretrain_reasoning": "free"})
