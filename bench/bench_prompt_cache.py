"""Each distinct prompt run once (``fadtq/policy/prompt_cache.py``) against every row's full prompt.

Usage: .venv/bin/python bench/bench_prompt_cache.py [--families qwen2_5_vl,qwen3_vl,qwen3_5] [--prompts 12] [--groups 4,8]
       [--tokens 48] [--repeats 5]

On each model family's ``base`` model built offline (random weights, the CPU default's size; its
completions run to ``--tokens``) and the CPU default's look-alike prompts, ``--prompts`` prompts x
each group size (12 x 4 is one rank's share of ``make demo``'s step), one thread:

* **scoring**: the training forward and backward of the sampled completions: ``completion_logprobs``
  (each prompt once, completions on its cache) against one forward over every row's whole sequence;
* **generation**: the hf engine's sampling (prompt once, ``generate`` from the cache copies) against
  ``generate`` on every row's full prompt, same seed and sampling settings.

The two variants alternate, ``--repeats`` times each after one warm-up call, so load from other jobs
hits both alike; the medians, their ratio and the largest log-probability difference are printed
and written to ``bench/results/prompt_cache.json`` atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402


def load_policy(family: str):
    import torch
    from transformers import AutoModelForImageTextToText

    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.policy.processor import load_processor
    from fadtq.training.freeze import freeze_vision_tower

    path = benchlib.cached_model("base", family=family)
    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch.float32, attn_implementation="sdpa")
    freeze_vision_tower(model)  # as the CPU default trains
    return HFRolloutEngine(model, load_processor(path))


def look_alike_prompts(count: int):
    from fadtq.data.dataset import PairDataset
    from fadtq.generation.engine import RolloutPrompt
    from fadtq.run_config import load_run_config
    from fadtq.training.preflight import training_benchmark

    cfg = load_run_config("cpu_default")
    dataset = PairDataset(training_benchmark(cfg) / "train.jsonl", max_side=cfg.data.image_size)
    return [RolloutPrompt(p.ref_image, p.test_image, p.messages) for p in (dataset[i] for i in range(count))]


def full_forward_logprobs(model, inputs, suppress):
    """Every row's whole sequence in one forward: what the trainer ran before the prompt cache."""
    import torch

    from fadtq.policy.family import family_of_model
    from fadtq.policy.logprobs import token_distribution
    from fadtq.policy.prompt_cache import row_positions

    completion_len = inputs.action_mask.shape[1]
    logits = model(**inputs.model_inputs(family_of_model(model), inputs.sequences.shape[1]),
                   position_ids=row_positions(model, inputs), use_cache=False).logits[:, -completion_len - 1:-1]
    picked = token_distribution(logits, 1.0, suppress).gather(
        -1, inputs.sequences[:, -completion_len:].unsqueeze(-1)).squeeze(-1)
    return torch.where(inputs.action_mask.bool(), picked, picked.new_zeros(()))


def side_by_side(variants: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each variant, the variants alternating, after one warm-up call each."""
    for run in variants.values():
        run()
    seconds = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {name: benchlib.median(values) for name, values in seconds.items()}


def measure(family: str, engine, prompts, group: int, tokens: int, repeats: int) -> dict:
    import torch

    from fadtq.generation import batch
    from fadtq.generation.engine import SamplingParams
    from fadtq.policy.family import family_of_model
    from fadtq.policy.logprobs import completion_logprobs

    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=tokens)
    model, suppress = engine.model, engine.suppressed_token_ids
    torch.manual_seed(0)
    scoring = engine.generate(prompts, group, params).scoring

    def backward(logprobs):
        model.zero_grad()
        logprobs.sum().backward()

    model_family = family_of_model(model)

    def plain_generate():
        inputs = batch.repeat_rows(batch.prompt_inputs(engine.processor, model_family, prompts, torch.device("cpu")), group)
        with torch.no_grad():
            model.eval().generate(**inputs.model_inputs(model_family), generation_config=engine._generation_config(params))

    def seeded(run):
        def call():
            torch.manual_seed(1)
            run()
        return call

    scoring_seconds = side_by_side({
        "full": lambda: backward(full_forward_logprobs(model, scoring, suppress)),
        "shared": lambda: backward(completion_logprobs(model, scoring, 1.0, suppress).logprobs)}, repeats)
    generation_seconds = side_by_side({
        "full": seeded(plain_generate),
        "shared": seeded(lambda: engine.generate(prompts, group, params))}, repeats)
    with torch.no_grad():
        gap = (full_forward_logprobs(model, scoring, suppress)
               - completion_logprobs(model, scoring, 1.0, suppress).logprobs).abs().max().item()
    return {"family": family, "prompts": len(prompts), "group": group, "rows": len(prompts) * group,
            "prompt_tokens": scoring.prompt_length, "completion_tokens": scoring.action_mask.shape[1],
            "scoring_seconds": scoring_seconds, "generation_seconds": generation_seconds,
            "scoring_speedup": benchlib.ratio(scoring_seconds["full"], scoring_seconds["shared"]),
            "generation_speedup": benchlib.ratio(generation_seconds["full"], generation_seconds["shared"]),
            "max_logprob_difference": gap}


def main() -> None:
    from fadtq.pretraining.tiny_model import TINY_FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(TINY_FAMILIES), help="comma-separated model families (default: all)")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--groups", default="4,8")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    unknown = [name for name in args.families.split(",") if name not in TINY_FAMILIES]
    if unknown:
        parser.error(f"--families: {', '.join(unknown)} not among {', '.join(TINY_FAMILIES)}")
    benchlib.one_thread()
    prompts = look_alike_prompts(args.prompts)
    rows = []
    for family in args.families.split(","):
        engine = load_policy(family)
        rows += [measure(family, engine, prompts, int(group), args.tokens, args.repeats)
                 for group in args.groups.split(",")]
    for row in rows:
        print(f"{row['family']}, {row['prompts']} prompts x {row['group']}: scoring (forward + backward) "
              f"{row['scoring_seconds']['full']:.3f} s -> {row['scoring_seconds']['shared']:.3f} s "
              f"({row['scoring_speedup']}x), generation {row['generation_seconds']['full']:.3f} s -> "
              f"{row['generation_seconds']['shared']:.3f} s ({row['generation_speedup']}x); "
              f"largest log-prob difference {row['max_logprob_difference']:.1e}")
    out = benchlib.RESULTS / "prompt_cache.json"
    benchlib.atomic_write_json(out, {"command": benchlib.command_line(),
                                     "machine": benchlib.machine(), "results": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
