"""Plugin registries: duplicate names name both providers; unknown names list the known ones."""

from __future__ import annotations

import types

import pytest

from fadtq.api import (AdvantageEstimator, JudgeFactory, Loss, RewardFunction, RewardOutput, RolloutEngineFactory,
                       hookimpl)
from fadtq.errors import ConfigError, FadtqError
from fadtq.plugin_manager import (
    BUILTIN_PLUGINS,
    BUILTIN_PROVIDER,
    Registry,
    collect,
    default_plugins,
    new_plugin_manager,
)
from fadtq.run_config import check_plugins, load_run_config


def test_registry_add_get_names_provider():
    reg = Registry("reward", "--rewards")
    reg.add("b", 2, "pkg-b 1.0")
    reg.add("a", 1, "pkg-a 0.1")
    assert reg.get("a") == 1 and reg.get("b") == 2
    assert reg.names() == ["a", "b"]
    assert reg.provider("a") == "pkg-a 0.1"
    assert "a" in reg and "c" not in reg


def test_registry_duplicate_names_both_providers():
    reg = Registry("reward", "--rewards")
    reg.add("format", 1, "fadtq (built-in)")
    with pytest.raises(FadtqError) as info:
        reg.add("format", 2, "acme-rewards 2.0")
    message = str(info.value)
    assert "'format'" in message and "fadtq (built-in)" in message and "acme-rewards 2.0" in message
    assert reg.get("format") == 1  # the first registration is kept


def test_registry_unknown_lists_known_and_flag():
    reg = Registry("reward", "--rewards")
    for name in ("format", "accuracy", "tq"):
        reg.add(name, name, "x")
    with pytest.raises(FadtqError) as info:
        reg.get("acuracy")
    message = str(info.value)
    assert message == "--rewards: unknown reward 'acuracy'; known: accuracy, format, tq"


def test_default_plugins_has_builtins_from_builtin_provider():
    plugins = default_plugins()
    for name in ("format", "accuracy", "conciseness", "relevance"):
        assert name in plugins.rewards and plugins.rewards.provider(name) == BUILTIN_PROVIDER
    for name in ("gpg", "grpo", "dr_grpo", "rloo"):
        assert plugins.advantages.provider(name) == BUILTIN_PROVIDER
    assert plugins.judges.provider("heuristic") == BUILTIN_PROVIDER
    for name in ("policy_gradient", "clipped_ratio"):
        assert plugins.losses.provider(name) == BUILTIN_PROVIDER
    assert plugins.engines.provider("hf") == BUILTIN_PROVIDER
    assert plugins.rewards.get("conciseness").needs_judge and not plugins.rewards.get("format").needs_judge


def test_builtins_import_under_non_clashing_name():
    assert all(name.startswith("fadtq_plugins.") for name in BUILTIN_PLUGINS)


def _dummy_reward(rollouts, ctx):
    return RewardOutput([0.0] * len(rollouts))


def plugin_module(name: str, rewards=(), advantages=(), judges=(), losses=(), engines=(), loss="policy_gradient"):
    """An in-test plugin: a module object with hookimpl-marked functions."""
    module = types.ModuleType(name)
    if losses:
        module.register_losses = hookimpl(lambda: [Loss(n, lambda x, **_: (x.logprobs.sum(), {})) for n in losses])
    if engines:
        module.register_rollout_engines = hookimpl(
            lambda: [RolloutEngineFactory(n, lambda m, p: None) for n in engines])
    if rewards:
        module.register_rewards = hookimpl(lambda: [RewardFunction(n, _dummy_reward) for n in rewards])
    if advantages:
        module.register_advantage_estimators = hookimpl(
            lambda: [AdvantageEstimator(n, lambda r, g, **options: r, loss=loss) for n in advantages])
    if judges:
        module.register_judges = hookimpl(lambda: [JudgeFactory(n, lambda o, p: None) for n in judges])
    return module


def test_collect_duplicate_builtin_reward_names_both_providers():
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin_module("acme_dup", rewards=["format"]), name="acme_dup")
    with pytest.raises(FadtqError) as info:
        collect(manager)
    message = str(info.value)
    assert "'format'" in message
    assert "fadtq (built-in)" in message and "acme_dup" in message


@pytest.mark.parametrize(
    "kwargs, name, flag_kind",
    [
        ({"advantages": ["gpg"]}, "gpg", "advantage estimator"),
        ({"judges": ["heuristic"]}, "heuristic", "judge"),
        ({"losses": ["clipped_ratio"]}, "clipped_ratio", "loss"),
        ({"engines": ["hf"]}, "hf", "rollout engine"),
    ],
)
def test_collect_duplicate_other_kinds(kwargs, name, flag_kind):
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin_module("acme_dup2", **kwargs), name="acme_dup2")
    with pytest.raises(FadtqError) as info:
        collect(manager)
    message = str(info.value)
    assert message.startswith(f"{flag_kind} '{name}' is registered twice")
    assert "fadtq (built-in)" in message and "acme_dup2" in message


def test_collect_extra_plugin_registers_new_name_with_its_provider():
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin_module("acme_extra", rewards=["shortness"]), name="acme_extra")
    plugins = collect(manager)
    assert plugins.rewards.provider("shortness") == "acme_extra"
    assert plugins.rewards.provider("format") == BUILTIN_PROVIDER
    assert "shortness" in plugins.rewards.names()


def test_two_third_party_plugins_same_name():
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin_module("first_pkg", rewards=["brevity"]), name="first_pkg")
    manager.register(plugin_module("second_pkg", rewards=["brevity"]), name="second_pkg")
    with pytest.raises(FadtqError) as info:
        collect(manager)
    message = str(info.value)
    assert "first_pkg" in message and "second_pkg" in message and "'brevity'" in message


def test_a_third_party_estimator_can_use_a_third_party_loss():
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin_module("acme_ppo", advantages=["acme"], losses=["acme_loss"], loss="acme_loss"),
                     name="acme_ppo")
    plugins = collect(manager)
    cfg = load_run_config(None, {"advantage.name": "acme"})
    check_plugins(cfg, plugins)
    assert plugins.losses.provider(plugins.advantages.get("acme").loss) == "acme_ppo"
    assert not plugins.losses.get("acme_loss").needs_reference


def test_an_estimator_asking_for_an_unknown_loss_is_blamed_on_advantage_name():
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin_module("acme_bad", advantages=["acme"], loss="ppo"), name="acme_bad")
    with pytest.raises(ConfigError) as info:
        check_plugins(load_run_config(None, {"advantage.name": "acme"}), collect(manager))
    assert info.value.key == "advantage.name"
    assert "unknown loss 'ppo'; known: clipped_ratio, policy_gradient" in str(info.value)


def test_an_unknown_rollout_engine_is_blamed_on_rollout_engine():
    with pytest.raises(ConfigError) as info:
        check_plugins(load_run_config(None, {"rollout.engine": "sglang"}), default_plugins())
    assert info.value.key == "rollout.engine"
    assert "unknown rollout engine 'sglang'; known: hf, vllm" in str(info.value)
