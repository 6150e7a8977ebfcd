"""One pluggy manager for built-in and third-party plugins, and the name registries built from it.

Built-ins are registered explicitly (like pytest's and datasette's default plugins); third-party
plugins arrive through the ``fadtq`` entry-point group. Both then go through the same hooks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

import pluggy

from fadtq import hookspecs
from fadtq.errors import FadtqError

BUILTIN_PLUGINS = (
    "fadtq_plugins.reward_format",
    "fadtq_plugins.reward_accuracy",
    "fadtq_plugins.reward_conciseness",
    "fadtq_plugins.reward_relevance",
    "fadtq_plugins.advantage_gpg",
    "fadtq_plugins.advantage_grpo",
    "fadtq_plugins.advantage_baselines",
    "fadtq_plugins.judge_heuristic",
    "fadtq_plugins.judge_openai",
    "fadtq_plugins.judge_hf",
)
ENTRY_POINT_GROUP = "fadtq"
BUILTIN_PROVIDER = "fadtq (built-in)"

T = TypeVar("T")


@dataclass(frozen=True)
class Registered(Generic[T]):
    item: T
    provider: str


class Registry(Generic[T]):
    """Name -> item, each with the plugin that provided it."""

    def __init__(self, kind: str, flag: str) -> None:
        self.kind = kind
        self.flag = flag
        self._entries: dict[str, Registered[T]] = {}

    def add(self, name: str, item: T, provider: str) -> None:
        if name in self._entries:
            other = self._entries[name].provider
            raise FadtqError(f"{self.kind} {name!r} is registered twice: by {other} and by {provider}")
        self._entries[name] = Registered(item, provider)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise FadtqError(f"{self.flag}: unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._entries[name].item

    def names(self) -> list[str]:
        return sorted(self._entries)

    def provider(self, name: str) -> str:
        return self._entries[name].provider

    def __contains__(self, name: object) -> bool:
        return name in self._entries


@dataclass
class Plugins:
    manager: pluggy.PluginManager
    rewards: Registry
    advantages: Registry
    judges: Registry


def new_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    manager = pluggy.PluginManager("fadtq")
    manager.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    if load_entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


def _providers(manager: pluggy.PluginManager) -> dict[int, str]:
    return {id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in manager.list_plugin_distinfo()}


def collect(manager: pluggy.PluginManager) -> Plugins:
    """Call each plugin's hooks one by one so that every name is tied to its provider."""
    providers = _providers(manager)
    registries = {
        "register_rewards": Registry("reward", "--rewards"),
        "register_advantage_estimators": Registry("advantage estimator", "--advantage"),
        "register_judges": Registry("judge", "--judge"),
    }
    for hook_name, registry in registries.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            provider = providers.get(id(impl.plugin), BUILTIN_PROVIDER if impl.plugin_name in BUILTIN_PLUGINS else impl.plugin_name)
            for item in impl.function() or ():
                registry.add(item.name, item, provider)
    return Plugins(manager, *registries.values())


@lru_cache(maxsize=1)
def default_plugins() -> Plugins:
    """The process-wide registries: built-ins plus every installed entry-point plugin."""
    return collect(new_plugin_manager())
