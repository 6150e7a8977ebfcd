"""What a model family must tell the rest of the framework: the one place a family is named.

Every model-specific call sits behind :class:`ModelFamily`: how to build the processor, where the
rotary positions come from, which tokens are the vision control tokens the policy never samples,
which module is the vision tower, and which vLLM architectures serve it. The engines, the prompt
cache, the trainer, evaluation and the servers ask :func:`family_of_model` or
:func:`family_of_config` and never name a family themselves.

This module imports no model code: ``fadtq.generation.vllm_compat`` reads it in every vLLM
worker process at start-up.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fadtq.errors import FadtqError

if TYPE_CHECKING:
    import torch
    from transformers import Cache, ProcessorMixin

    from fadtq.policy.image_tensors import ImageTensors


class Positions:
    """``(model, input_ids, attention_mask, token_inputs, images) -> positions``: the rotary positions
    the family's own forward derives for these rows (``(3, rows, length)`` for Qwen's multimodal
    RoPE, ``(rows, length)`` for plain positions)."""

    def __call__(self, model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_inputs: dict[str, torch.Tensor], images: ImageTensors) -> torch.Tensor: ...


@dataclass(frozen=True)
class ModelFamily:
    """One family of vision-language models (``config.json``'s ``model_type`` in ``model_types``).

    ``token_keys``: the processor's per-token outputs that the model's forward and ``positions``
    read beside ``input_ids`` and ``attention_mask``. ``image_tensors``: the processor's (or the
    model's) image arguments in the common layout of :mod:`fadtq.policy.image_tensors`,
    ``row_images`` how many of those images each row of the processor's output has, and
    ``image_kwargs`` back. ``positions``: the rotary positions of a batch, as the model's forward
    derives them (the prompt cache runs prompts and completions apart and passes them explicitly).
    ``vision_control_tokens``: the tokens that mark image placeholders; sampled, they would have no
    image features behind them, so no engine samples them and the scoring forward gives them
    probability zero. ``vision_tower``: the name of the vision encoder module (its parameters are
    what ``train.freeze_vision_tower`` freezes). ``per_image_outputs``: the fields of the model's
    ``get_image_features`` output that hold one entry per image (a tuple of tensors, or a list of
    such tuples), which encoding each distinct image once repeats. ``new_cache``: the empty cache a
    prompt's forward fills for the prompt cache (``fadtq.policy.prompt_cache``), where the model's
    own would not let gradients through the rows' copies (returning None: the model's own).
    ``vllm_architectures``: the architectures vLLM runs for it (empty: the family has no vLLM path);
    ``vllm_modules`` and ``vllm_processing_infos``: the vLLM model modules and processing-info
    classes the torchvision-free patch (``fadtq.generation.vllm_compat``) makes image-only, and
    ``vllm_patch`` what else a family's processing-info class needs for that; ``vllm_cpu_args``: the
    engine arguments vLLM's CPU build needs to run the family (over the policy's dtype and the
    engine's defaults); ``vllm_cpu_refusal``: why vLLM's CPU build cannot run a model of the family
    with this text config (``None``: it can), checked before anything loads."""

    name: str
    model_types: tuple[str, ...]
    load_processor: Callable[[Path], ProcessorMixin]
    token_keys: tuple[str, ...]
    image_tensors: Callable[[Mapping[str, torch.Tensor]], ImageTensors]
    row_images: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
    image_kwargs: Callable[[ImageTensors], dict[str, torch.Tensor]]
    positions: Positions
    vision_control_tokens: tuple[str, ...]
    vision_tower: str
    per_image_outputs: tuple[str, ...] = ("pooler_output",)
    new_cache: Callable[[torch.nn.Module], Cache | None] = lambda model: None
    vllm_architectures: tuple[str, ...] = ()
    vllm_modules: tuple[str, ...] = ()
    vllm_processing_infos: tuple[str, ...] = ()
    vllm_patch: Callable[[type], None] | None = None
    vllm_cpu_args: dict[str, object] = field(default_factory=dict)
    vllm_cpu_refusal: Callable[[dict], str | None] = lambda text_config: None

    def tower(self, model: torch.nn.Module) -> torch.nn.Module:
        """The vision encoder of ``model`` (a Hugging Face model, or a DeepSpeed engine around one)."""
        model = getattr(model, "module", model)
        for name, module in model.named_modules():
            if name.split(".")[-1] == self.vision_tower:
                return module
        raise FadtqError(f"{type(model).__name__}: no vision tower named {self.vision_tower!r} ({self.name} family)")


@functools.cache
def registered() -> dict[str, ModelFamily]:
    """Every family, by name."""
    from fadtq.policy.qwen2_5_vl import QWEN2_5_VL
    from fadtq.policy.qwen3_5 import QWEN3_5
    from fadtq.policy.qwen3_vl import QWEN3_VL
    from fadtq.policy.smolvlm import SMOLVLM

    return {family.name: family for family in (QWEN2_5_VL, QWEN3_VL, QWEN3_5, SMOLVLM)}


def family_of_config(config: dict, where: str) -> ModelFamily:
    """The family of a model's ``config.json`` (as a dict, read from ``where``); one line listing the
    supported families when none claims it."""
    model_type = config.get("model_type")
    for family in registered().values():
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in registered().values())
    raise FadtqError(f"{where}: model_type {model_type!r} (architectures {config.get('architectures')}) is not a "
                     f"supported model family; supported: {supported}")


def family_of_folder(path: str | Path) -> ModelFamily:
    """The family of the model saved in ``path``."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise FadtqError(f"{path}: no config.json; expected a Hugging Face model folder")
    return family_of_config(json.loads(config.read_text(encoding="utf-8")), str(config))


def family_of_model(model: torch.nn.Module) -> ModelFamily:
    """The family of a loaded model (a Hugging Face model, or a DeepSpeed engine around one)."""
    model = getattr(model, "module", model)
    if not hasattr(model, "config"):
        raise FadtqError(f"{type(model).__name__}: not a Hugging Face model (no config), so of no model family")
    config = {"model_type": model.config.model_type, "architectures": getattr(model.config, "architectures", None)}
    return family_of_config(config, f"{type(model).__name__}.config")
