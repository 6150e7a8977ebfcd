"""Small look-alike trees shared by the data tests (generated once per session, copied to mutate)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fadtq.data.synth import synthesize

TINY_SIZE = 32


@pytest.fixture(scope="session")
def tiny_tree_master(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "loco", seed=0, scale="tiny", size=TINY_SIZE, workers=1)


@pytest.fixture
def tiny_tree(tiny_tree_master: Path, tmp_path: Path) -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(tiny_tree_master, tmp_path / "loco"))
