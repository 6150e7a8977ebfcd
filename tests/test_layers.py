"""The package's architecture, checked: a module imports only from its own unit (a subpackage or a
top-level module) and from the layers below it. The layer order is written once, here.

Every import statement counts, whether at the top of a module, inside a function or under
``TYPE_CHECKING``: each is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Lowest first. Units in one layer are independent of each other.
LAYERS: list[tuple[str, ...]] = [
    ("fadtq.errors",),
    ("fadtq.paths", "fadtq.files", "fadtq.table", "fadtq.formulas", "fadtq.arguments", "fadtq.losses",
     "fadtq.composition", "fadtq.openai_client", "fadtq.rollout_correction"),
    ("fadtq.config", "fadtq.prompts", "fadtq.folder_lock"),
    ("fadtq.answer", "fadtq.rollout"),
    ("fadtq.data",),  # benchmarks, the look-alike, MMAD files
    ("fadtq.policy",),  # model families, processors, forward batches, log-probabilities, the prompt cache
    ("fadtq.generation",),  # rollout engines
    ("fadtq.serving",),  # vLLM servers
    ("fadtq.api",),  # the plugin contract
    ("fadtq.hookspecs",),
    ("fadtq.plugin_manager",),
    ("fadtq.judges",),
    ("fadtq_plugins",),  # the built-in plugins
    ("fadtq.scoring",),  # rewards composed
    ("fadtq.scoring_checks", "fadtq.run_config"),
    ("fadtq.pretraining",),  # building a policy before RL
    ("fadtq.training", "fadtq.evaluation"),
    ("fadtq.commands", "fadtq.demo"),
    ("fadtq.cli", "fadtq.train"),
]
PACKAGES = {"fadtq": REPO / "fadtq", "fadtq_plugins": REPO / "plugins"}


def module_name(path: Path) -> str:
    for package, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = (package, *path.relative_to(folder).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def unit_of(module: str) -> str:
    """``fadtq.training.trainer`` -> ``fadtq.training``; ``fadtq.errors`` -> itself."""
    parts = module.split(".")
    return parts[0] if parts[0] != "fadtq" else ".".join(parts[:2])


def project_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a project module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in PACKAGES:  # from fadtq import formulas
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def layer_of(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


SOURCES = sorted(p for folder in PACKAGES.values() for p in folder.rglob("*.py") if "sitecustomize" not in p.parts[-2])


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(path)) for path in SOURCES} - {"fadtq"}
    listed = {unit for layer in LAYERS for unit in layer}
    assert units - listed == set(), "add these to a layer in LAYERS"
    assert listed - units == set(), "these no longer exist"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_imports_from_a_layer_above_or_beside_it(path):
    unit = unit_of(module_name(path))
    if unit == "fadtq":  # the package's own __init__
        return
    wrong = [f"{path.relative_to(REPO)}:{line} imports {name} ({unit_of(name)}: layer {layer_of(unit_of(name))}, "
             f"{unit} is in layer {layer_of(unit)})"
             for line, name in project_imports(path)
             if unit_of(name) != unit and layer_of(unit_of(name)) >= layer_of(unit)]
    assert not wrong, "\n".join(wrong)


def test_the_rollout_engines_load_without_the_trainer():
    import subprocess
    import sys

    probe = "import sys, fadtq.generation.hf; print(sorted(m for m in sys.modules if m.startswith('fadtq.training')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
