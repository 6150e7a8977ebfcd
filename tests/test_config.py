"""Typed YAML config loading: every error names the file and the dotted key at fault."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from fadtq import config
from fadtq.composition import RewardConfig
from fadtq.errors import FadtqError
from fadtq.run_config import RunConfig, load_run_config

DEFAULT_TEXT = (config.packaged_configs_dir() / config.DEFAULT_CONFIG).read_text(encoding="utf-8")


@dataclass
class Inner:
    rate: float
    steps: int = 3
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    inner: Inner
    title: str = "x"
    tags: dict[str, int] = field(default_factory=dict)
    maybe: int | None = None


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# from_mapping
# --------------------------------------------------------------------------------------------

def test_from_mapping_builds_typed_nested():
    obj = config.from_mapping(Outer, {"inner": {"rate": 1, "names": ["a"]}, "tags": {"k": 2}, "maybe": None})
    assert obj.inner.rate == 1.0 and isinstance(obj.inner.rate, float)  # int widened to float
    assert obj.inner.steps == 3 and obj.inner.names == ["a"] and obj.tags == {"k": 2} and obj.maybe is None


@pytest.mark.parametrize(
    "data, key, fragment",
    [
        ({"inner": {"rate": 1.0, "stepz": 2}}, "inner.stepz", "unknown key"),
        ({"inner": {"rate": 1.0}, "titel": "y"}, "titel", "unknown key"),
        ({"inner": {}}, "inner.rate", "missing required key"),
        ({}, "inner", "missing required key"),
        ({"inner": {"rate": "fast"}}, "inner.rate", "expected float"),
        ({"inner": {"rate": True}}, "inner.rate", "expected float"),  # bool is not a number here
        ({"inner": {"rate": 1.0, "steps": 2.5}}, "inner.steps", "expected int"),
        ({"inner": {"rate": 1.0, "steps": False}}, "inner.steps", "expected int"),
        ({"inner": {"rate": 1.0, "names": "a"}}, "inner.names", "expected a list"),
        ({"inner": {"rate": 1.0, "names": ["a", 3]}}, "inner.names[1]", "expected str"),
        ({"inner": {"rate": 1.0}, "tags": {"k": "v"}}, "tags.k", "expected int"),
        ({"inner": {"rate": 1.0}, "tags": [1]}, "tags", "expected a mapping"),
        ({"inner": [1, 2]}, "inner", "expected a mapping"),
        ({"inner": {"rate": 1.0}, "maybe": "no"}, "maybe", "expected"),
    ],
)
def test_from_mapping_errors_name_dotted_key(data, key, fragment):
    with pytest.raises(FadtqError) as info:
        config.from_mapping(Outer, data)
    message = str(info.value)
    assert message.startswith(f"{key}:"), message
    assert fragment in message


def test_from_mapping_unknown_key_lists_expected_keys():
    with pytest.raises(FadtqError, match=r"inner\.stepz: unknown key; expected one of names, rate, steps"):
        config.from_mapping(Outer, {"inner": {"rate": 1.0, "stepz": 2}})


def test_from_mapping_top_level_not_mapping():
    with pytest.raises(FadtqError, match=r"\(top level\): expected a mapping, got list"):
        config.from_mapping(Outer, [1])


def test_from_mapping_key_prefix():
    with pytest.raises(FadtqError, match=r"^reward\.eta: expected float"):
        config.from_mapping(RewardConfig, {"terms": {}, "active": ["x"], "eta": "high"}, "reward")


# --------------------------------------------------------------------------------------------
# load: errors carry the file path
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "edit, key, fragment",
    [
        (lambda t: t.replace("  eta: 0.5", "  eta: 0.5\n  etaa: 1"), "reward.etaa", "unknown key"),
        (lambda t: t.replace("{reward: format}", "{reward: format, gatee: accuracy}"),
         "reward.terms.format.gatee", "unknown key"),
        (lambda t: t.replace("  active: [format, accuracy, tq]\n", ""), "reward.active", "missing required key"),
        (lambda t: t.replace("eta: 0.5", "eta: high"), "reward.eta", "expected float"),
        (lambda t: t.replace("{reward: format}", "{reward: format, weight: heavy}"),
         "reward.terms.format.weight", "expected float"),
        (lambda t: t.replace("active: [format, accuracy, tq]", "active: format"), "reward.active", "expected a list"),
        (lambda t: t.replace("eta: 0.5", "eta: 1.5"), "reward.eta", "[0, 1]"),
        (lambda t: t + "judje:\n  name: heuristic\n", "judje", "unknown key"),
    ],
)
def test_load_errors_name_file_and_key(tmp_path, edit, key, fragment):
    text = edit(DEFAULT_TEXT)
    assert text != DEFAULT_TEXT  # the edit applied
    path = write(tmp_path, text)
    with pytest.raises(FadtqError) as info:
        config.load(RunConfig, path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}:"), message
    assert fragment in message


def test_load_invalid_yaml_names_file_and_line(tmp_path):
    # line 1 "reward:", line 2 "  eta: 0.5", line 3 opens an unclosed flow list, line 4 breaks it
    path = write(tmp_path, "reward:\n  eta: 0.5\n  active: [format, accuracy\n  terms: {}\n")
    with pytest.raises(FadtqError) as info:
        config.load(RunConfig, path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: invalid YAML"), message


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_load_top_level_not_mapping(tmp_path, text, kind):
    path = write(tmp_path, text)
    with pytest.raises(FadtqError) as info:
        config.load(RunConfig, path)
    assert str(info.value) == f"{path}: expected a mapping at the top level, got {kind}"


def test_load_empty_file_reports_missing_reward(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(FadtqError, match=r": reward: missing required key"):
        config.load(RunConfig, path)


def test_load_default_preset_is_the_seed_composition():
    cfg = load_run_config(None)
    assert cfg.reward.eta == 0.5
    assert cfg.reward.active == ["format", "accuracy", "tq"]
    assert cfg.reward.terms["tq"].gate == "accuracy"
    assert cfg.reward.terms["tq"].mix == {"conciseness": "eta", "relevance": "1-eta"}
    assert cfg.judge.name == "heuristic"
    assert cfg.advantage.name == "gpg"


# --------------------------------------------------------------------------------------------
# dotted overrides
# --------------------------------------------------------------------------------------------

def test_overrides_set_dotted_keys_as_yaml_scalars():
    cfg = load_run_config(None, {"reward.eta": "0.25", "judge.name": "other",
                                 "advantage.options.adjust_gd": "true", "reward.active": "[format, accuracy]"})
    assert cfg.reward.eta == 0.25
    assert cfg.judge.name == "other"
    assert cfg.advantage.options == {"eps": 1e-12, "adjust_gd": True}
    assert cfg.reward.active == ["format", "accuracy"]


def test_overrides_create_missing_sections():
    data = config.apply_overrides({}, {"a.b.c": "3"})
    assert data == {"a": {"b": {"c": 3}}}


def test_override_through_a_scalar_names_the_flag():
    with pytest.raises(FadtqError, match=r"^--reward\.eta\.x: reward\.eta is not a section \(it holds 0\."):
        load_run_config(None, {"reward.eta.x": "1"})


@pytest.mark.parametrize(
    "overrides, flag, fragment",
    [({"reward.etaa": "1"}, "--reward.etaa", "unknown key"), ({"reward.eta": "2"}, "--reward.eta", "[0, 1]"),
     ({"reward.eta": "x"}, "--reward.eta", "expected float"), ({"train.lr": "-1e-4"}, "--train.lr", "> 0, got -0.0001"),
     ({"train": "{lr: 0}"}, "--train", "train.lr: expected a number > 0")],
)
def test_bad_override_is_blamed_on_the_flag_not_the_preset(overrides, flag, fragment):
    with pytest.raises(FadtqError) as info:
        load_run_config(None, overrides)
    message = str(info.value)
    assert message.startswith(f"{flag}: ") and fragment in message, message
    assert "cpu_default" not in message


def test_error_in_a_preset_of_an_extends_chain_names_that_preset(tmp_path):
    base = write(tmp_path, re.sub(r"(?m)^  lr: .*$", "  lr: -1.0e-4", DEFAULT_TEXT), "base.yaml")
    top = write(tmp_path, "extends: base.yaml\ntrain:\n  epochs: 2\n", "top.yaml")
    with pytest.raises(FadtqError) as info:
        config.load(RunConfig, top)
    assert str(info.value).startswith(f"{base}: train.lr: expected a number > 0"), str(info.value)
    bad_epochs = write(tmp_path, "extends: base.yaml\ntrain:\n  epochs: 0\n  lr: 1.0\n", "top2.yaml")
    with pytest.raises(FadtqError, match=rf"^{bad_epochs}: train.epochs: expected a number >= 1"):
        config.load(RunConfig, bad_epochs)


def test_unknown_extends_names_the_file_not_the_flag(tmp_path):
    top = write(tmp_path, "extends: cpu_defualt\n", "top.yaml")
    with pytest.raises(FadtqError) as info:
        config.load(RunConfig, top)
    assert str(info.value).startswith(f"{top}: extends: cpu_defualt: no such file or preset"), str(info.value)
    assert "--config" not in str(info.value)


@pytest.mark.parametrize("old, new, expected", [
    ("  max_steps: 100", "  max_steps: 0", "train.max_steps: expected a number >= 1"),
    ("  max_steps: 100", "  max_steps: -1", "train.max_steps: expected a number >= 1"),
    ("  epochs: 10", "  epochs: 0", "train.epochs: expected a number >= 1"),
    ("  lr: 1.0e-3", "  lr: .nan", "train.lr: expected a finite number"),
    ("  lr: 1.0e-3", "  lr: .inf", "train.lr: expected a finite number"),
    ("  temperature: 1.0 ", "  temperature: 0 ", "rollout.temperature: expected a number > 0"),
    ("  image_size: 112 ", "  image_size: 0 ", "data.image_size: expected a number >= 1"),
    ("  seed: 0\n  image_size", "  seed: -1\n  image_size", "data.seed: expected a number >= 0"),
    ("  synth_scale: cpu", "  synth_scale: huge", "data.synth_scale: expected one of"),
    ("  dir: runs", "  dir: runs\n  name: a/b", "output.name: expected a plain folder name"),
    ("  dir: runs", "  dir: 5", "output.dir: expected str, got 5"),
    ("  active: [format, accuracy, tq]", "  active: [format, format]", "reward.active: a term"),
    ("  epochs: 10", "  epochs: 10\n  epochs: 2", "invalid YAML (duplicate key 'epochs')"),
])
def test_settings_that_leave_nothing_to_do_or_make_no_sense_are_refused(tmp_path, old, new, expected):
    text = DEFAULT_TEXT.replace(old, new)
    assert text != DEFAULT_TEXT
    path = write(tmp_path, text)
    with pytest.raises(FadtqError) as info:
        config.load(RunConfig, path)
    assert str(info.value).startswith(f"{path}"), str(info.value)
    assert expected in str(info.value)


def test_config_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(DEFAULT_TEXT.encode() + b"# caf\xe9\n")
    with pytest.raises(FadtqError) as info:
        config.load(RunConfig, path)
    assert str(info.value) == f"{path}:{DEFAULT_TEXT.count(chr(10)) + 1}: not UTF-8 text (byte 0xe9); expected a UTF-8 file"


def test_overrides_do_not_touch_the_file(tmp_path):
    path = write(tmp_path, DEFAULT_TEXT)
    config.load(RunConfig, path, {"reward.eta": "0.9"})
    assert path.read_text(encoding="utf-8") == DEFAULT_TEXT
    assert yaml.safe_load(path.read_text())["reward"]["eta"] == 0.5


# --------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cpu_default", "cpu_default.yaml", None])
def test_resolve_preset(name):
    path = config.resolve_config_path(name)
    assert path == config.packaged_configs_dir() / "cpu_default.yaml"
    assert path.is_file()


def test_resolve_existing_path_wins(tmp_path):
    path = write(tmp_path, DEFAULT_TEXT, "cpu_default.yaml")
    assert config.resolve_config_path(path) == path
    assert config.resolve_config_path(str(path)) == path


def test_unknown_preset_lists_presets():
    presets = sorted(p.stem for p in config.packaged_configs_dir().glob("*.yaml"))
    assert "cpu_default" in presets
    with pytest.raises(FadtqError) as info:
        config.resolve_config_path("cpu_defualt")
    message = str(info.value)
    assert message.startswith("--config cpu_defualt: no such file or preset")
    assert f"presets: {', '.join(presets)}" in message


@pytest.mark.parametrize("overrides, key", [
    ({"data.synth_difficulty": "hard"}, "data.synth_difficulty"),
    ({"data.synth_scale": "huge"}, "data.synth_scale"),
    ({"model.warmup_steps": "10"}, "model.warmup_steps"),  # the default pretrains: a warm-up too is refused
    ({"model.pretrain_steps": "-1"}, "model"),
    ({"rollout.max_draws": "-1"}, "rollout.max_draws"),
    ({"train.lr_scheduler": "linear"}, "train.lr_scheduler"),
    ({"train.min_lr_ratio": "1.5"}, "train.min_lr_ratio"),
])
def test_pretraining_difficulty_and_sampling_keys_are_validated(overrides, key):
    with pytest.raises(FadtqError, match=re.escape(f"{key}")):
        load_run_config(None, overrides)


@pytest.mark.parametrize("name", ["paper_fadtq", "paper_gpg", "paper_grpo", "paper_fadtq_no_conciseness",
                                  "paper_fadtq_no_relevance", "qwen3_vl_4b_fadtq", "qwen3_5_fadtq", "smolvlm_fadtq"])
def test_the_paper_configs_reset_every_aid_of_the_cpu_default(name):
    """The paper's runs extend the CPU default but sample, train and freeze as the paper does."""
    cfg = load_run_config(name)
    assert (cfg.rollout.top_p, cfg.rollout.reasoning_top_p, cfg.rollout.answer_top_p) == (1.0, None, None)
    assert cfg.rollout.answer_draws == "independent" and not cfg.rollout.class_balanced
    assert not cfg.rollout.dynamic_sampling
    assert cfg.train.ptx_coef == 0 and cfg.train.answer_entropy_coef == 0 and not cfg.train.freeze_vision_tower


