"""The Hugging Face transformers generation engine: sampling with ``model.generate``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessorList, ProcessorMixin

from fadtq.generation import batch
from fadtq.generation.engine import RolloutPrompt, RolloutResult, SamplingParams
from fadtq.generation.sampling import spans_apart
from fadtq.generation.span_top_p import SpanTopP
from fadtq.generation.stratified_answers import StratifiedAnswer, stratified_uniforms
from fadtq.policy.family import family_of_model
from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.logprobs import token_distribution
from fadtq.policy.prompt_cache import row_positions, run_prompts


class HFRolloutEngine:
    """Sampling with ``model.generate`` on the policy being trained.

    ``model`` is the Hugging Face model itself (unwrap a DeepSpeed engine with ``.module``).
    Sampling draws from torch's global generator: seed it for reproducible rollouts.
    """

    samples_from_copy = False

    def __init__(self, model: torch.nn.Module, processor: ProcessorMixin) -> None:
        self.model = model
        self.processor = processor
        tokenizer = processor.tokenizer
        self.suppressed_token_ids = tuple(tokenizer.convert_tokens_to_ids(t) for t in family_of_model(model).vision_control_tokens)
        self.eos_token_ids = sorted({tokenizer.eos_token_id, tokenizer.pad_token_id})
        self.pad_token_id = tokenizer.pad_token_id
        self._configs: dict[SamplingParams, GenerationConfig] = {}

    def generate(self, prompts: Sequence[RolloutPrompt], n_samples: int, params: SamplingParams) -> RolloutResult:
        distinct, inputs = batch.request_inputs(self.processor, self.model, prompts, n_samples)
        output = self._sample(distinct, n_samples, params)
        completions = output.sequences[:, inputs.sequences.shape[1]:]
        action_mask = self._action_mask(completions)
        rows = batch.completion_rows(self.processor, inputs, completions, action_mask, self.eos_token_ids)
        logprobs = self._sampled_logprobs(output, completions, action_mask, params) if params.return_logprobs else None
        return RolloutResult(groups=batch.group(rows, n_samples),
                             scoring=batch.scoring_inputs(inputs, completions, action_mask, logprobs))

    def weights_updated(self) -> None:
        """Nothing to do: ``generate`` samples from the policy's own weights."""

    @torch.no_grad()
    def _sample(self, prompts: ForwardBatch, n_samples: int, params: SamplingParams):
        """``n_samples`` completions per prompt. Each prompt but its last token runs once
        (:mod:`fadtq.policy.prompt_cache`); ``generate`` continues every row from its copy of the
        cache, at the rotary positions of the full prompt."""
        tokens = prompts.sequences
        rows = torch.arange(len(tokens), device=tokens.device).repeat_interleave(n_samples)
        positions = row_positions(self.model, prompts)
        was_training = self.model.training
        self.model.eval()
        try:
            head = prompts.model_inputs(family_of_model(self.model), tokens.shape[1] - 1)
            prompt = run_prompts(self.model, head, positions[..., :-1], rows)
            return self.model.generate(input_ids=tokens[rows], attention_mask=prompts.attention_mask[rows],
                                       position_ids=positions[..., rows, :], past_key_values=prompt.cache,
                                       generation_config=self._generation_config(params),
                                       logits_processor=self._logits_processors(params, len(tokens), n_samples))
        finally:
            self.model.train(was_training)

    def _generation_config(self, params: SamplingParams) -> GenerationConfig:
        """Built once per ``SamplingParams``: transformers validates a config built from keyword
        arguments on every call, which cost about 8% of a tiny model's training step."""
        if params not in self._configs:
            # use_cache explicitly: OpenRLHF's Actor turns it off in the model config.
            sampling = {"do_sample": False} if params.greedy else {
                "do_sample": True, "temperature": params.temperature, "top_k": 0,
                "top_p": 1.0 if self._spans_apart(params) else params.top_p}
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

    @staticmethod
    def _spans_apart(params: SamplingParams) -> bool:
        """True when the reasoning or the answer word has a top-p or a way of drawing of its own."""
        return not params.greedy and bool(spans_apart(params))

    def _logits_processors(self, params: SamplingParams, prompts: int, n_samples: int) -> LogitsProcessorList:
        """``SpanTopP`` in place of transformers' top-p when the reasoning or the answer word is
        sampled apart (a new one per call: it remembers which rows have closed their reasoning), then
        ``StratifiedAnswer`` for stratified answer draws."""
        if not self._spans_apart(params):
            return LogitsProcessorList()
        spans = SpanTopP(self.processor.tokenizer, params.top_p, params.answer_top_p, params.temperature,
                         params.reasoning_top_p)
        if params.answer_draws == "stratified":
            return LogitsProcessorList([spans, StratifiedAnswer(spans, stratified_uniforms(prompts, n_samples))])
        return LogitsProcessorList([spans])

    def _action_mask(self, completions: torch.Tensor) -> torch.Tensor:
        """1 for each sampled token up to and including the first EOS, 0 for the padding after it."""
        is_eos = torch.isin(completions, torch.as_tensor(self.eos_token_ids, device=completions.device))
        eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
        return (eos_before == 0).long()

    def _sampled_logprobs(
        self, output, completions: torch.Tensor, action_mask: torch.Tensor, params: SamplingParams
    ) -> torch.Tensor:
        """Log-probabilities of the sampled tokens under the (tempered, suppressed) sampling logits."""
        logits = torch.stack(output.logits, dim=1)
        log_dist = token_distribution(logits, params.temperature, self.suppressed_token_ids)
        picked = log_dist.gather(-1, completions.unsqueeze(-1)).squeeze(-1)
        return torch.where(action_mask.bool(), picked, picked.new_zeros(()))
