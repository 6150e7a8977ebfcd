"""The Qwen2.5-VL family (and Qwen2-VL, which shares its processor and positions)."""

from __future__ import annotations

import functools

from fadtq.policy import qwen_vl
from fadtq.policy.family import ModelFamily

QWEN2_5_VL = ModelFamily(
    name="qwen2_5_vl",
    model_types=("qwen2_5_vl", "qwen2_vl"),
    load_processor=functools.partial(
        qwen_vl.load_processor, "transformers.models.qwen2_5_vl.processing_qwen2_5_vl:Qwen2_5_VLProcessor"),
    **qwen_vl.FAMILY_FIELDS,
    vllm_architectures=("Qwen2_5_VLForConditionalGeneration", "Qwen2VLForConditionalGeneration"),
    vllm_modules=("vllm.model_executor.models.qwen2_5_vl", "vllm.model_executor.models.qwen2_vl"),
    vllm_processing_infos=("Qwen2VLProcessingInfo", "Qwen2_5_VLProcessingInfo"),
)
