"""Checkpoints that are complete or absent, never half-written, and exact resume.

A checkpoint is the folder ``<run>/checkpoints/step-NNNNNN`` holding

* ``policy/``: the policy in Hugging Face format (loadable by transformers and vLLM), with its
  tokenizer and processor;
* ``deepspeed/``: the DeepSpeed engine state (weights, optimizer, scheduler) for exact resume;
* ``rng-rank<R>.pt``: each rank's torch RNG state, so sampling continues as if never stopped;
* ``state.json``: the number of completed steps;
* ``manifest.json``: every other file's size and SHA-256, written last.

Everything is written into ``step-NNNNNN.tmp`` and renamed into place by rank 0 after every rank
has finished (a rename is atomic), so a process killed mid-save leaves only a ``.tmp`` folder
that :func:`latest_checkpoint` ignores and the next save clears away. A checkpoint damaged later
(a disk that filled or failed, a copy cut short) no longer matches its manifest:
:func:`resumable_checkpoint` then falls back to the newest one that does, before any model loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import resource
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from fadtq.data.dataset import record_image_size
from fadtq.errors import FadtqError
from fadtq.files import atomic_write_json
from fadtq.policy.adapters import has_adapters, merged_state_dict, unwrapped

_COMPLETE = re.compile(r"^step-(\d{6})$")
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def step_dir(run_dir: Path, step: int) -> Path:
    return checkpoints_dir(run_dir) / f"step-{step:06d}"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints, fewest steps first."""
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    complete = [p for p in folder.iterdir() if _COMPLETE.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(complete, key=lambda p: int(_COMPLETE.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the most steps, or ``None``."""
    return next(reversed(complete_checkpoints(run_dir)), None)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """``manifest.json``: each file's size and SHA-256 (the manifest itself excluded)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    atomic_write_json(folder / MANIFEST_FILE, {p.relative_to(folder).as_posix(): {
        "size": p.stat().st_size, "sha256": file_digest(p)} for p in files})


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What is wrong with ``checkpoint`` (``None``: every file its manifest lists is there, with its
    size and hash, and ``state.json`` holds a step count)."""
    try:
        manifest = json.loads((checkpoint / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {MANIFEST_FILE}"
    except (OSError, ValueError) as exc:
        return f"{MANIFEST_FILE} unreadable ({type(exc).__name__})"
    if not isinstance(manifest, dict) or STATE_FILE not in manifest:
        return f"{MANIFEST_FILE} lists no {STATE_FILE}"
    for name, expected in manifest.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["size"]:
            return f"{name} has {path.stat().st_size} bytes, its manifest says {expected['size']}"
        if file_digest(path) != expected["sha256"]:
            return f"{name} differs from its manifest (SHA-256)"
    try:
        steps = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))["steps_done"]
    except (OSError, ValueError, TypeError, KeyError):
        return f"{STATE_FILE} holds no steps_done"
    return None if isinstance(steps, int) else f"{STATE_FILE} holds no steps_done"


def resumable_checkpoint(run_dir: Path, warn: Callable[[str], None]) -> Path:
    """The newest intact checkpoint of ``run_dir``; each newer damaged one is one ``warn`` line
    naming what is wrong with it, and no intact one at all is one error line."""
    complete = complete_checkpoints(run_dir)
    if not complete:
        raise FadtqError(f"--resume {run_dir}: no complete checkpoint in {checkpoints_dir(run_dir)}")
    for checkpoint in reversed(complete):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        warn(f"checkpoint {checkpoint}: {problem}; falling back to an earlier one")
    raise FadtqError(f"--resume {run_dir}: no intact checkpoint ({len(complete)} damaged: "
                     f"{', '.join(p.name for p in complete)})")


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def save_checkpoint(run_dir: Path, steps_done: int, strategy, actor, processor, rank: int, keep: int,
                    image_size: int | None) -> Path:
    """Collective: every rank calls it. Returns the final folder. A file system error on any rank
    (a full disk, a file too large, a read-only or forbidden folder) stops every rank with one line
    naming the path, the partial ``.tmp`` removed and the last complete checkpoint untouched."""
    final = step_dir(run_dir, steps_done)
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    failures = _all_failures(_guarded(lambda: _write_parts(tmp, strategy, actor, processor, rank, image_size), tmp))
    if not failures:
        failures = _all_failures(_guarded(lambda: _seal(run_dir, tmp, final, steps_done, keep), tmp)
                                 if rank == 0 else None)
    if failures:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        barrier()
        last = latest_checkpoint(run_dir)
        then = (f"the run continues with --resume {run_dir} from {last.name}" if last else
                f"no checkpoint is complete yet, so start the run again (into a new --output.name, or after "
                f"removing {run_dir})")
        raise FadtqError(f"checkpoint {final.name} could not be written: {failures[0]}; the partial folder was "
                         f"removed, and {then}")
    return final


def _write_parts(tmp: Path, strategy, actor, processor, rank: int, image_size: int | None) -> None:
    """This rank's share of a checkpoint: the policy (rank 0 writes), the engine state, its RNG."""
    adapters = has_adapters(actor.model)
    if adapters:
        save_merged_policy(actor.model, tmp / "policy", rank)
    else:
        strategy.save_model(actor, processor.tokenizer, str(tmp / "policy"))
    if rank == 0:
        processor.save_pretrained(str(tmp / "policy"))
        record_image_size(tmp / "policy", image_size)
    # with adapters, the base is model.path's: the state holds the adapters and their optimizer only
    actor.model.save_checkpoint(str(tmp / "deepspeed"), tag="state", save_latest=False,
                                exclude_frozen_parameters=adapters)
    torch.save(torch.get_rng_state(), tmp / f"rng-rank{rank}.pt")


