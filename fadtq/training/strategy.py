"""Building OpenRLHF's ``DeepspeedStrategy`` and ``Actor`` the same way on a CPU and on GPUs.

Call :func:`fadtq.training.cpu_compat.apply` before importing this module: OpenRLHF does not
import without flash-attn otherwise.

Two CPU specifics live here rather than in ``cpu_compat`` because they are choices, not fixes:

- the optimizer is ``torch.optim.AdamW`` (DeepSpeed's ``torch_adam``) when CUDA is absent:
  OpenRLHF's optimizer section has no such key, and DeepSpeed's FusedAdam would be JIT-compiled
  for the CPU (about 100 s). ``FADTQ_TORCH_ADAM=1`` asks for it on GPUs too, where DeepSpeed cannot
  JIT-compile FusedAdam (no nvcc, or one that does not match torch's CUDA);
- ``param_dtype="fp32"`` is accepted: ``Actor`` only loads bf16/fp16, so the model is loaded in
  bf16 and its checkpoint weights are then loaded again in float32, exactly.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch
from openrlhf.models import Actor
from openrlhf.utils.deepspeed import DeepspeedStrategy
from transformers import AutoModelForImageTextToText

from fadtq.errors import FadtqError
from fadtq.policy.distinct_images import encode_distinct_images

PARAM_DTYPES = ("fp32", "bf16", "fp16")


class FadtqDeepspeedStrategy(DeepspeedStrategy):
    """``DeepspeedStrategy`` whose Adam is plain torch when CUDA is absent or ``FADTQ_TORCH_ADAM=1``,
    with ZeRO-Offload of the optimizer and of the weights as ``offload`` says."""

    offload: dict[str, bool] = {}

    def get_ds_train_config(self, optim_dict: dict | None = None, *, max_norm: float | None = None) -> dict:
        config = super().get_ds_train_config(optim_dict, max_norm=max_norm)
        if "optimizer" in config and (not torch.cuda.is_available() or os.environ.get("FADTQ_TORCH_ADAM") == "1"):
            config["optimizer"]["params"]["torch_adam"] = True
        zero = config["zero_optimization"]
        for part, on in self.offload.items():
            zero[part] = {**zero.get(part, {}), "device": "cpu" if on else "none"}
        return config


def offload_parts(offload_optimizer: bool, offload_param: bool, cuda: bool) -> tuple[dict[str, bool], str | None]:
    """What ZeRO-Offload moves to CPU memory here, and the line to say when a setting means nothing:
    without GPUs the optimizer and the weights live in CPU memory already, and DeepSpeed's CPU Adam
    and offload paths are for GPU machines."""
    asked = {"offload_optimizer": offload_optimizer, "offload_param": offload_param}
    if cuda or not any(asked.values()):
        return asked, None
    named = " and ".join(f"deepspeed.{part}" for part, on in asked.items() if on)
    return {part: False for part in asked}, (f"{named}: ignored on a machine without GPUs (the optimizer and "
                                             "the weights are in CPU memory already)")


def build_strategy(
    *,
    zero_stage: int,
    micro_train_batch_size: int,
    train_batch_size: int,
    param_dtype: str,
    seed: int = 42,
    max_norm: float = 1.0,
    offload: dict[str, bool] | None = None,
) -> FadtqDeepspeedStrategy:
    """A strategy with distributed set-up done (gloo on CPU, NCCL on GPUs); ``offload``: the parts
    ZeRO-Offload moves to CPU memory (:func:`offload_parts`)."""
    if param_dtype not in PARAM_DTYPES:
        raise FadtqError(f"--param_dtype {param_dtype}: expected one of {', '.join(PARAM_DTYPES)}")
    args = SimpleNamespace(
        local_rank=-1,
        ds=SimpleNamespace(param_dtype=param_dtype, zero_stage=zero_stage, tensor_parallel_size=1),
        train=SimpleNamespace(dynamic_batch_enable=False),
    )
    strategy = FadtqDeepspeedStrategy(
        seed=seed,
        max_norm=max_norm,
        micro_train_batch_size=micro_train_batch_size,
        train_batch_size=train_batch_size,
        zero_stage=zero_stage,
        args=args,
    )
    strategy.offload = dict(offload or {})
    strategy.setup_distributed()
    return strategy


def build_actor(path: str, param_dtype: str, attn_implementation: str, ds_config: dict | None = None) -> Actor:
    """An OpenRLHF ``Actor`` around the checkpoint in ``path``, its weights in ``param_dtype``, encoding
    each distinct image of a forward pass once (a group's rollouts share their images)."""
    if param_dtype not in PARAM_DTYPES:
        raise FadtqError(f"--param_dtype {param_dtype}: expected one of {', '.join(PARAM_DTYPES)}")
    load_dtype = "bf16" if param_dtype == "fp32" else param_dtype
    # fp32 is loaded whole and made exact here; DeepSpeed partitions it afterwards under ZeRO-3
    # (ds_config would have the Actor partition it at construction, in bf16, before the reload).
    actor = Actor(path, attn_implementation=attn_implementation, param_dtype=load_dtype,
                  ds_config=None if param_dtype == "fp32" else ds_config)
    if param_dtype == "fp32":
        exact = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).state_dict()
        actor.model.to(torch.float32).load_state_dict(exact)
    encode_distinct_images(actor.model)
    return actor

