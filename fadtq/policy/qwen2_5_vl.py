"""The Qwen2.5-VL family (and Qwen2-VL, which shares its processor and positions).

Processor: on a machine with a working torchvision, ``AutoProcessor`` rebuilds the checkpoint's
own processor. Without torchvision, transformers 5.19 cannot build ``Qwen2_5_VLProcessor`` at all:
its ``__init__`` declares a video processor, and the video processor needs torchvision. The policy
only ever sees images, so there the same processor is built without the video part
(:func:`image_only_processor_class`), from the checkpoint's tokenizer and PIL image processor.

Positions: Qwen's multimodal RoPE gives every token three positions (time, height, width), derived
by the model's ``get_rope_index`` from the images of the *whole* sequence; a forward over the
completions alone cannot derive them, so the prompt cache passes them explicitly.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fadtq.policy.family import ModelFamily


@functools.cache
def image_only_processor_class() -> type:
    """``Qwen2_5_VLProcessor`` without the video processor: ``ProcessorMixin`` derives the processor's
    parts from the ``__init__`` signature, so leaving ``video_processor`` out of it is what makes the
    class constructible without torchvision. Built on first use: this module imports no model code."""
    from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor

    class ImageOnlyQwenVLProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs) -> None:
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return ImageOnlyQwenVLProcessor


def load_processor(path: Path):
    """``AutoProcessor`` where torchvision works, else the image-only processor from the folder's
    tokenizer and PIL image processor."""
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from fadtq.policy.torchvision_check import torchvision_works

    if torchvision_works():
        return AutoProcessor.from_pretrained(str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return image_only_processor_class()(image_processor=Qwen2VLImageProcessorPil.from_pretrained(str(path)),
                                        tokenizer=tokenizer, chat_template=tokenizer.chat_template)


def rope_positions(model, input_ids, mm_token_type_ids, image_grid_thw, attention_mask):
    """The ``(3, rows, length)`` positions of Qwen's multimodal RoPE, from ``get_rope_index``."""
    positions, _ = getattr(model, "module", model).model.get_rope_index(
        input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=image_grid_thw, attention_mask=attention_mask)
    return positions


QWEN2_5_VL = ModelFamily(
    name="qwen2_5_vl",
    model_types=("qwen2_5_vl", "qwen2_vl"),
    load_processor=load_processor,
    rope_positions=rope_positions,
    vision_control_tokens=("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"),
    vision_tower="visual",
    vllm_architectures=("Qwen2_5_VLForConditionalGeneration", "Qwen2VLForConditionalGeneration"),
    vllm_modules=("vllm.model_executor.models.qwen2_5_vl", "vllm.model_executor.models.qwen2_vl"),
    vllm_processing_infos=("Qwen2VLProcessingInfo", "Qwen2_5_VLProcessingInfo"),
)
