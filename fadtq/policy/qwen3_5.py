"""The Qwen3.5 family: natively multimodal, Qwen3-VL's processor, vision tower (without DeepStack)
and interleaved multimodal RoPE over a hybrid language model, gated delta net linear attention in
three layers of four and full attention in the fourth.

Its cache holds a linear-attention layer's recurrent state, which transformers overwrites in place;
the prompt cache gets a cache that replaces it instead (:mod:`fadtq.policy.linear_attention_cache`).
vLLM's CPU build runs the gated delta net in bf16 only ("CPU GDN attention requires BF16"), and its
hybrid cache needs prefix caching off where chunked prefill is (the vllm engine's CPU setting:
"Chunked prefill is required for mamba cache mode 'align'").
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from fadtq.policy import qwen_vl
from fadtq.policy.family import ModelFamily
from fadtq.policy.qwen3_vl import image_only_vllm_info

if TYPE_CHECKING:
    import torch
    from transformers import Cache


GATED_DELTA_NET_CPU_HEAD_SIZES = (64, 128)


def cpu_refusal(text_config: dict) -> str | None:
    """vLLM's CPU gated delta net kernel takes linear-attention heads of 64 or 128 only."""
    sizes = sorted({text_config.get("linear_key_head_dim", 128), text_config.get("linear_value_head_dim", 128)})
    if set(sizes) <= set(GATED_DELTA_NET_CPU_HEAD_SIZES):
        return None
    return (f"linear attention head sizes {sizes}: vLLM's CPU gated delta net takes "
            f"{' or '.join(map(str, GATED_DELTA_NET_CPU_HEAD_SIZES))}")


def prompt_cache(model: torch.nn.Module) -> Cache:
    """An empty cache for ``model`` whose linear-attention states gradients can flow through."""
    from fadtq.policy.linear_attention_cache import StateReplacingCache

    return StateReplacingCache(config=getattr(model, "module", model).config)


QWEN3_5 = ModelFamily(
    name="qwen3_5",
    model_types=("qwen3_5",),
    load_processor=functools.partial(qwen_vl.load_processor,
                                     "transformers.models.qwen3_vl.processing_qwen3_vl:Qwen3VLProcessor"),
    **qwen_vl.FAMILY_FIELDS,
    new_cache=prompt_cache,
    vllm_architectures=("Qwen3_5ForConditionalGeneration",),
    vllm_modules=("vllm.model_executor.models.qwen3_5",),
    vllm_processing_infos=("Qwen3_5ProcessingInfo",),
    vllm_patch=image_only_vllm_info,
    vllm_cpu_args={"dtype": "bfloat16", "enable_prefix_caching": False},
    vllm_cpu_refusal=cpu_refusal,
)
