"""Memory and step time of full fine-tuning, gradient checkpointing, LoRA and both, side by side.

Each variant trains the same policy (``small`` by default) on the same look-alike pairs drawn at
448 pixels, with 128-token completions, GPG, one micro-batch per step, in a subprocess of its own.
Peak RSS mixes the model, the optimizer, vLLM-free generation and the allocator's reuse, so two
parts are measured directly as well:

* activations: the bytes of the tensors autograd saves for the backward pass during a step's
  training forward (``torch.autograd.graph.saved_tensors_hooks``), parameters and repeats left out.
  Checkpointed layers save only their inputs; the rest is recomputed in the backward pass;
* optimizer state: the bytes of Adam's moments after the first step (only trained parameters
  have any: LoRA's adapters).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_memory.py`` (results in
``bench/results/memory.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

VARIANTS = {
    "full": {},
    "checkpointing": {"train.gradient_checkpointing": "true"},
    "lora": {"train.lora.rank": "16"},
    "lora+checkpointing": {"train.lora.rank": "16", "train.gradient_checkpointing": "true"},
}
# Full fine-tuning of the whole policy, vision tower included; nothing but GPG's own loss.
COMMON = {"train.freeze_vision_tower": "false", "train.ptx_coef": "0", "train.answer_entropy_coef": "0",
          "rollout.dynamic_sampling": "false", "rollout.reasoning_top_p": "null", "rollout.answer_top_p": "null",
          "rollout.answer_draws": "independent"}


class SavedActivations:
    """Counts the bytes autograd saves for backward (each storage once, parameters excluded)."""

    def __init__(self, parameters) -> None:
        self.parameters = {p.untyped_storage().data_ptr() for p in parameters}
        self.storages: set[int] = set()
        self.bytes = 0

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self.parameters and key not in self.storages:
            self.storages.add(key)
            self.bytes += storage.nbytes()
        return tensor

    @staticmethod
    def unpack(tensor):
        return tensor


def optimizer_state_bytes(optimizer) -> int:
    return sum(value.numel() * value.element_size() for state in optimizer.state.values()
               for value in state.values() if hasattr(value, "numel") and value.dim() > 0)


def worker(args: argparse.Namespace) -> None:
    import torch

    from fadtq.commands.train import build
    from fadtq.data.dataset import ensure_default_benchmark

    benchlib.one_thread()
    overrides = {**COMMON, **VARIANTS[args.worker], "data.benchmark": str(ensure_default_benchmark("tiny", size=args.image_size))}
    cfg = benchlib.trainer_config("gpg", benchlib.cached_model(args.model), args.prompts, args.group, args.tokens,
                                  args.image_size, f"bench-memory-{args.worker.replace('+', '-')}", overrides=overrides)
    trainer = build(cfg, benchlib.SCRATCH / cfg.output.name)
    trainable = sum(p.numel() for p in trainer.policy_model.parameters() if p.requires_grad)
    seconds, activations, state = [], [], 0
    for step in range(args.warmup + args.steps):
        torch.manual_seed(step)  # the same rollouts for every variant
        saved = SavedActivations(trainer.policy_model.parameters())
        started = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
            metrics, _ = trainer.train_step(step)
        if step >= args.warmup:
            seconds.append(time.perf_counter() - started)
            activations.append(saved.bytes / 2**20)
        state = optimizer_state_bytes(trainer.optim)
    benchlib.emit({"variant": args.worker, "step_seconds": benchlib.median(seconds), "step_seconds_all": seconds,
                   "activations_mb": benchlib.median(activations), "optimizer_state_mb": state / 2**20,
                   "trainable_params": trainable, "params": sum(p.numel() for p in trainer.policy_model.parameters()),
                   "completion_tokens": metrics["length/tokens"], "peak_rss_mb": benchlib.peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="tiny-model preset of fadtq make-tiny-model")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default="memory.json")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    numbers = ("model", "image_size", "tokens", "prompts", "group", "steps", "warmup")
    results = {}
    for variant in VARIANTS:
        cmd = [sys.executable, __file__, "--worker", variant,
               *[f"--{n.replace('_', '-')}={getattr(args, n)}" for n in numbers]]
        results[variant] = benchlib.run_worker(cmd, timeout=3600)
        print(variant, {k: results[variant][k] for k in ("step_seconds", "activations_mb", "optimizer_state_mb",
                                                         "peak_rss_mb")}, flush=True)
    full = results["full"]
    ratios = {variant: {"activations": benchlib.ratio(full["activations_mb"], r["activations_mb"]),
                        "optimizer_state": benchlib.ratio(full["optimizer_state_mb"], r["optimizer_state_mb"]),
                        "peak_rss": benchlib.ratio(full["peak_rss_mb"], r["peak_rss_mb"]),
                        "step_time": benchlib.ratio(r["step_seconds"], full["step_seconds"])}
              for variant, r in results.items() if variant != "full"}
    benchlib.atomic_write_json(benchlib.RESULTS / args.out, {
        "command": benchlib.command_line(), "machine": benchlib.machine(),
        "setup": {n: getattr(args, n) for n in numbers}, "results": results,
        "full_over_variant": ratios})
    print("full / variant (step time: variant / full):", ratios)


if __name__ == "__main__":
    main()
