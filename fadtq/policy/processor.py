"""Loading the policy's processor (tokenizer + image processor + chat template) from a model folder,
and saving a policy folder that evaluation and vLLM load as it is."""

from __future__ import annotations

from pathlib import Path

from transformers import ProcessorMixin

from fadtq.data.dataset import record_image_size
from fadtq.errors import FadtqError
from fadtq.policy.family import family_of_folder


def load_processor(path: str | Path) -> ProcessorMixin:
    """The processor stored in ``path``, built the way its model family builds it."""
    path = Path(path)
    if not (path / "tokenizer_config.json").is_file():
        raise FadtqError(f"{path}: no tokenizer_config.json; expected a Hugging Face model folder")
    return family_of_folder(path).load_processor(path)


def save_policy(model, processor: ProcessorMixin, folder: Path, image_size: int | None) -> Path:
    """A policy folder evaluation can use as it is: weights, processor and the training image size."""
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    record_image_size(folder, image_size)
    return folder
