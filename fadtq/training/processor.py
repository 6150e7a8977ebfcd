"""Loading the policy's processor (tokenizer + image processor + chat template) from a model folder.

On a machine with a working torchvision, ``AutoProcessor`` rebuilds the checkpoint's own processor
(``Qwen2_5_VLProcessor`` for Qwen2.5-VL). Without torchvision, transformers 5.19 cannot build that
class at all: its ``__init__`` declares a video processor, and the video processor needs
torchvision. The policy only ever sees images, so here the same processor is built without the
video part (:class:`ImageOnlyQwenVLProcessor`), from the checkpoint's tokenizer and PIL image
processor.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoProcessor, AutoTokenizer, ProcessorMixin
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from fadtq.data.dataset import record_image_size
from fadtq.errors import FadtqError
from fadtq.generation.vllm_compat import torchvision_works


class ImageOnlyQwenVLProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` without the video processor.

    ``ProcessorMixin`` derives the processor's parts from the ``__init__`` signature, so leaving
    ``video_processor`` out of it is what makes the class constructible without torchvision.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def load_processor(path: str | Path) -> ProcessorMixin:
    """The processor stored in ``path``: ``AutoProcessor`` where it works, image-only otherwise."""
    path = Path(path)
    if not (path / "tokenizer_config.json").is_file():
        raise FadtqError(f"{path}: no tokenizer_config.json; expected a Hugging Face model folder")
    if torchvision_works():
        return AutoProcessor.from_pretrained(str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(path))
    return ImageOnlyQwenVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )


def save_policy(model, processor: ProcessorMixin, folder: Path, image_size: int | None) -> Path:
    """A policy folder evaluation can use as it is: weights, processor and the training image size."""
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    record_image_size(folder, image_size)
    return folder
