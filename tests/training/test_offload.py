"""ZeRO-Offload settings: on GPU machines they reach DeepSpeed's config; without GPUs they mean
nothing, are left out and named in one line."""

from __future__ import annotations

from fadtq.training import cpu_compat

cpu_compat.apply()  # OpenRLHF imports only after it on a machine without flash-attn

from fadtq.training.strategy import FadtqDeepspeedStrategy, offload_parts  # noqa: E402


def test_on_gpus_the_asked_parts_are_offloaded():
    parts, line = offload_parts(offload_optimizer=True, offload_param=True, cuda=True)
    assert parts == {"offload_optimizer": True, "offload_param": True} and line is None


def test_without_gpus_offload_is_one_line_naming_the_keys():
    parts, line = offload_parts(offload_optimizer=True, offload_param=False, cuda=False)
    assert parts == {"offload_optimizer": False, "offload_param": False}
    assert line.startswith("deepspeed.offload_optimizer: ignored on a machine without GPUs")
    assert offload_parts(False, False, cuda=False) == ({"offload_optimizer": False, "offload_param": False}, None)


def test_the_deepspeed_config_carries_the_offload_devices():
    from types import SimpleNamespace

    strategy = FadtqDeepspeedStrategy(seed=0, max_norm=1.0, micro_train_batch_size=1, train_batch_size=2, zero_stage=3,
                                      args=SimpleNamespace(local_rank=-1, train=SimpleNamespace(dynamic_batch_enable=False),
                                                           ds=SimpleNamespace(param_dtype="bf16", zero_stage=3,
                                                                              tensor_parallel_size=1)))
    strategy.offload = {"offload_optimizer": True, "offload_param": True}
    zero = strategy.get_ds_train_config()["zero_optimization"]
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    assert zero["offload_optimizer"]["pin_memory"] is True and zero["stage"] == 3
