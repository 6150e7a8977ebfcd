"""A third-party plugin package, really installed, is discovered through the ``fadtq`` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest



REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "fadtq-length-penalty"
FIXTURE = REPO / "tests" / "fixtures" / "hand_rollouts.jsonl"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """``pip install`` the example into a private folder that only the subprocesses see."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True, timeout=300)
    return target


def test_plugins_lists_builtins_and_the_installed_example(fadtq_cli, plugin_site):
    result = fadtq_cli("plugins", env={"PYTHONPATH": str(plugin_site)})
    assert result.returncode == 0, result.stderr
    lines = {line.split("|")[1].strip(): line for line in result.stdout.splitlines()[2:]}
    assert "fadtq-length-penalty 0.1.0" in lines["length_penalty"]
    for name in ("format", "accuracy", "conciseness", "relevance", "gpg", "grpo", "dr_grpo", "rloo", "heuristic",
                 "policy_gradient", "clipped_ratio", "hf"):
        assert "fadtq (built-in)" in lines[name]


def test_without_the_package_the_name_is_unknown(fadtq_cli, tmp_path):
    result = fadtq_cli("reward", "--rewards", "format,length_penalty", "--input", FIXTURE,
                       "--output", tmp_path / "o.jsonl")
    assert result.returncode == 2
    assert "unknown reward 'length_penalty'" in result.stderr


def test_example_reward_used_by_name(fadtq_cli, plugin_site, tmp_path):
    out = tmp_path / "scored.jsonl"
    result = fadtq_cli("reward", "--rewards", "format,accuracy,length_penalty", "--input", FIXTURE,
                       "--output", out, env={"PYTHONPATH": str(plugin_site)})
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    # every fixture reasoning has at most 20 words (< 40): no penalty, so total = format + accuracy
    assert all(r["rewards"]["length_penalty"] == 0.0 for r in rows.values())
    assert rows["g1-a"]["rewards"]["total"] == 2.0


def test_duplicate_name_from_a_plugin_names_both_providers(fadtq_cli, plugin_site, tmp_path):
    clash = tmp_path / "clash"
    (clash / "clash_plugin").mkdir(parents=True)
    (clash / "clash_plugin" / "__init__.py").write_text(
        "from fadtq.api import RewardFunction, RewardOutput, hookimpl\n"
        "@hookimpl\n"
        "def register_rewards():\n"
        "    return [RewardFunction('format', lambda rs, ctx: RewardOutput([0.0] * len(rs)))]\n")
    dist = clash / "clash_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clash-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fadtq]\nclash = clash_plugin\n")
    result = fadtq_cli("plugins", env={"PYTHONPATH": str(clash)})
    assert result.returncode != 0
    assert "reward 'format' is registered twice: by fadtq (built-in) and by clash-plugin 1.0" in result.stderr
