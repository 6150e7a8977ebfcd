"""The step's metrics reduced over two real ranks (gloo) whose key sets differ.

With a few prompts per rank, one rank may have no correct answer, hence no gated reward's mean:
reducing key by key then left the ranks in different collectives, and training hung (seen with
``rollout.prompts_per_step 8`` on two ranks)."""

from __future__ import annotations

import multiprocessing
import socket

import pytest

from fadtq.training.step_metrics import reduce_over_ranks

LOCAL = [
    {"accuracy": 0.5, "reward/tq": 0.8, "judge/calls": 3.0, "sampling/dropped_groups": 1.0},
    {"accuracy": 0.25, "judge/calls": 2.0, "judge/failed": 1.0, "sampling/dropped_groups": 2.0},
]


def _rank(rank: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        first = reduce_over_ranks(LOCAL[rank])
        second = reduce_over_ranks({"accuracy": float(rank)})  # the ranks still agree on the next call
        queue.put((rank, first, second))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ranks_with_different_metrics_reduce_to_the_same_union_without_hanging():
    context = multiprocessing.get_context("spawn")
    queue, port = context.Queue(), _free_port()
    processes = [context.Process(target=_rank, args=(rank, port, queue)) for rank in range(2)]
    for process in processes:
        process.start()
    results = {}
    for _ in processes:
        rank, first, second = queue.get(timeout=120)
        results[rank] = (first, second)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    expected = {"accuracy": 0.375,  # averaged over both ranks
                "reward/tq": 0.8,  # averaged over the one rank that logged it
                "judge/calls": 5.0, "judge/failed": 1.0, "sampling/dropped_groups": 3.0}  # counts summed
    for first, second in results.values():
        assert first == pytest.approx(expected)
        assert second == pytest.approx({"accuracy": 0.5})


def test_one_process_keeps_its_metrics():
    assert reduce_over_ranks({"accuracy": 0.5, "judge/calls": 2.0}) == {"accuracy": 0.5, "judge/calls": 2.0}
