"""The SmolVLM family (Hugging Face's SmolVLM and SmolVLM2): a SigLIP vision tower, a pixel-shuffle
connector and a Llama language model with plain rotary positions.

Images: the processor pads a ``(rows, images, 3, H, W)`` tensor with all-zero images where a row
has fewer images, and the model drops such images before its tower; here each real image is one
entry (:mod:`fadtq.policy.image_tensors`), as the model encodes it. The policy's processor does
not split an image into tiles (``do_image_splitting: false``), so each image is one global view
of ``image_seq_len`` tokens between ``<fake_token_around_image>`` markers.

Processor: transformers' ``SmolVLMProcessor`` needs ``num2words`` (to word a video's frame count)
and a video processor (which needs torchvision). The policy sees images only, so where either is
missing the same processor is built without its video part.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import torch

from fadtq.policy.family import ModelFamily
from fadtq.policy.image_tensors import ImageTensors
from fadtq.policy.torchvision_check import torchvision_works

VISION_CONTROL_TOKENS = ("<image>", "<fake_token_around_image>", "<global-img>")


@functools.cache
def image_only_processor_class() -> type:
    """``SmolVLMProcessor`` without its video processor and without ``num2words``: it keeps the
    full class's name, so a saved folder names the full class for machines that have both."""
    from transformers import ProcessorMixin
    from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor

    def __init__(self, image_processor=None, tokenizer=None, image_seq_len: int = 169, chat_template=None,
                 **kwargs) -> None:
        self.fake_image_token = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
        self.image_token = getattr(tokenizer, "image_token", "<image>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.end_of_utterance_token = getattr(tokenizer, "end_of_utterance_token", "<end_of_utterance>")
        self.global_image_token = getattr(tokenizer, "global_image_token", "<global-img>")
        self.video_token = getattr(tokenizer, "video_token", "<video>")
        self.image_seq_len = image_seq_len
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def apply_chat_template(self, conversation, chat_template=None, **kwargs):
        """The tokenizer's template (the full class's asks the absent video processor for its frame rate)."""
        return self.tokenizer.apply_chat_template(conversation, chat_template=chat_template or self.chat_template,
                                                  **kwargs)

    return type("SmolVLMProcessor", (SmolVLMProcessor,), {
        "__init__": __init__, "apply_chat_template": apply_chat_template,
        "__doc__": "SmolVLMProcessor without its video processor."})


def load_processor(path: Path):
    """``AutoProcessor`` where the full processor can be built, else the image-only one from the
    folder's tokenizer, PIL image processor and ``image_seq_len``."""
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    if torchvision_works() and importlib.util.find_spec("num2words") is not None:
        return AutoProcessor.from_pretrained(str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    saved = path / "processor_config.json"
    options = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {}
    return image_only_processor_class()(
        image_processor=SmolVLMImageProcessorPil.from_pretrained(str(path)), tokenizer=tokenizer,
        image_seq_len=options.get("image_seq_len", 169), chat_template=tokenizer.chat_template)


def _real_images(pixel_values: torch.Tensor) -> torch.Tensor:
    """``(rows, images)``: which entries of ``pixel_values`` are images, not all-zero padding (where
    all are padding, the model keeps the first)."""
    real = pixel_values.flatten(2).ne(0).any(dim=-1)
    real.view(-1)[0] |= ~real.any()
    return real


def image_tensors(inputs) -> ImageTensors:
    """The real images of ``pixel_values`` ``(rows, images, 3, H, W)`` (padding dropped, as the
    model drops it) with their pixel masks: an image split into tiles is one image per tile."""
    real = _real_images(inputs["pixel_values"]).flatten()
    pixels = inputs["pixel_values"].flatten(0, 1)
    mask = inputs.get("pixel_attention_mask")
    mask = torch.ones((len(pixels), *pixels.shape[2:]), dtype=torch.bool, device=pixels.device) \
        if mask is None else mask.flatten(0, 1)
    return ImageTensors(per_patch={"pixel_values": pixels[real], "pixel_attention_mask": mask[real]}, per_image={},
                        patches=torch.ones(int(real.sum()), dtype=torch.long, device=pixels.device))


def row_images(inputs) -> torch.Tensor:
    return _real_images(inputs["pixel_values"]).sum(dim=1)


def image_kwargs(images: ImageTensors) -> dict:
    """All images as one row of the model's ``(rows, images, ...)`` layout: the model flattens
    rows and images, and places the images' tokens in order."""
    return {key: value.unsqueeze(0) for key, value in images.per_patch.items()}


def plain_positions(model, input_ids, attention_mask, token_inputs, images):
    """``(rows, length)``: each row's tokens counted from its first one after the left padding (as
    vLLM numbers a prompt; padding at 0)."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


SMOLVLM = ModelFamily(
    name="smolvlm",
    model_types=("smolvlm",),
    load_processor=load_processor,
    token_keys=(),
    image_tensors=image_tensors,
    row_images=row_images,
    image_kwargs=image_kwargs,
    positions=plain_positions,
    vision_control_tokens=VISION_CONTROL_TOKENS,
    vision_tower="vision_model",
    vllm_architectures=("SmolVLMForConditionalGeneration",),
    vllm_modules=("vllm.model_executor.models.smolvlm",),
    vllm_processing_infos=("SmolVLMProcessingInfo",),
)
