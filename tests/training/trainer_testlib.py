"""Helpers for the trainer's acceptance tests: running ``fadtq/train.py`` in subprocesses.

Every run uses one session-wide ``FADTQ_CACHE`` (the tiny model and look-alike benchmark are
built once) and a test-only reward plugin, ``signal``, installed on ``PYTHONPATH`` through a
``fadtq`` entry point. ``signal`` is a deterministic function of the completion text that
varies within a group even for the untrained tiny model, so advantages are non-zero and the
weights really move (with the built-in rewards alone every reward of the tiny model is 0);
``signal_on_good_pairs`` varies only in the groups of good pairs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal as signals
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "fadtq" / "train.py"
LOOP_CONFIG = REPO / "tests" / "training" / "loop.yaml"  # the tests' small run (pinned, not the CPU default)
SIGNAL_REWARD = "signal"
GOOD_PAIRS_SIGNAL_REWARD = "signal_on_good_pairs"  # ``signal`` on good pairs, 0 on the others

# The keys every metrics row carries (reward components are checked separately).
METRIC_KEYS = (
    "reward/total", "accuracy", "format_rate",
    "judge/judged", "judge/skipped", "judge/failed", "judge/calls",
    "length/tokens", "length/think_words", "policy/entropy",
    "optim/grad_norm", "optim/lr", "time/generate", "time/score", "time/update",
)

_PLUGIN = '''\
"""Test-only reward: a deterministic, group-varying function of the completion's characters."""
from fadtq.api import RewardFunction, RewardOutput, hookimpl


def signal_reward(rollouts, ctx):
    chars = [len(r.completion) for r in rollouts]
    return RewardOutput([(sum(map(ord, r.completion)) % 7) / 6.0 for r in rollouts],
                        {"mean_chars": sum(chars) / len(chars)})


def signal_on_good_pairs(rollouts, ctx):
    return RewardOutput([signal_reward([r], ctx).values[0] if r.label == "good" else 0.0 for r in rollouts])


@hookimpl
def register_rewards():
    return [RewardFunction("signal", signal_reward, description="test-only"),
            RewardFunction("signal_on_good_pairs", signal_on_good_pairs, description="test-only")]
'''


def write_signal_plugin(folder: Path) -> Path:
    """A plugin package visible to subprocesses with ``PYTHONPATH=folder``."""
    (folder / "fadtq_test_signal.py").write_text(_PLUGIN)
    dist = folder / "fadtq_test_signal-0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fadtq-test-signal\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fadtq]\nsignal = fadtq_test_signal\n")
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deepspeed_bin() -> str:
    beside = Path(sys.executable).with_name("deepspeed")
    found = str(beside) if beside.is_file() else shutil.which("deepspeed")
    assert found, "the deepspeed launcher is not installed"
    return found


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, str(TRAIN), *map(str, args)]


def deepspeed_cmd(num_gpus: int, *args: str, script: Path = TRAIN) -> list[str]:
    """The real launcher; a free master port so concurrent test runs never collide."""
    return [deepspeed_bin(), "--num_gpus", str(num_gpus), "--master_port", str(free_port()), str(script),
            *map(str, args)]


def two_rank_run_with_fingerprints(out: Path, args: Sequence[str], env: dict[str, str]) -> tuple[Path, list[dict]]:
    """A 2-rank run through the launcher (``ds_fit_checksum.py``) into ``out/run``, and every rank's
    weight fingerprints after every step."""
    sums = out / "fingerprints.json"
    script = REPO / "tests" / "training" / "ds_fit_checksum.py"
    ok(run(deepspeed_cmd(2, *args, "--output.dir", out, "--output.name", "run", script=script),
           {**env, "FADTQ_TEST_CHECKSUMS": str(sums)}))
    return out / "run", json.loads(sums.read_text())


def killed_and_resumed(out: Path, args: Sequence[str], env: dict[str, str], steps: int,
                       timeout: float = 300) -> tuple[Path, Path, list[str]]:
    """Runs ``out/a`` and ``out/b`` of ``args`` side by side; ``b`` is SIGKILLed at its first complete
    checkpoint (before its last step) and resumed. Returns both folders and the checkpoints ``b``
    had when it was killed."""
    args = (*args, "--output.dir", out)
    proc_a = popen(python_cmd(*args, "--output.name", "a"), env, out / "a.log")
    proc_b = popen(python_cmd(*args, "--output.name", "b"), env, out / "b.log")
    try:
        wait_for(lambda: complete_checkpoints(out / "b"), timeout=timeout, proc=proc_b)
        killed_with = [c.name for c in complete_checkpoints(out / "b")]
        kill_group(proc_b)
        assert proc_a.wait(timeout=timeout) == 0, (out / "a.log").read_text()[-4000:]
    finally:
        for proc in (proc_a, proc_b):
            kill_group(proc)
    assert len(killed_with) < steps
    ok(run(python_cmd("--resume", out / "b"), env, timeout=timeout))
    return out / "a", out / "b", killed_with


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def garble(path: Path) -> None:
    """The same number of bytes, none of them right."""
    path.write_bytes(b"x" * path.stat().st_size)


# How a checkpoint gets damaged (a crash mid-write, a bad disk, a hand that removed a file) -> what
# the warning line says about it.
CHECKPOINT_DAMAGES = {
    "state.json truncated": (lambda c: truncate(c / "state.json"), "state.json has"),
    "state.json not an object": (lambda c: (c / "state.json").write_text("[4]"), "state.json has"),
    "engine state half-written": (lambda c: truncate(c / "deepspeed/state/mp_rank_00_model_states.pt"),
                                  "mp_rank_00_model_states.pt has"),
    "RNG state half-written": (lambda c: truncate(c / "rng-rank0.pt"), "rng-rank0.pt has"),
    "weights garbled, same size": (lambda c: garble(c / "policy/model.safetensors"),
                                   "model.safetensors differs from its manifest"),
    "manifest missing": (lambda c: (c / "manifest.json").unlink(), "no manifest.json"),
}


def run(cmd: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def popen(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process we started and its children (its own session, started above)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signals.SIGKILL)
    proc.wait(timeout=30)


def side_by_side(commands: dict[str, list[str]], env: dict[str, str], logs: Path, timeout: float = 300) -> None:
    """Runs every command at once (each writes ``logs/<name>.log``) and asserts that each exits 0:
    independent one-thread runs share the machine's cores instead of taking turns."""
    procs = {name: popen(cmd, env, logs / f"{name}.log") for name, cmd in commands.items()}
    try:
        for name, proc in procs.items():
            assert proc.wait(timeout=timeout) == 0, f"{name}: " + (logs / f"{name}.log").read_text()[-4000:]
    finally:
        for proc in procs.values():
            kill_group(proc)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def complete_checkpoints(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".tmp") and (p / "state.json").is_file())


def policy_state(policy_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for shard in sorted(policy_dir.glob("*.safetensors")):
        state.update(load_file(shard))
    assert state, f"no safetensors in {policy_dir}"
    return state


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None, poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc is None or proc.poll() is None, f"process exited (rc {proc.returncode}) before the condition held"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)


def endpoint(server):
    """The OpenAI endpoint of a started policy server, for ``fadtq eval --server``."""
    from fadtq.openai_client import EndpointConfig

    return EndpointConfig(base_urls=[server.base_url], model=server.model, max_in_flight=8)


def answers(out: Path) -> dict[str, str]:
    """An evaluation folder's completions by pair id."""
    return {row["id"]: row["completion"] for row in rows(out / "predictions.jsonl")}