@pytest.mark.parametrize("prompts, micro, expected", [(24, 48, (48, 1)), (24, 16, (16, 3)), (2, 48, (4, 1)),
                                                      (8, 4, (4, 4))])
def test_micro_batch_size_is_an_upper_bound_on_the_rollouts_per_rank(prompts, micro, expected):
    """Two ranks, groups of 4: a micro-batch larger than a rank's rollouts takes them all at once."""
    from fadtq.training.step_plan import plan_steps

    cfg = load_run_config("cpu_default", {"rollout.prompts_per_step": str(prompts), "train.micro_batch_size": str(micro)})
    plan = plan_steps(cfg, dataset_size=1800, world=2)
    assert (plan.micro_batch_size, plan.micro_batches) == expected
    assert plan.micro_batch_size * plan.micro_batches == plan.rollouts_per_rank


def test_a_micro_batch_that_does_not_divide_the_rollouts_is_refused():
    from fadtq.training.step_plan import plan_steps

    cfg = load_run_config("cpu_default", {"train.micro_batch_size": "5"})
    with pytest.raises(FadtqError, match="train.micro_batch_size: 5 does not divide the 48 rollouts per rank"):
        plan_steps(cfg, dataset_size=1800, world=2)


@pytest.mark.parametrize("overrides, key", [
    ({"deepspeed.offload_optimizer": "true"}, "deepspeed.offload_optimizer"),  # ZeRO 0
    ({"deepspeed.zero_stage": "2", "deepspeed.offload_param": "true"}, "deepspeed.offload_param"),
])
def test_zero_offload_needs_its_zero_stage(overrides, key):
    with pytest.raises(FadtqError, match=re.escape(key)):
        load_run_config(None, overrides)


