"""Short end-to-end runs through the real ``deepspeed`` launcher on CPU: 1 process and 2 (gloo).

Each leaves per-step metrics with every key a metrics row carries (trainer_testlib.METRIC_KEYS), samples, TensorBoard events and a
final checkpoint whose policy loads with transformers and our processor loader. With 2 ranks the
weights are fingerprinted on every rank after every step and must be identical everywhere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from fadtq.data.dataset import trained_image_size
from fadtq.run_config import load_run_config
from trainer_testlib import (METRIC_KEYS, SIGNAL_REWARD, complete_checkpoints, deepspeed_cmd, kill_group, policy_state,
                             popen, python_cmd, rows, side_by_side, two_rank_run_with_fingerprints)

ROLLOUTS_PER_STEP = 4 * 4  # cpu_default: 4 prompts x 4 rollouts
STEPS = 3
ARGS = ("--rewards", f"format,accuracy,tq,{SIGNAL_REWARD}", "--train.max_steps", str(STEPS), "--output.save_every", "1")


@pytest.fixture(scope="module")
def single_process_runs(train_env, model_args, tmp_path_factory) -> dict[str, Path]:
    """Two single-process runs side by side (a core each): ``one_rank`` through the launcher, and
    ``cosine`` with a cosine schedule of 4 steps."""
    out = tmp_path_factory.mktemp("e2e1")
    commands = {
        "one_rank": deepspeed_cmd(1, *ARGS, *model_args, "--output.dir", out, "--output.name", "one_rank"),
        "cosine": python_cmd(*model_args, "--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--train.max_steps", "4",
                             "--rollout.max_new_tokens", "8", "--train.lr_scheduler", "cosine",
                             "--train.min_lr_ratio", "0.1", "--output.dir", out, "--output.name", "cosine"),
    }
    side_by_side(commands, train_env, out)
    return {name: out / name for name in commands}


@pytest.fixture(scope="module")
def one_rank(single_process_runs) -> Path:
    return single_process_runs["one_rank"]


@pytest.fixture(scope="module")
def two_ranks(train_env, model_args, tmp_path_factory) -> tuple[Path, list[dict]]:
    return two_rank_run_with_fingerprints(tmp_path_factory.mktemp("e2e2"), (*ARGS, *model_args), train_env)


def check_run_folder(run_dir: Path, world: int) -> None:
    config = (run_dir / "config.yaml").read_text()
    assert SIGNAL_REWARD in config
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["reference_model"] is False and meta["loss"] == "policy_gradient"
    assert set(meta["template_hashes"]) == {"policy_question.j2"}  # the heuristic judge renders no template
    assert meta["plan"]["world"] == world and meta["plan"]["prompts_per_rank"] == 4 // world

    metrics = rows(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(STEPS))
    for m in metrics:
        missing = [k for k in METRIC_KEYS if k not in m]
        assert not missing, f"step {m['step']}: missing {missing}"
        # components computed on every rollout; tq is gated by accuracy (none right: never judged)
        for name in ("format", "accuracy", SIGNAL_REWARD):
            assert f"reward/{name}" in m
        assert ("reward/tq" in m) == (m["judge/judged"] > 0)
        # judge counts are summed over ranks: every rollout of the step is judged, skipped or failed
        assert m["judge/judged"] + m["judge/skipped"] + m["judge/failed"] == ROLLOUTS_PER_STEP
        assert m["judge/failed"] == 0
        assert 0 < m["length/tokens"] <= 48 and m["policy/entropy"] > 0
        assert m["optim/lr"] == pytest.approx(1e-4) and m["optim/grad_norm"] > 0
        assert all(m[k] >= 0 for k in ("time/generate", "time/score", "time/update"))
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["format_rate"] <= 1
    assert 0 < m["reward/total"]  # the signal reward is in the total

    samples = rows(run_dir / "samples.jsonl")
    assert {s["step"] for s in samples} == set(range(STEPS))
    assert all({"prompt", "completion", "rewards"} <= s.keys() for s in samples)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    # what the plugin logged reaches metrics.jsonl and TensorBoard as reward/<term>/<key>
    log_key = f"reward/{SIGNAL_REWARD}/mean_chars"
    assert all(m[log_key] > 0 for m in metrics)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars(log_key)] == list(range(STEPS))

    ckpts = complete_checkpoints(run_dir)
    assert [c.name for c in ckpts] == [f"step-{step:06d}" for step in (STEPS - 1, STEPS)]  # the 2 newest kept
    last = ckpts[-1]
    assert json.loads((last / "state.json").read_text()) == {"steps_done": STEPS}
    assert sorted(p.name for p in last.glob("rng-rank*.pt")) == [f"rng-rank{r}.pt" for r in range(world)]
    assert (last / "deepspeed").is_dir() and any((last / "deepspeed").rglob("*.pt"))
    assert not list((run_dir / "checkpoints").glob("*.tmp"))
    assert (run_dir / "final").resolve() == (last / "policy").resolve()
    # evaluation reads the image size the run trained at (loop.yaml's data.image_size)
    assert trained_image_size(last / "policy") == load_run_config(run_dir / "config.yaml").data.image_size


def check_policy_loads(policy: Path, initial: Path) -> torch.nn.Module:
    from transformers import AutoModelForImageTextToText

    from fadtq.policy.processor import load_processor

    model = AutoModelForImageTextToText.from_pretrained(policy)
    processor = load_processor(policy)
    assert processor.tokenizer is not None and processor.image_processor is not None
    trained, start = policy_state(policy), policy_state(initial)
    assert trained.keys() == start.keys()
    assert any(not torch.equal(trained[k], start[k]) for k in trained), "training did not move the weights"
    return model


def test_one_process_run_leaves_metrics_and_a_loadable_checkpoint(one_rank, tiny_model_dir):
    check_run_folder(one_rank, world=1)
    check_policy_loads(one_rank / "final", tiny_model_dir)


def test_two_process_run_leaves_metrics_and_a_loadable_checkpoint(two_ranks, tiny_model_dir):
    run_dir, _ = two_ranks
    check_run_folder(run_dir, world=2)
    check_policy_loads(run_dir / "final", tiny_model_dir)


def test_two_ranks_keep_identical_weights_at_every_step(two_ranks):
    import hashlib

    from transformers import AutoModelForImageTextToText

    run_dir, gathered = two_ranks
    assert sorted(g["rank"] for g in gathered) == [0, 1] and {g["world"] for g in gathered} == {2}
    rank0, rank1 = sorted(gathered, key=lambda g: g["rank"])
    assert len(rank0["steps"]) == len(rank1["steps"]) == STEPS
    for step, (a, b) in enumerate(zip(rank0["steps"], rank1["steps"])):
        differ = [name for name in a if a[name] != b[name]]
        assert a.keys() == b.keys() and not differ, f"step {step}: ranks differ in {differ[:5]}"
    assert rank0["steps"][0] != rank0["steps"][-1], "the later steps did not change the weights"
    # and what rank 0 saved is those weights
    saved = AutoModelForImageTextToText.from_pretrained(run_dir / "final", dtype=torch.float32)
    for name, p in saved.named_parameters():
        assert hashlib.sha256(p.detach().contiguous().numpy().tobytes()).hexdigest() == rank0["steps"][-1][name], name


def test_a_cosine_schedule_decays_the_learning_rate_to_its_floor(single_process_runs):
    lrs = [m["optim/lr"] for m in rows(single_process_runs["cosine"] / "metrics.jsonl")]
    assert lrs[0] == pytest.approx(1e-4)
    assert all(later < earlier for earlier, later in zip(lrs, lrs[1:])), lrs
    assert lrs[-1] >= 1e-5 - 1e-12, lrs


def test_two_nodes_of_one_rank_train_the_weights_of_one_node_of_two(two_ranks, train_env, model_args, tmp_path):
    """Two torchrun "nodes" on this machine, one rank each, meeting at 127.0.0.1: the final weights
    equal the one-node two-rank run's bit for bit."""
    from trainer_testlib import TRAIN, free_port

    port = str(free_port())
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    nodes = [popen([torchrun, "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(node), "--master_addr",
                    "127.0.0.1", "--master_port", port, str(TRAIN), *ARGS, *model_args, "--output.dir", tmp_path,
                    "--output.name", "nodes"], train_env, tmp_path / f"node{node}.log") for node in (0, 1)]
    try:
        for node, proc in enumerate(nodes):
            assert proc.wait(timeout=300) == 0, (tmp_path / f"node{node}.log").read_text()[-6000:]
    finally:
        for proc in nodes:
            kill_group(proc)
    assert json.loads((tmp_path / "nodes" / "metadata.json").read_text())["plan"]["world"] == 2
    one_node, two_nodes = policy_state(two_ranks[0] / "final"), policy_state(tmp_path / "nodes" / "final")
    assert one_node.keys() == two_nodes.keys() and all(torch.equal(one_node[k], two_nodes[k]) for k in one_node)
