"""Shared pieces of the side-by-side benchmarks: one thread, clean subprocesses, medians, this trainer's side.

Every variant runs in a subprocess of its own, so its peak RSS (``ru_maxrss``) is its own and
not the high-water mark of whatever ran before it in the driver. Workers print one JSON line
prefixed with :data:`RESULT_TAG`; everything else they print (logs, progress bars) is ignored.

The scripts in ``tools/`` (not benchmarks) import it for :func:`one_thread` and its thread pinning.

Not a test module: pytest only collects ``tests/`` (pyproject ``testpaths``).
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
INHERITED_THREADS = {var: os.environ.get(var) for var in THREAD_VARS}  # as this process started; see unpin_threads
for _var in THREAD_VARS:
    os.environ[_var] = "1"

import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SCRATCH = RESULTS / "tmp"
RESULT_TAG = "BENCH_RESULT "
if str(REPO) not in sys.path:  # a fresh clone whose venv has no editable install still imports fadtq
    sys.path.insert(0, str(REPO))

from fadtq.files import atomic_write_json  # noqa: E402,F401 - the benchmarks write their results with it


def one_thread() -> None:
    """Pin torch to one thread: on a shared 2-core machine two threads make step times swing 40x."""
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before any parallel work; the intra-op setting is what counts
        pass


def unpin_threads() -> None:
    """Give the environment back the thread settings this process started with, so that a
    subprocess started after this (a server under test) uses the machine as it would without benchlib."""
    for var, value in INHERITED_THREADS.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def emit(result: dict) -> None:
    """The worker's answer to the driver: one tagged JSON line on stdout."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_worker(cmd: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> dict:
    """Run a worker subprocess and return its tagged JSON result; a failure shows its output tail."""
    full_env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1"), "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"worker failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(lines[-1][len(RESULT_TAG):])


def host() -> dict:
    """The machine's CPU count and Python version (what a result that is not pinned to one thread records)."""
    return {"cpu_count": os.cpu_count(), "python": platform.python_version()}


def machine() -> dict:
    return {**host(), "threads": 1, "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def command_line() -> str:
    """How this script was run, as its results record it: its path from the repository root and its arguments."""
    return " ".join([Path(sys.argv[0]).resolve().relative_to(REPO).as_posix(), *sys.argv[1:]])


def cached_model(size: str, seed: int = 0, family: str = "qwen2_5_vl") -> Path:
    """The offline model of ``family`` and ``size`` without warm-up, built into the project cache
    once. A preset drawn on the GPU leaves its memory cached in this process: it is handed back here."""
    import torch

    from fadtq.pretraining.default_policy import default_model_dir

    path = default_model_dir(size, seed, 0, None, family)
    torch.cuda.empty_cache()  # a no-op where CUDA was never initialised
    return path


def synchronize() -> None:
    """Wait for the GPU's queued work, so a host clock read after it counts that work (no-op on a CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


# ---------------------------------------------------------------------------------- this trainer's side

def trainer_config(estimator: str, model_dir: Path, prompts: int, group: int, tokens: int, image_size: int,
                   run_name: str, preset: str | None = None, overrides: dict[str, str] | None = None):
    """The run config the benchmarks time: the CPU default (or ``preset``) with one micro-batch
    holding the whole step, then ``overrides``."""
    from fadtq.run_config import load_run_config

    return load_run_config(preset, {
        "advantage.name": estimator, "model.path": str(model_dir), "rollout.prompts_per_step": str(prompts),
        "rollout.group_size": str(group), "rollout.max_new_tokens": str(tokens),
        "train.micro_batch_size": str(prompts * group), "data.image_size": str(image_size),
        "train.max_steps": "1000", "output.dir": str(SCRATCH), "output.name": run_name,
        "output.sample_every": "0", **(overrides or {}),
    })


def fixed_pairs(trainer, indices: list[int], prompts: int):
    """Make step ``s`` use dataset rows ``indices[s*prompts:(s+1)*prompts]`` (the TRL side gets the same)."""
    dataset = trainer.sampler.dataset

    def step_pairs(step: int) -> list:
        chosen = indices[(step * prompts) % len(indices):][:prompts]
        return [dataset[i] for i in chosen]
    trainer.sampler.step_pairs = step_pairs


def time_trainer(estimator: str, model_dir: Path, *, prompts: int, group: int, tokens: int, image_size: int,
                 steps: int, warmup: int, indices: list[int] | None = None, seed: int = 0,
                 preset: str | None = None, overrides: dict[str, str] | None = None) -> dict:
    """Build the trainer in this process and time ``warmup + steps`` calls of ``train_step``.

    On a GPU the clocks are read after the queued work is done, and the result holds this
    process's peak GPU memory (``gpu`` below); ``preset`` and ``overrides`` go to :func:`trainer_config`.
    """
    import torch

    from fadtq.commands.train import build

    one_thread()
    cfg = trainer_config(estimator, model_dir, prompts, group, tokens, image_size, f"bench-{estimator}-{os.getpid()}",
                         preset, overrides)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    built = time.perf_counter()
    trainer = build(cfg, SCRATCH / cfg.output.name)
    synchronize()
    build_seconds = time.perf_counter() - built
    after_build = gpu_memory_mb()
    if indices is not None:
        fixed_pairs(trainer, indices, prompts)
    rows = []
    for step in range(warmup + steps):
        torch.manual_seed(seed * 1000 + step)  # the same rollouts' randomness for every variant
        synchronize()
        started = time.perf_counter()
        metrics, _ = trainer.train_step(step)
        synchronize()
        total = time.perf_counter() - started
        if step >= warmup:
            rows.append({"step": total, "generate": metrics["time/generate"], "score": metrics["time/score"],
                         "update": metrics["time/update"], "weight_sync": metrics["time/weight_sync"],
                         **{phase: metrics.get(f"time/{phase}", 0.0) for phase in ("reference", "old_logprobs")},
                         "tokens": metrics["length/tokens"]})
    params = sum(p.numel() for p in trainer.policy_model.parameters())
    shutil.rmtree(trainer.run_dir, ignore_errors=True)
    return {"estimator": estimator, "has_reference": trainer.reference is not None, "params": params,
            "build_seconds": build_seconds, "steps": rows, "peak_rss_mb": peak_rss_mb(),
            "gpu": gpu_peaks(after_build) if after_build is not None else None, **run_facts(trainer)}


def gpu_memory_mb() -> float | None:
    """MiB of tensors on the GPU now (``None`` without CUDA)."""
    import torch

    return torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else None


def gpu_peaks(after_build_mb: float) -> dict[str, float]:
    """This process's GPU memory: the tensors' high-water mark (what the comparison uses), the
    allocator's (tensors plus its cache) and the tensors held once the trainer was built."""
    import torch

    return {"peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
            "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20, "after_build_mb": after_build_mb}


def run_facts(trainer) -> dict:
    """What the timed run was, read off the trainer: device, dtype, ZeRO stage, optimizer, versions."""
    import deepspeed
    import torch
    import transformers

    device = next(trainer.policy_model.parameters()).device
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "dtype": trainer.cfg.model.dtype, "zero_stage": trainer.cfg.deepspeed.zero_stage,
            "micro_batch_size": trainer.cfg.train.micro_batch_size,
            "optimizer": type(getattr(trainer.optim, "optimizer", trainer.optim)).__name__,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "deepspeed": deepspeed.__version__}}