def test_zero_offload_is_accepted_at_its_stage():
    cfg = load_run_config(None, {"deepspeed.zero_stage": "3", "deepspeed.offload_param": "true",
                                 "deepspeed.offload_optimizer": "true"})
    assert cfg.deepspeed.offload_param and cfg.deepspeed.offload_optimizer


@pytest.mark.parametrize("overrides, key", [
    ({"train.lora.rank": "-1"}, "train.lora.rank"),
    ({"train.lora.alpha": "0"}, "train.lora.alpha"),
    ({"train.lora.dropout": "1.0"}, "train.lora.dropout"),
    ({"train.lora.target_modules": "[]"}, "train.lora.target_modules"),
])
def test_lora_settings_are_validated(overrides, key):
    with pytest.raises(FadtqError, match=re.escape(key)):
        load_run_config(None, overrides)


@pytest.mark.parametrize("overrides, key, words", [
    ({"advantage.options.eps": "-1"}, "advantage.options.eps", "expected a number > 0, got -1 (the gpg estimator)"),
    ({"advantage.options.eps": "0"}, "advantage.options.eps", "expected a number > 0, got 0 (the gpg estimator)"),
    ({"advantage.name": "grpo", "rollout.group_size": "2", "advantage.options.ddof": "2"}, "advantage.options.ddof",
     "expected an integer in [0, 2) for groups of 2 (rollout.group_size), got 2 (the grpo estimator)"),
    ({"train.clip_eps": "1.5"}, "train.clip_eps", "expected a number in (0, 1), got 1.5"),
])
def test_estimator_and_loss_options_are_checked_by_value_on_load(overrides, key, words):
    from fadtq.plugin_manager import default_plugins
    from fadtq.run_config import check_plugins

    with pytest.raises(FadtqError) as error:
        check_plugins(load_run_config(None, overrides), default_plugins())
    assert str(error.value).endswith(f"{key}: {words}")


