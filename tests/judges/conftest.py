"""Fixtures for the judge tests: the real vLLM server (installed on first use by the same code as
``make judge-server``), one shared per session, and a factory for tests that need their own.

Every server is started in its own process group and stopped by its PID in a finalizer, which
runs also when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fadtq.judges.server import TINY_SERVED_NAME, JudgeServer, ensure_tiny_model, ensure_venv, free_port, start_server


@pytest.fixture(scope="session")
def judge_python() -> Path:
    """The judge venv's python: the first run installs ``.venv-judge`` (a few minutes)."""
    return ensure_venv("cpu")


@pytest.fixture(scope="session")
def tiny_judge_dir() -> Path:
    return ensure_tiny_model()


def _start(python: Path, model_dir: Path, port: int | None = None) -> JudgeServer:
    return start_server(python, str(model_dir), port or free_port(), "cpu", TINY_SERVED_NAME, wait_s=300)


@pytest.fixture(scope="session")
def shared_server(judge_python: Path, tiny_judge_dir: Path) -> Iterator[JudgeServer]:
    server = _start(judge_python, tiny_judge_dir)
    yield server
    server.stop()


@pytest.fixture
def server_factory(judge_python: Path, tiny_judge_dir: Path) -> Iterator[Callable[..., JudgeServer]]:
    """``start(port=None)`` starts one more server; all of them are stopped after the test."""
    started: list[JudgeServer] = []

    def start(port: int | None = None) -> JudgeServer:
        started.append(_start(judge_python, tiny_judge_dir, port))
        return started[-1]

    yield start
    for server in started:
        server.stop()
