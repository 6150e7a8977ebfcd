"""What the demo's sampling processors cost: ``top_p_removed`` with numpy's sort against torch's, and a
generate call of the shipped policy with the demo's processors against transformers' own top-p.

Usage: .venv/bin/python bench/bench_span_top_p.py [--rows 48] [--calls 200] [--generates 5]

* **per call**: ``top_p_removed`` on ``--rows`` rows of the shipped policy's vocabulary (one rank's
  share of the demo's step: 12 prompts x 4), random scores, one threshold per row; this module's
  numpy path against the same removal computed with ``torch.sort``, the two alternating call by call,
  medians of ``--calls`` each; the masks are compared (tied scores may be ordered differently);
* **generate**: 12 look-alike prompts x 4 samples, 48 new tokens, the CPU default's sampling
  (``SpanTopP`` with the reasoning's and the answer word's thresholds, then the stratified answer
  draws) against transformers' top-p at the same ``top_p`` alone, alternating, ``--generates``
  calls each after one warm-up: the median time per decoded token (a call's time over its longest
  completion, since the two samplings write reasoning of different lengths) and the ratio.

One thread. Writes ``bench/results/span_top_p.json`` atomically and prints the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402  (pins threads first)

OUT = benchlib.RESULTS / "span_top_p.json"
PROMPTS, GROUP, TOKENS = 12, 4, 48


def removed_by_torch_sort(scores, top_p):
    """The same removal as ``top_p_removed``, ordered by ``torch.sort``: the baseline."""
    ordered, order = scores.sort(dim=-1)
    dropped = ordered.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
    dropped[..., -1:] = False
    return dropped.scatter(-1, order, dropped)


def per_call(rows: int, vocab: int, calls: int) -> dict:
    import torch

    from fadtq.generation.span_top_p import top_p_removed

    generator = torch.Generator().manual_seed(0)
    times = {"numpy": [], "torch": []}
    differing = 0
    for _ in range(calls):
        scores = torch.randn(rows, vocab, generator=generator) * 4
        top_p = torch.rand(rows, 1, generator=generator)
        masks = {}
        for name, removal in (("numpy", top_p_removed), ("torch", removed_by_torch_sort)):
            start = time.perf_counter()
            masks[name] = removal(scores, top_p)
            times[name].append(time.perf_counter() - start)
        differing += int((masks["numpy"] != masks["torch"]).any(dim=-1).sum())
    medians = {name: benchlib.median(values) * 1000 for name, values in times.items()}
    return {"rows": rows, "vocab": vocab, "calls": calls, "median_ms": {k: round(v, 3) for k, v in medians.items()},
            "torch_over_numpy": benchlib.ratio(medians["torch"], medians["numpy"]),
            "rows_with_a_different_mask": differing}


def look_alike_prompts() -> list:
    """The first training pairs of the CPU default's look-alike, at its image size."""
    from fadtq.data.dataset import PairDataset
    from fadtq.generation.engine import RolloutPrompt
    from fadtq.run_config import load_run_config
    from fadtq.training.preflight import training_benchmark

    cfg = load_run_config("cpu_default")
    pairs = PairDataset(training_benchmark(cfg) / "train.jsonl", max_side=cfg.data.image_size)
    return [RolloutPrompt(pair.ref_image, pair.test_image, pair.messages) for pair in map(pairs.__getitem__, range(PROMPTS))]


def generation(calls: int) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText

    from fadtq.generation.engine import SamplingParams
    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.policy.processor import load_processor
    from fadtq.pretraining.default_policy import pretrained_model_dir
    from fadtq.run_config import load_run_config

    cfg = load_run_config("cpu_default")
    policy = pretrained_model_dir(cfg)
    model = AutoModelForImageTextToText.from_pretrained(str(policy), dtype=torch.float32).eval()
    engine, prompts = HFRolloutEngine(model, load_processor(str(policy))), look_alike_prompts()
    rollout = cfg.rollout
    variants = {
        "processors": SamplingParams(temperature=rollout.temperature, top_p=rollout.top_p, answer_top_p=rollout.answer_top_p,
                                     reasoning_top_p=rollout.reasoning_top_p, answer_draws=rollout.answer_draws,
                                     max_new_tokens=TOKENS),
        "top_p": SamplingParams(temperature=rollout.temperature, top_p=rollout.top_p, max_new_tokens=TOKENS),
    }
    per_token = {name: [] for name in variants}
    torch.manual_seed(0)
    for params in variants.values():
        engine.generate(prompts, GROUP, params)  # warm-up
    for _ in range(calls):
        for name, params in variants.items():
            start = time.perf_counter()
            result = engine.generate(prompts, GROUP, params)
            seconds = time.perf_counter() - start
            # a call decodes as many tokens as its longest completion: the variants' lengths differ
            decoded = max(len(c.completion_ids) for group in result.groups for c in group)
            per_token[name].append(seconds / decoded)
    medians = {name: benchlib.median(values) * 1000 for name, values in per_token.items()}
    return {"prompts": PROMPTS, "group": GROUP, "max_new_tokens": TOKENS, "calls": calls,
            "median_ms_per_decoded_token": {k: round(v, 3) for k, v in medians.items()},
            "processors_over_top_p": benchlib.ratio(medians["processors"], medians["top_p"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--rows", type=int, default=PROMPTS * GROUP)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--generates", type=int, default=5)
    args = parser.parse_args()
    benchlib.one_thread()
    from transformers import AutoConfig

    from fadtq.pretraining.default_policy import pretrained_model_dir
    from fadtq.run_config import load_run_config

    config = AutoConfig.from_pretrained(str(pretrained_model_dir(load_run_config("cpu_default"))))
    vocab = config.get_text_config().vocab_size
    result = {"command": benchlib.command_line(), "machine": benchlib.machine(),
              "per_call": per_call(args.rows, vocab, args.calls), "generate": generation(args.generates)}
    benchlib.atomic_write_json(OUT, result)
    call, generate = result["per_call"], result["generate"]
    print(f"top_p_removed, {call['rows']} x {call['vocab']}: torch's sort {call['median_ms']['torch']} ms, numpy's "
          f"{call['median_ms']['numpy']} ms: {call['torch_over_numpy']}x; rows with another mask: "
          f"{call['rows_with_a_different_mask']} of {call['rows'] * call['calls']}")
    per_token = generate["median_ms_per_decoded_token"]
    print(f"generate, {PROMPTS} x {GROUP}, up to {TOKENS} tokens, per decoded token: the demo's processors "
          f"{per_token['processors']} ms, top-p alone {per_token['top_p']} ms: {generate['processors_over_top_p']}x")
    print(f"written: {OUT}")


if __name__ == "__main__":
    main()