def test_options_within_range_pass():
    from fadtq.plugin_manager import default_plugins
    from fadtq.run_config import check_plugins

    check_plugins(load_run_config(None, {"advantage.options.ddof": "1", "advantage.options.eps": "0.000001"}),
                  default_plugins())


def test_a_run_s_config_keeps_its_local_paths_absolute(tmp_path, monkeypatch):
    """--resume and fadtq eval of the run work from any folder; a hub id stays a hub id."""
    from fadtq.training.run_folder import with_absolute_paths

    (tmp_path / "bench").mkdir()
    (tmp_path / "prompts").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = with_absolute_paths(load_run_config(None, {"data.benchmark": "bench", "prompts_dir": "prompts",
                                                     "model.path": "Qwen/Qwen2.5-VL-3B-Instruct", "output.dir": "runs"}))
    assert (cfg.data.benchmark, cfg.prompts_dir) == (str(tmp_path / "bench"), str(tmp_path / "prompts"))
    assert cfg.model.path == "Qwen/Qwen2.5-VL-3B-Instruct" and cfg.output.dir == str(tmp_path / "runs")


# ------------------------------------------------------------------------------------ who is to blame
def _blamed(path: Path, overrides: dict[str, str] | None = None, after=None) -> str:
    """The one line a config error becomes: on load, or raised by ``after(cfg)`` under the origins' blame."""
    from fadtq.run_config import load_run_config_traced

    with pytest.raises(FadtqError) as error:
        cfg, origins = load_run_config_traced(path, overrides)
        with origins.blame():
            after(cfg)
    return str(error.value)


