"""The Qwen3-VL family: Qwen2.5-VL's processor layout and positions (interleaved multimodal RoPE,
``mrope_interleaved`` in the config), a vision tower whose intermediate layers also feed the
language model's first layers (DeepStack: ``deepstack_features``, one per image like the merged
image tokens)."""

from __future__ import annotations

import functools

from fadtq.policy import qwen_vl
from fadtq.policy.family import ModelFamily


def image_only_vllm_info(info_class: type) -> None:
    """Qwen3-VL's vLLM processing info (and Qwen3.5's, derived from it) asks its video processor for
    the routing of processor arguments and for its token budget: both are read for images alone, as
    Qwen2-VL's info reads them."""
    from vllm.multimodal.processing import BaseProcessingInfo

    info_class.get_supported_mm_processor_kwargs = BaseProcessingInfo.get_supported_mm_processor_kwargs
    info_class.get_mm_max_tokens_per_item = lambda self, seq_len, mm_counts: {"image": self.get_max_image_tokens()}


QWEN3_VL = ModelFamily(
    name="qwen3_vl",
    model_types=("qwen3_vl",),
    load_processor=functools.partial(qwen_vl.load_processor,
                                     "transformers.models.qwen3_vl.processing_qwen3_vl:Qwen3VLProcessor"),
    **qwen_vl.FAMILY_FIELDS,
    per_image_outputs=("pooler_output", "deepstack_features"),
    vllm_architectures=("Qwen3VLForConditionalGeneration",),
    vllm_modules=("vllm.model_executor.models.qwen3_vl",),
    vllm_processing_infos=("Qwen3VLProcessingInfo",),
    vllm_patch=image_only_vllm_info,
)
