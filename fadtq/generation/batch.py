"""The prompt and scoring tensors every generation engine builds the same way.

The processor prepares each prompt once (chat template, both images, left padding); its rows are
repeated once per sample; the sampled completions, right-padded, are appended to make the exact
inputs of the scoring forward (:class:`~fadtq.policy.forward_batch.ForwardBatch`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import ProcessorMixin

from fadtq.errors import FadtqError
from fadtq.generation.engine import Completion, RolloutPrompt
from fadtq.policy.forward_batch import ForwardBatch


def prompt_texts(processor: ProcessorMixin, prompts: Sequence[RolloutPrompt]) -> list[str]:
    return [processor.apply_chat_template(p.messages, add_generation_prompt=True, tokenize=False) for p in prompts]


def prompt_inputs(processor: ProcessorMixin, prompts: Sequence[RolloutPrompt], device: torch.device) -> dict:
    """The processor's left-padded tensors for ``prompts`` (reference image first), on ``device``."""
    images = [[p.ref_image, p.test_image] for p in prompts]
    inputs = processor(text=prompt_texts(processor, prompts), images=images, padding=True, padding_side="left",
                       return_tensors="pt")
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in inputs.items()}


def request_inputs(processor: ProcessorMixin, model: torch.nn.Module, prompts: Sequence[RolloutPrompt],
                   n_samples: int) -> tuple[dict, dict]:
    """The processor's tensors for ``prompts`` on the model's device, and the same with each row
    repeated once per sample; an empty request is one clear error."""
    if not prompts or n_samples < 1:
        raise FadtqError(f"rollout: need at least one prompt and one sample, got {len(prompts)} x {n_samples}")
    distinct = prompt_inputs(processor, prompts, next(model.parameters()).device)
    return distinct, repeat_rows(distinct, n_samples)


def repeat_rows(inputs: dict[str, torch.Tensor], n_samples: int) -> dict[str, torch.Tensor]:
    """Each prompt's row (and its images' patches) ``n_samples`` times, in prompt order."""
    rows = inputs["input_ids"].shape[0]
    prompts = ForwardBatch(
        sequences=inputs["input_ids"], attention_mask=inputs["attention_mask"],
        action_mask=inputs["attention_mask"][:, :0], mm_token_type_ids=inputs["mm_token_type_ids"],
        pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
        images_per_row=torch.full((rows,), 2, dtype=torch.long),
    ).select([row for row in range(rows) for _ in range(n_samples)])
    return {"input_ids": prompts.sequences, "attention_mask": prompts.attention_mask,
            "mm_token_type_ids": prompts.mm_token_type_ids, "pixel_values": prompts.pixel_values,
            "image_grid_thw": prompts.image_grid_thw}


def prompt_ids(inputs: dict[str, torch.Tensor], row: int) -> list[int]:
    """Row ``row``'s prompt tokens without the left padding."""
    return inputs["input_ids"][row][inputs["attention_mask"][row].bool()].tolist()


def scoring_inputs(inputs: dict[str, torch.Tensor], completions: torch.Tensor, action_mask: torch.Tensor,
                   rollout_logprobs: torch.Tensor | None = None) -> ForwardBatch:
    """Prompt rows (already repeated per sample) followed by their right-padded completions."""
    return ForwardBatch(
        sequences=torch.cat([inputs["input_ids"], completions], dim=1),
        attention_mask=torch.cat([inputs["attention_mask"], action_mask], dim=1),
        action_mask=action_mask,
        mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(completions)], dim=1),
        pixel_values=inputs["pixel_values"],
        image_grid_thw=inputs["image_grid_thw"],
        images_per_row=torch.full((len(completions),), 2, dtype=torch.long, device=completions.device),
        rollout_logprobs=rollout_logprobs,
    )


def completion_rows(processor: ProcessorMixin, inputs: dict[str, torch.Tensor], completions: torch.Tensor,
                    action_mask: torch.Tensor, eos_token_ids: Sequence[int]) -> list[Completion]:
    """One :class:`Completion` per row: its sampled tokens (through the first EOS) and their text."""
    rows = []
    for row, (ids, mask) in enumerate(zip(completions.tolist(), action_mask.tolist())):
        kept = ids[: sum(mask)]
        text = processor.tokenizer.decode(kept, skip_special_tokens=True)
        finished = bool(kept) and kept[-1] in eos_token_ids
        rows.append(Completion(row=row, prompt_ids=prompt_ids(inputs, row), completion_ids=kept, text=text,
                               finished=finished))
    return rows


def group(rows: list, n_samples: int) -> list[list]:
    """Rows ordered prompt by prompt, cut into one list per prompt."""
    return [rows[i:i + n_samples] for i in range(0, len(rows), n_samples)]
