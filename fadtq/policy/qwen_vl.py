"""What Qwen's vision-language families share: the image-only processor and multimodal RoPE positions.

Processor: on a machine with a working torchvision, ``AutoProcessor`` rebuilds the checkpoint's own
processor. Without torchvision, transformers 5.19 cannot build a Qwen-VL processor at all: its
``__init__`` declares a video processor, and the video processor needs torchvision. The policy only
ever sees images, so there the same processor is built without the video part, from the
checkpoint's tokenizer and PIL image processor.

Positions: Qwen's multimodal RoPE gives every token three positions (time, height, width), derived
by the model's ``get_rope_index`` from the images of the *whole* sequence; a forward over the
completions alone cannot derive them, so the prompt cache passes them explicitly.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

import torch

from fadtq.policy.adapters import unwrapped
from fadtq.policy.image_tensors import ImageTensors
from fadtq.policy.torchvision_check import torchvision_works

VISION_CONTROL_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


@functools.cache
def image_only_processor_class(processor_class: str) -> type:
    """``processor_class`` (``module:Class``) without the video processor: ``ProcessorMixin`` derives
    the processor's parts from the ``__init__`` signature, so leaving ``video_processor`` out of it
    is what makes the class constructible without torchvision. It keeps the full class's name, so a
    saved checkpoint names the full class and ``AutoProcessor`` rebuilds that where torchvision
    works. Built on first use: the family modules import no model code."""
    module, name = processor_class.split(":")
    full = getattr(importlib.import_module(module), name)

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs) -> None:
        full.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return type(name, (full,), {"__init__": __init__, "__doc__": f"{name} without its video processor."})


def load_processor(processor_class: str, path: Path):
    """``AutoProcessor`` where torchvision works, else the image-only ``processor_class`` from the
    folder's tokenizer and PIL image processor."""
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if torchvision_works():
        return AutoProcessor.from_pretrained(str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return image_only_processor_class(processor_class)(
        image_processor=Qwen2VLImageProcessorPil.from_pretrained(str(path)), tokenizer=tokenizer,
        chat_template=tokenizer.chat_template)


TOKEN_KEYS = ("mm_token_type_ids",)


def image_tensors(inputs) -> ImageTensors:
    """Qwen's flat patches (``pixel_values``) and per-image patch grids (``image_grid_thw``)."""
    grid = inputs["image_grid_thw"]
    return ImageTensors(per_patch={"pixel_values": inputs["pixel_values"]}, per_image={"image_grid_thw": grid},
                        patches=grid.prod(dim=-1))


def row_images(inputs) -> torch.Tensor:
    """Each row's images: its runs of image tokens (``mm_token_type_ids`` 1)."""
    image = inputs["mm_token_type_ids"] == 1
    starts = image[:, 1:] & ~image[:, :-1]
    return starts.sum(dim=1) + image[:, 0].long()


def image_kwargs(images: ImageTensors) -> dict:
    return {"pixel_values": images.per_patch["pixel_values"], "image_grid_thw": images.per_image["image_grid_thw"]}


def positions(model, input_ids, attention_mask, token_inputs, images: ImageTensors):
    """The ``(3, rows, length)`` positions of Qwen's multimodal RoPE, from ``get_rope_index``."""
    rope, _ = unwrapped(model).model.get_rope_index(
        input_ids, mm_token_type_ids=token_inputs["mm_token_type_ids"],
        image_grid_thw=images.per_image["image_grid_thw"], attention_mask=attention_mask)
    return rope


# What every Qwen family declares alike: its inputs, positions, control tokens and tower.
FAMILY_FIELDS = {"token_keys": TOKEN_KEYS, "image_tensors": image_tensors, "row_images": row_images,
                 "image_kwargs": image_kwargs, "positions": positions,
                 "vision_control_tokens": VISION_CONTROL_TOKENS, "vision_tower": "visual"}
