"""Resume after SIGKILL: the same final step, each step logged once, the same data order and the
same final weights as an uninterrupted run with the same config.

Run A goes uninterrupted; run B is SIGKILLed as soon as its first complete checkpoint exists (the
run is still going: more steps and checkpoints follow), then continued with ``--resume``. Both
runs use the test-only ``signal`` reward, so every step really changes the weights.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from trainer_testlib import (CHECKPOINT_DAMAGES, SIGNAL_REWARD, complete_checkpoints, kill_group, ok, policy_state,
                             popen, python_cmd, rows, run)

STEPS = 6
ARGS = ("--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--train.max_steps", str(STEPS), "--output.save_every", "2",
        "--output.samples_per_step", "16")


FILE_LIMIT = 512 * 1024  # bytes: the logs of 6 steps fit, a checkpoint's weights (about 900 kB) do not


def at_first_checkpoint(out: Path, procs: dict[str, subprocess.Popen], actions: dict, timeout: float) -> dict:
    """Call ``actions[name](process)`` as soon as run ``name`` has a complete checkpoint; returns
    the checkpoints each run had then."""
    had, deadline = {}, time.monotonic() + timeout
    while len(had) < len(actions):
        for name in actions.keys() - had.keys():
            if complete_checkpoints(out / name):
                actions[name](procs[name])
                had[name] = [c.name for c in complete_checkpoints(out / name)]
            else:
                assert procs[name].poll() is None, (out / f"{name}.log").read_text()[-4000:]
        assert time.monotonic() < deadline, f"no checkpoint in {timeout} s"
        time.sleep(0.02)
    return had


def limit_file_size(proc: subprocess.Popen) -> None:
    """From now on the process cannot write a file larger than FILE_LIMIT (as ``ulimit -f``)."""
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


@pytest.fixture(scope="module")
def runs(train_env, model_args, tmp_path_factory) -> tuple[Path, Path, dict]:
    """Run a uninterrupted; b SIGKILLed at its first checkpoint, then resumed; c's files limited in
    size at its first checkpoint (a disk that fills), so that its next checkpoint fails."""
    out = tmp_path_factory.mktemp("resume")
    procs = {name: popen(python_cmd(*ARGS, *model_args, "--output.dir", out, "--output.name", name), train_env,
                         out / f"{name}.log") for name in "abc"}
    try:
        had = at_first_checkpoint(out, procs, {"b": kill_group, "c": limit_file_size}, timeout=240)
        assert procs["b"].returncode == -9
        for name in "ac":
            procs[name].wait(timeout=240)
    finally:
        for proc in procs.values():
            kill_group(proc)
    assert procs["a"].returncode == 0, (out / "a.log").read_text()[-4000:]
    b = out / "b"
    killed = {"checkpoints": had["b"], "steps_logged": [r["step"] for r in rows(b / "metrics.jsonl")],
              "full_disk": {"returncode": procs["c"].returncode, "checkpoints": had["c"],
                            "log": (out / "c.log").read_text(), "after": sorted(p.name for p in
                                                                                (out / "c" / "checkpoints").iterdir())}}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for resumed in list(pool.map(lambda folder: run(python_cmd("--resume", folder), train_env, 240), (b, out / "c"))):
            ok(resumed)
    return out / "a", b, killed


def test_killed_run_was_mid_run(runs):
    _, b, killed = runs
    assert killed["checkpoints"] and killed["checkpoints"][-1] != f"step-{STEPS:06d}"
    assert len(killed["steps_logged"]) < STEPS


def test_resumed_run_reaches_the_same_final_step_logging_each_step_once(runs):
    a, b, _ = runs
    for run_dir in (a, b):
        assert [r["step"] for r in rows(run_dir / "metrics.jsonl")] == list(range(STEPS))
        assert json.loads((run_dir / "checkpoints" / f"step-{STEPS:06d}" / "state.json").read_text()) == \
            {"steps_done": STEPS}
        assert (run_dir / "final").resolve() == (run_dir / "checkpoints" / f"step-{STEPS:06d}" / "policy").resolve()
        assert not list((run_dir / "checkpoints").glob("*.tmp"))


def _by_step(run_dir: Path) -> dict[int, list[dict]]:
    steps: dict[int, list[dict]] = {}
    for row in rows(run_dir / "samples.jsonl"):
        steps.setdefault(row["step"], []).append(row)
    return steps


def test_resumed_run_sees_the_same_prompts_in_the_same_order(runs):
    a, b, _ = runs
    samples_a, samples_b = _by_step(a), _by_step(b)
    assert sorted(samples_a) == sorted(samples_b) == list(range(STEPS))
    for step in range(STEPS):
        ids_a, ids_b = [s["id"] for s in samples_a[step]], [s["id"] for s in samples_b[step]]
        assert ids_a == ids_b, f"step {step}: prompts differ"
        assert len({i.split(":")[1] for i in ids_a}) == 4  # all 4 prompts of the step are in the sample
    # different steps see different prompts: the order is a real permutation, not one batch repeated
    assert len({tuple(s["id"].split(":")[1] for s in samples_a[k]) for k in range(STEPS)}) > 1


def test_resumed_run_samples_the_same_completions_and_ends_with_the_same_weights(runs):
    a, b, _ = runs
    samples_a, samples_b = _by_step(a), _by_step(b)
    for step in range(STEPS):  # restored RNG and optimizer: the very same rollouts
        assert [s["completion"] for s in samples_a[step]] == [s["completion"] for s in samples_b[step]], step
    metrics_a, metrics_b = rows(a / "metrics.jsonl"), rows(b / "metrics.jsonl")
    for ma, mb in zip(metrics_a, metrics_b):
        assert ma["reward/total"] == mb["reward/total"] and ma["loss/pg_loss"] == pytest.approx(mb["loss/pg_loss"])
    final_a, final_b = policy_state(a / "final"), policy_state(b / "final")
    assert final_a.keys() == final_b.keys()
    worst = max(float((final_a[k].float() - final_b[k].float()).abs().max()) for k in final_a)
    assert worst <= 1e-6, f"final weights differ by up to {worst}"
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a), f"not bit-identical (max diff {worst})"


def test_a_full_disk_is_one_line_and_the_run_resumes_to_the_same_weights(runs):
    """c could write no file over FILE_LIMIT from its first checkpoint on: it stopped at the next
    one with one error line, left no partial folder, and resumed from the checkpoint before to the
    very weights of the uninterrupted run."""
    a, _, killed = runs
    full = killed["full_disk"]
    assert full["returncode"] == 2, full["log"][-4000:]
    errors = [line for line in full["log"].splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in full["log"], full["log"][-4000:]
    written = full["checkpoints"][-1]
    failed = f"step-{int(written.split('-')[1]) + 2:06d}"
    assert errors[0].startswith(f"error: checkpoint {failed} could not be written: ")
    assert f"with files limited to {FILE_LIMIT:,} bytes (ulimit -f)" in errors[0]
    assert errors[0].endswith(f"the run continues with --resume {a.parent / 'c'} from {written}")
    assert full["after"] == full["checkpoints"]  # no .tmp left
    c = a.parent / "c"
    assert [r["step"] for r in rows(c / "metrics.jsonl")] == list(range(STEPS))
    final_a, final_c = policy_state(a / "final"), policy_state(c / "final")
    assert all(torch.equal(final_a[k], final_c[k]) for k in final_a)


@pytest.fixture(scope="module")
def damaged_resumes(runs, train_env, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Copies of run a, each with its last checkpoint damaged in one way, resumed two at a time."""
    out = tmp_path_factory.mktemp("damaged")
    copies = {}
    for number, (damage, (spoil, _)) in enumerate(CHECKPOINT_DAMAGES.items()):
        copies[damage] = Path(shutil.copytree(runs[0], out / str(number), symlinks=True))
        spoil(copies[damage] / "checkpoints" / f"step-{STEPS:06d}")
    results = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = {damage: pool.submit(run, python_cmd("--resume", copy), train_env, 240) for damage, copy in copies.items()}
        for damage, future in done.items():
            results[damage] = (copies[damage], future.result())
    return results


@pytest.mark.parametrize("damage", CHECKPOINT_DAMAGES)
def test_a_damaged_last_checkpoint_falls_back_to_the_one_before_and_ends_the_same(runs, damaged_resumes, damage):
    """Run a's last checkpoint damaged: ``--resume`` says so in one line, resumes from the
    checkpoint before, and redoes the last steps to the very same weights."""
    a, result = damaged_resumes[damage]
    ok(result)
    warnings = [line for line in result.stderr.splitlines() if "falling back" in line]
    assert len(warnings) == 1 and CHECKPOINT_DAMAGES[damage][1] in warnings[0], result.stderr[-3000:]
    assert f"resumed from {a / 'checkpoints' / f'step-{STEPS - 2:06d}'}" in result.stderr
    final, resumed = policy_state(runs[0] / "final"), policy_state(a / "final")
    assert all(torch.equal(final[k], resumed[k]) for k in final)
    assert [r["step"] for r in rows(a / "metrics.jsonl")] == list(range(STEPS))
