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
from fadtq.policy.family import ModelFamily, family_of_model
from fadtq.policy.forward_batch import ForwardBatch


def prompt_texts(processor: ProcessorMixin, prompts: Sequence[RolloutPrompt]) -> list[str]:
    return [processor.apply_chat_template(p.messages, add_generation_prompt=True, tokenize=False) for p in prompts]


def prompt_inputs(processor: ProcessorMixin, family: ModelFamily, prompts: Sequence[RolloutPrompt],
                  device: torch.device) -> ForwardBatch:
    """The processor's left-padded prompts (reference image first) on ``device``, with no completion."""
    images = [[p.ref_image, p.test_image] for p in prompts]
    inputs = processor(text=prompt_texts(processor, prompts), images=images, padding=True, padding_side="left",
                       return_tensors="pt")
    inputs = {key: value.to(device) if torch.is_tensor(value) else value for key, value in inputs.items()}
    return prompt_batch(family, inputs)


def prompt_batch(family: ModelFamily, inputs: dict[str, torch.Tensor]) -> ForwardBatch:
    """The processor's output for ``family``'s model as prompts with no completion yet."""
    return ForwardBatch(
        sequences=inputs["input_ids"], attention_mask=inputs["attention_mask"],
        action_mask=inputs["attention_mask"][:, :0], token_inputs={key: inputs[key] for key in family.token_keys},
        images=family.image_tensors(inputs), images_per_row=family.row_images(inputs).cpu())


def request_inputs(processor: ProcessorMixin, model: torch.nn.Module, prompts: Sequence[RolloutPrompt],
                   n_samples: int) -> tuple[ForwardBatch, ForwardBatch]:
    """The distinct prompts on the model's device, and the same with each row repeated once per
    sample; an empty request is one clear error."""
    if not prompts or n_samples < 1:
        raise FadtqError(f"rollout: need at least one prompt and one sample, got {len(prompts)} x {n_samples}")
    distinct = prompt_inputs(processor, family_of_model(model), prompts, next(model.parameters()).device)
    return distinct, repeat_rows(distinct, n_samples)


def repeat_rows(prompts: ForwardBatch, n_samples: int) -> ForwardBatch:
    """Each prompt's row (and its images) ``n_samples`` times, in prompt order."""
    return prompts.select([row for row in range(len(prompts.sequences)) for _ in range(n_samples)])


def prompt_ids(prompts: ForwardBatch, row: int) -> list[int]:
    """Row ``row``'s prompt tokens without the left padding."""
    return prompts.sequences[row][prompts.attention_mask[row].bool()].tolist()


def scoring_inputs(prompts: ForwardBatch, completions: torch.Tensor, action_mask: torch.Tensor,
                   rollout_logprobs: torch.Tensor | None = None) -> ForwardBatch:
    """Prompt rows (already repeated per sample) followed by their right-padded completions."""
    return ForwardBatch(
        sequences=torch.cat([prompts.sequences, completions], dim=1),
        attention_mask=torch.cat([prompts.attention_mask, action_mask], dim=1),
        action_mask=action_mask,
        token_inputs={key: torch.cat([value, torch.zeros_like(completions)], dim=1)
                      for key, value in prompts.token_inputs.items()},
        images=prompts.images,
        images_per_row=prompts.images_per_row,
        rollout_logprobs=rollout_logprobs,
    )


def completion_rows(processor: ProcessorMixin, prompts: ForwardBatch, completions: torch.Tensor,
                    action_mask: torch.Tensor, eos_token_ids: Sequence[int]) -> list[Completion]:
    """One :class:`Completion` per row: its sampled tokens (through the first EOS) and their text."""
    rows = []
    for row, (ids, mask) in enumerate(zip(completions.tolist(), action_mask.tolist())):
        kept = ids[: sum(mask)]
        text = processor.tokenizer.decode(kept, skip_special_tokens=True)
        finished = bool(kept) and kept[-1] in eos_token_ids
        rows.append(Completion(row=row, prompt_ids=prompt_ids(prompts, row), completion_ids=kept, text=text,
                               finished=finished))
    return rows


def group(rows: list, n_samples: int) -> list[list]:
    """Rows ordered prompt by prompt, cut into one list per prompt."""
    return [rows[i:i + n_samples] for i in range(0, len(rows), n_samples)]
