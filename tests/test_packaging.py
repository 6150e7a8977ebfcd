"""The package list in pyproject.toml covers every package folder, and data files ship."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed():
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    folders = {str(p.parent.relative_to(REPO)).replace("/", ".") for p in (REPO / "fadtq").rglob("__init__.py")}
    assert folders <= listed, f"add to pyproject.toml packages: {sorted(folders - listed)}"
    assert setup["package-dir"] == {"fadtq": "fadtq", "fadtq_plugins": "plugins", "fadtq_prompts": "prompts",
                                    "fadtq_configs": "configs"}


def test_templates_and_presets_are_package_data():
    import fadtq.config
    import fadtq.prompts

    assert (fadtq.prompts.packaged_prompts_dir() / "policy_question.j2").is_file()
    assert (fadtq.config.packaged_configs_dir() / "cpu_default.yaml").is_file()
