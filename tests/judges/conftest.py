"""Fixtures for the judge tests: the real vLLM server (started by the same code as
``make judge-server``), one shared per session, and a factory for tests that need their own.

Every server is started in its own process group and stopped by its PID in a finalizer, which
runs also when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fadtq.judges.server import TINY_SERVED_NAME, ensure_tiny_model, start_judge
from fadtq.serving.vllm_server import VLLMServer, free_port


@pytest.fixture(scope="session")
def tiny_judge_dir() -> Path:
    return ensure_tiny_model()


def _start(model_dir: Path, port: int | None = None) -> VLLMServer:
    return start_judge(str(model_dir), port or free_port(), "cpu", TINY_SERVED_NAME, wait_s=300)


@pytest.fixture(scope="session")
def shared_server(tiny_judge_dir: Path) -> Iterator[VLLMServer]:
    server = _start(tiny_judge_dir)
    yield server
    server.stop()


@pytest.fixture
def server_factory(tiny_judge_dir: Path) -> Iterator[Callable[..., VLLMServer]]:
    """``start(port=None)`` starts one more server; all of them are stopped after the test."""
    started: list[VLLMServer] = []

    def start(port: int | None = None) -> VLLMServer:
        started.append(_start(tiny_judge_dir, port))
        return started[-1]

    yield start
    for server in started:
        server.stop()