def test_a_section_written_as_a_list_is_the_file_s_fault_not_the_flag_s(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("extends: cpu_default\ntrain: [1, 2]\n")
    assert _blamed(path, {"train.max_steps": "3"}) == \
        f"{path}: train: expected a mapping, got list (so --train.max_steps has no section to go in)"


def test_a_key_nobody_set_is_blamed_on_the_choice_that_asks_for_it(tmp_path):
    from fadtq.judges.options import JudgeOptions

    path = tmp_path / "c.yaml"
    path.write_text("extends: cpu_default\n")
    line = _blamed(path, {"judge.name": "hf"}, lambda cfg: JudgeOptions(cfg.judge.options, "hf").string("model"))
    assert line == "--judge.name: judge.options.model: required by the hf judge"


def test_a_value_wrong_because_of_another_names_both_origins(tmp_path):
    """The user's group size makes the preset's micro-batch size wrong: both files are named."""
    from fadtq.plugin_manager import default_plugins
    from fadtq.run_config import check_plugins
    from fadtq.training.step_plan import plan_steps

    path = tmp_path / "c.yaml"
    path.write_text("extends: cpu_default\nrollout:\n  group_size: 3\n")
    preset = config.packaged_configs_dir() / "cpu_default.yaml"
    line = _blamed(path, after=lambda cfg: plan_steps(cfg, dataset_size=1800, world=1))
    assert line.startswith(f"{preset}: train.micro_batch_size: 48 does not divide the 72 rollouts")
    assert line.endswith(f"(rollout.group_size from {path})")
    line = _blamed(path, {"advantage.options": "{ddof: 3}"}, lambda cfg: check_plugins(cfg, default_plugins()))
    assert line.startswith("--advantage.options: advantage.options.ddof: expected an integer in [0, 3)")
    assert line.endswith(f"(rollout.group_size from {path})")


def test_yaml_merge_keys_and_x_anchors_are_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("x-fast: &fast\n  lr: 0.001\n  epochs: 2\nextends: cpu_default\n"
                    "train:\n  <<: *fast\n  lr: 0.002\n")
    cfg = load_run_config(path)
    assert (cfg.train.lr, cfg.train.epochs) == (0.002, 2)  # the mapping's own key wins over the merged one
    path.write_text("extends: cpu_default\ntrain:\n  lr: 0.001\n  lr: 0.002\n")
    with pytest.raises(FadtqError, match=r"c.yaml:4: invalid YAML \(duplicate key 'lr'\)"):
        load_run_config(path)
