"""``fadtq plugins``: every registered reward, advantage estimator, judge, loss and rollout engine,
and who provides it."""

from __future__ import annotations

import argparse

from fadtq.plugin_manager import default_plugins
from fadtq.table import format_table



def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    plugins = default_plugins()
    rows = []
    registries = (("reward", plugins.rewards), ("advantage", plugins.advantages), ("judge", plugins.judges),
                  ("loss", plugins.losses), ("rollout engine", plugins.engines))
    for kind, registry in registries:
        for name in registry.names():
            rows.append([kind, name, registry.provider(name), registry.get(name).description])
    print(format_table(["kind", "name", "provider", "description"], rows))
    return 0
