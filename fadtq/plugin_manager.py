"""One pluggy manager for built-in and third-party plugins, and the name registries built from it.

Built-ins are registered explicitly (like pytest's and datasette's default plugins); third-party
plugins arrive through the ``fadtq`` entry-point group. Both then go through the same hooks.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

import pluggy

from fadtq import hookspecs
from fadtq.api import AdvantageEstimator, JudgeFactory, Loss, RewardFunction, RolloutEngineFactory
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
    "fadtq_plugins.loss_functions",
    "fadtq_plugins.rollout_engines",
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

    def __init__(self, kind: str, flag: str, item_type: type = object) -> None:
        self.kind = kind
        self.flag = flag
        self.item_type = item_type
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
    """One registry per hook of ``fadtq.hookspecs``, each name with its provider."""

    manager: pluggy.PluginManager
    rewards: Registry[RewardFunction]
    advantages: Registry[AdvantageEstimator]
    judges: Registry[JudgeFactory]
    losses: Registry[Loss]
    engines: Registry[RolloutEngineFactory]


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, knowing which distribution provided each entry-point plugin."""

    def __init__(self) -> None:
        super().__init__("fadtq")
        self.providers: dict[str, str] = {}  # plugin name -> "distribution version"


@contextmanager
def _blaming(provider: str, what: str) -> Iterator[None]:
    """A third-party plugin that fails to load is one line naming its distribution, not a
    traceback of somebody else's code."""
    try:
        yield
    except FadtqError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the plugin's code raised
        detail = " ".join(str(exc).split())
        raise FadtqError(f"plugin {provider}: {what} failed ({type(exc).__name__}: {detail}); "
                         "fix or uninstall that distribution") from None


def _load_entry_points(manager: PluginManager) -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.has_plugin(ep.name) or manager.is_blocked(ep.name):
            continue
        provider = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value
        with _blaming(provider, f"loading entry point {ep.name} = {ep.value}"):
            manager.register(ep.load(), name=ep.name)
        manager.providers[ep.name] = provider


def new_plugin_manager(load_entry_points: bool = True) -> PluginManager:
    manager = PluginManager()
    manager.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    if load_entry_points:
        _load_entry_points(manager)
    _check_hook_names(manager)
    return manager


def _check_hook_names(manager: PluginManager) -> None:
    """A ``@hookimpl`` whose name matches no hook (``register_reward`` for ``register_rewards``)
    would be silently ignored: refuse it, naming the plugin (pluggy's ``check_pending``)."""
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) or repr(exc.plugin)
        provider = getattr(manager, "providers", {}).get(name) or name
        known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("register_")))
        raise FadtqError(f"plugin {provider}: {' '.join(str(exc).split())}; known hooks: {known}") from None


def collect(manager: PluginManager) -> Plugins:
    """Call each plugin's hooks one by one so that every name is tied to its provider."""
    registries: dict[str, Registry] = {
        "register_rewards": Registry("reward", "--rewards", RewardFunction),
        "register_advantage_estimators": Registry("advantage estimator", "--advantage", AdvantageEstimator),
        "register_judges": Registry("judge", "--judge", JudgeFactory),
        "register_losses": Registry("loss", "the estimator's loss", Loss),
        "register_rollout_engines": Registry("rollout engine", "rollout.engine", RolloutEngineFactory),
    }
    for hook_name, registry in registries.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            provider = getattr(manager, "providers", {}).get(impl.plugin_name) or (
                BUILTIN_PROVIDER if impl.plugin_name in BUILTIN_PLUGINS else impl.plugin_name)
            with _blaming(provider, hook_name):
                items = list(impl.function() or ())
            for item in items:
                if not isinstance(item, registry.item_type):
                    raise FadtqError(f"plugin {provider}: {hook_name} returned {item!r}; expected "
                                     f"{registry.item_type.__name__} objects")
                registry.add(item.name, item, provider)
    return Plugins(manager, *registries.values())


@lru_cache(maxsize=1)
def default_plugins() -> Plugins:
    """The process-wide registries: built-ins plus every installed entry-point plugin."""
    return collect(new_plugin_manager())