def _seal(run_dir: Path, tmp: Path, final: Path, steps_done: int, keep: int) -> None:
    """Rank 0, once every rank's files are in: the step count, the manifest, the rename into place."""
    atomic_write_json(tmp / STATE_FILE, {"steps_done": steps_done})
    write_manifest(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    prune(run_dir, keep)


# How the writers that do not raise OSError report one: safetensors ("I/O error: File too large (os
# error 27)"), torch.save ("PytorchStreamWriter failed writing file data/0: file write failed", or
# "basic_ios::clear: iostream error" followed by "[enforce fail at inline_container.cc] unexpected pos").
_WRITE_FAILURES = ("I/O error", "file write failed", "PytorchStreamWriter failed", "iostream error", "unexpected pos")


def _guarded(write: Callable[[], None], folder: Path) -> str | None:
    """``None``, or the one-line account of the file system error ``write`` raised while writing
    into ``folder`` (which is named where the error names no file)."""
    try:
        write()
    except OSError as exc:
        return f"{exc.filename or folder}: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - only the write failures above are caught; the rest re-raised
        if not any(words in str(exc) for words in _WRITE_FAILURES):
            raise
        return f"{folder}: a write failed, {_space_left(folder)} ({' '.join(str(exc).split())[:200]})"
    return None


def _space_left(folder: Path) -> str:
    """What limits writing under ``folder``: a file size limit (``ulimit -f``), else its free space."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        return f"with files limited to {limit:,} bytes (ulimit -f)"
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    return f"with {shutil.disk_usage(existing).free / 2**20:,.0f} MiB free on its disk"


def _all_failures(failure: str | None) -> list[str]:
    """Every rank's failure (collective: a barrier too), so that all ranks stop together."""
    if not (dist.is_available() and dist.is_initialized()):
        return [failure] if failure else []
    gathered: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, failure)
    return [f for f in gathered if f]


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """About the size of one checkpoint: the policy's weights as saved, and for each trained weight
    its fp32 copy and Adam's two moments in the engine state."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return weights + 12 * trained


def check_disk_space(run_dir: Path, per_checkpoint: int, keep: int, free: int | None = None) -> None:
    """Refuse to start when ``keep`` checkpoints and the one being written do not fit in the free
    space under ``run_dir`` (``free``: measured when not given)."""
    free = shutil.disk_usage(run_dir).free if free is None else free
    need = per_checkpoint * (keep + 1)
    if need > free:
        raise FadtqError(f"output.dir {run_dir}: {free / 2**30:.2f} GiB free, but a checkpoint takes about "
                         f"{per_checkpoint / 2**30:.2f} GiB and {keep} are kept (output.keep_checkpoints) while "
                         f"one more is written: {need / 2**30:.2f} GiB; free some space or keep fewer")


def prune(run_dir: Path, keep: int) -> None:
    """Keep the ``keep`` newest complete checkpoints; drop leftovers of interrupted saves."""
    folder = checkpoints_dir(run_dir)
    complete = sorted(p for p in folder.iterdir() if _COMPLETE.match(p.name))
    for old in complete[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in folder.glob("*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def save_merged_policy(engine, folder: Path, rank: int) -> None:
    """The policy with its adapters merged in, as an ordinary Hugging Face model folder (rank 0)."""
    params = [p for p in engine.module.parameters() if hasattr(p, "ds_id")]
    gathered = contextlib.nullcontext()
    if params:  # ZeRO-3: every rank takes part in gathering the partitions
        import deepspeed

        gathered = deepspeed.zero.GatheredParameters(params)
    with gathered:
        if rank == 0:
            unwrapped(engine).save_pretrained(folder, state_dict=merged_state_dict(engine))


def load_checkpoint(checkpoint: Path, actor, rank: int) -> int:
    """Restore engine state and this rank's RNG; returns the number of completed steps. With
    adapters the state holds only theirs (the base weights are the ones loaded from model.path)."""
    actor.model.load_checkpoint(str(checkpoint / "deepspeed"), tag="state",
                                load_module_strict=not has_adapters(actor.model),
                                load_optimizer_states=True, load_lr_scheduler_states=True)
    rng = checkpoint / f"rng-rank{rank}.pt"
    if rng.is_file():
        torch.set_rng_state(torch.load(rng))
    return int(json.loads((checkpoint / STATE_FILE).read_text())["steps_done"])
