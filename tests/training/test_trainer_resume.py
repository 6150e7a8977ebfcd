"""Resume after SIGKILL: the same final step, each step logged once, the same data order and the
same final weights as an uninterrupted run with the same config.

Run A goes uninterrupted; run B is SIGKILLed as soon as its first complete checkpoint exists (the
run is still going: more steps and checkpoints follow), then continued with ``--resume``. Both
runs use the test-only ``signal`` reward, so every step really changes the weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from trainer_testlib import (SIGNAL_REWARD, complete_checkpoints, kill_group, ok, policy_state, popen, python_cmd,
                             rows, run, wait_for)

STEPS = 6
ARGS = ("--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--train.max_steps", str(STEPS), "--output.save_every", "2",
        "--output.samples_per_step", "16")


@pytest.fixture(scope="module")
def runs(train_env, model_args, tmp_path_factory) -> tuple[Path, Path, dict]:
    out = tmp_path_factory.mktemp("resume")
    a, b = out / "a", out / "b"
    proc_a = popen(python_cmd(*ARGS, *model_args, "--output.dir", out, "--output.name", "a"), train_env, out / "a.log")
    proc_b = popen(python_cmd(*ARGS, *model_args, "--output.dir", out, "--output.name", "b"), train_env, out / "b.log")
    try:
        wait_for(lambda: complete_checkpoints(b), timeout=240, proc=proc_b)
        killed_with = [c.name for c in complete_checkpoints(b)]
        kill_group(proc_b)
        assert proc_b.returncode == -9
        assert proc_a.wait(timeout=240) == 0, (out / "a.log").read_text()[-4000:]
    finally:
        for proc in (proc_a, proc_b):
            kill_group(proc)
    killed = {"checkpoints": killed_with, "steps_logged": [r["step"] for r in rows(b / "metrics.jsonl")]}
    started = time.monotonic()
    ok(run(python_cmd("--resume", b), train_env, timeout=240))
    killed["resume_s"] = time.monotonic() - started
    return a, b, killed


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


def test_a_damaged_last_checkpoint_falls_back_to_the_one_before_and_ends_the_same(runs, train_env):
    """Run A's last checkpoint gets a half-written RNG file: ``--resume`` says so in one line,
    resumes from the checkpoint before, and redoes the last steps to the very same weights."""
    a, _, _ = runs
    final = policy_state(a / "final")
    rng = a / "checkpoints" / f"step-{STEPS:06d}" / "rng-rank0.pt"
    rng.write_bytes(rng.read_bytes()[:-16])
    result = ok(run(python_cmd("--resume", a), train_env, timeout=240))
    warnings = [line for line in result.stderr.splitlines() if "falling back" in line]
    assert len(warnings) == 1 and "rng-rank0.pt has" in warnings[0], result.stderr[-3000:]
    assert f"resumed from {a / 'checkpoints' / f'step-{STEPS - 2:06d}'}" in result.stderr
    resumed = policy_state(a / "final")
    assert all(torch.equal(final[k], resumed[k]) for k in final)
    assert [r["step"] for r in rows(a / "metrics.jsonl")] == list(range(STEPS))
