"""The Hugging Face transformers generation engine: sampling with ``model.generate``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import GenerationConfig, ProcessorMixin

from fadtq.errors import FadtqError
from fadtq.generation.engine import VISION_CONTROL_TOKENS, Completion, RolloutPrompt, RolloutResult, SamplingParams
from fadtq.training.logprobs import ScoringInputs, token_distribution


class HFRolloutEngine:
    """Sampling with ``model.generate`` on the policy being trained.

    ``model`` is the Hugging Face model itself (unwrap a DeepSpeed engine with ``.module``).
    Sampling draws from torch's global generator: seed it for reproducible rollouts.
    """

    def __init__(self, model: torch.nn.Module, processor: ProcessorMixin) -> None:
        self.model = model
        self.processor = processor
        tokenizer = processor.tokenizer
        self.suppressed_token_ids = tuple(tokenizer.convert_tokens_to_ids(t) for t in VISION_CONTROL_TOKENS)
        self.eos_token_ids = sorted({tokenizer.eos_token_id, tokenizer.pad_token_id})
        self.pad_token_id = tokenizer.pad_token_id
        self._configs: dict[SamplingParams, GenerationConfig] = {}

    def generate(self, prompts: Sequence[RolloutPrompt], n_samples: int, params: SamplingParams) -> RolloutResult:
        if not prompts or n_samples < 1:
            raise FadtqError(f"rollout: need at least one prompt and one sample, got {len(prompts)} x {n_samples}")
        inputs = self._repeat_rows(self._processor_inputs(prompts), n_samples)
        output = self._sample(inputs, params)
        prompt_len = inputs["input_ids"].shape[1]
        completions = output.sequences[:, prompt_len:]
        action_mask = self._action_mask(completions)
        scoring = ScoringInputs(
            sequences=output.sequences,
            attention_mask=torch.cat([inputs["attention_mask"], action_mask], dim=1),
            action_mask=action_mask,
            mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(completions)], dim=1),
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
            images_per_row=torch.full((len(completions),), 2, dtype=torch.long, device=completions.device),
        )
        rows = self._completions(inputs, completions, action_mask)
        groups = [rows[i * n_samples : (i + 1) * n_samples] for i in range(len(prompts))]
        logprobs = self._sampled_logprobs(output, completions, action_mask, params) if params.return_logprobs else None
        return RolloutResult(groups=groups, scoring=scoring, logprobs=logprobs)

    @staticmethod
    def _repeat_rows(inputs: dict[str, torch.Tensor], n_samples: int) -> dict[str, torch.Tensor]:
        """Each prompt's row (and its images' patches) ``n_samples`` times, in prompt order: the
        processor prepares every prompt once instead of once per sample."""
        rows = inputs["input_ids"].shape[0]
        prompts = ScoringInputs(
            sequences=inputs["input_ids"], attention_mask=inputs["attention_mask"],
            action_mask=inputs["attention_mask"][:, :0], mm_token_type_ids=inputs["mm_token_type_ids"],
            pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
            images_per_row=torch.full((rows,), 2, dtype=torch.long),
        ).select([row for row in range(rows) for _ in range(n_samples)])
        return {"input_ids": prompts.sequences, "attention_mask": prompts.attention_mask,
                "mm_token_type_ids": prompts.mm_token_type_ids, "pixel_values": prompts.pixel_values,
                "image_grid_thw": prompts.image_grid_thw}

    def _processor_inputs(self, prompts: Sequence[RolloutPrompt]) -> dict[str, torch.Tensor]:
        texts = [self.processor.apply_chat_template(p.messages, add_generation_prompt=True, tokenize=False) for p in prompts]
        images = [[p.ref_image, p.test_image] for p in prompts]
        inputs = self.processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
        device = next(self.model.parameters()).device
        return {key: value.to(device) if torch.is_tensor(value) else value for key, value in inputs.items()}

    @torch.no_grad()
    def _sample(self, inputs: dict[str, torch.Tensor], params: SamplingParams):
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model.generate(**inputs, generation_config=self._generation_config(params))
        finally:
            self.model.train(was_training)

    def _generation_config(self, params: SamplingParams) -> GenerationConfig:
        """Built once per ``SamplingParams``: transformers validates a config built from keyword
        arguments on every call, which cost about 8% of a tiny model's training step."""
        if params not in self._configs:
            # use_cache explicitly: OpenRLHF's Actor turns it off in the model config.
            sampling = {"do_sample": False} if params.greedy else {
                "do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
            self._configs[params] = GenerationConfig(
                **sampling,
                max_new_tokens=params.max_new_tokens,
                suppress_tokens=list(self.suppressed_token_ids),
                eos_token_id=self.eos_token_ids,
                pad_token_id=self.pad_token_id,
                use_cache=True,
                return_dict_in_generate=True,
                output_logits=params.return_logprobs,
            )
        return self._configs[params]

    def _action_mask(self, completions: torch.Tensor) -> torch.Tensor:
        """1 for each sampled token up to and including the first EOS, 0 for the padding after it."""
        is_eos = torch.isin(completions, torch.as_tensor(self.eos_token_ids, device=completions.device))
        eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
        return (eos_before == 0).long()

    def _completions(
        self, inputs: dict[str, torch.Tensor], completions: torch.Tensor, action_mask: torch.Tensor
    ) -> list[Completion]:
        rows = []
        for row, (ids, mask) in enumerate(zip(completions.tolist(), action_mask.tolist())):
            kept = ids[: sum(mask)]
            prompt = inputs["input_ids"][row][inputs["attention_mask"][row].bool()].tolist()
            text = self.processor.tokenizer.decode(kept, skip_special_tokens=True)
            finished = bool(kept) and kept[-1] in self.eos_token_ids
            rows.append(Completion(row=row, prompt_ids=prompt, completion_ids=kept, text=text, finished=finished))
        return rows

    def _sampled_logprobs(
        self, output, completions: torch.Tensor, action_mask: torch.Tensor, params: SamplingParams
    ) -> torch.Tensor:
        """Log-probabilities of the sampled tokens under the (tempered, suppressed) sampling logits."""
        logits = torch.stack(output.logits, dim=1)
        log_dist = token_distribution(logits, params.temperature, self.suppressed_token_ids)
        picked = log_dist.gather(-1, completions.unsqueeze(-1)).squeeze(-1)
        return torch.where(action_mask.bool(), picked, picked.new_zeros(()))
