"""A policy trained with low-rank adapters (peft's LoRA): the plain model under the adapters, and
its weights with the adapters merged in, under the plain model's names.

The merged weights are what the policy computes (each adapted layer's W + B A * alpha / r): what a
checkpoint's ``policy/`` folder holds, so that evaluation, the policy server and vLLM load an
ordinary Hugging Face model, and what the vllm engine receives after every step.
"""

from __future__ import annotations

import torch


def has_adapters(model: torch.nn.Module) -> bool:
    """Whether ``model`` (or the DeepSpeed engine around it) carries peft adapters."""
    return callable(getattr(getattr(model, "module", model), "get_base_model", None))


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face model inside a DeepSpeed engine and under peft's wrapper (adapter layers
    stay in place: its forward is the adapted one)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if has_adapters(model) else model


@torch.no_grad()
def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights of the model with its adapters merged in, under the plain model's names (the
    model's own state dict where it has no adapters)."""
    if not has_adapters(model):
        return getattr(model, "module", model).state_dict()
    from peft.tuners.lora import LoraLayer

    base = unwrapped(model)
    deltas: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    delta = module.get_delta_weight(adapter)
                    deltas[f"{name}.weight"] = deltas[f"{name}.weight"] + delta if f"{name}.weight" in deltas else delta
    merged = {}
    for key, value in base.state_dict().items():
        if ".lora_" in key:
            continue
        plain = key.replace(".base_layer.", ".")
        merged[plain] = value + deltas[plain].to(value.dtype) if plain in deltas else value
    return merged
