"""TRL's ``GRPOTrainer`` side of ``bench_vs_trl.py``; runs in ``.venv-bench``, not in the project's venv.

Usage (the driver runs it): .venv-bench/bin/python bench/trl_side.py --data DIR --model DIR --group 4
       --tokens 32 --steps 3 --warmup 1

``DIR`` (written by the driver) holds ``prompts.json`` (chat messages with two image placeholders
per prompt, in step order) and the PNG images, exactly the pairs this trainer's side is given.
One TRL optimizer step = one generation batch of ``prompts x group`` completions, one
micro-batch, no reference model (``beta=0``). A callback times each optimizer step from
``on_step_begin`` (before generation) to ``on_step_end`` (after the optimizer step). Prints
one tagged JSON line (see ``benchlib.emit``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402  (pins threads before torch is imported)


def load_rows(data: Path) -> list[dict]:
    """The prompts in step order: conversational ``prompt`` and an ``images`` list per row."""
    from PIL import Image

    rows = json.loads((data / "prompts.json").read_text())
    return [{"prompt": row["messages"], "images": [Image.open(data / name).convert("RGB") for name in row["images"]]}
            for row in rows]


def format_reward(completions: list, **_: object) -> list[float]:
    """A cheap reward so the step is dominated by generation and update, as on this trainer's side."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float("<answer>" in t) + 0.01 * (len(t) % 7) for t in texts]


class StepTimer:
    """``TrainerCallback`` hooks timing each optimizer step (generation, reward and update)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._started = 0.0

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._started = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.seconds.append(time.perf_counter() - timer._started)

        return _Callback()


def build_trainer(args: argparse.Namespace, timer: StepTimer):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText
    from trl import GRPOConfig, GRPOTrainer

    from fadtq.policy.processor import load_processor  # image-only processor: no torchvision here either

    processor = load_processor(args.model)
    vision = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    suppress = processor.tokenizer.convert_tokens_to_ids(vision)  # as this trainer's rollout engine does
    rows = load_rows(Path(args.data))
    config = GRPOConfig(
        output_dir=str(benchlib.SCRATCH / "trl-out"), use_cpu=True, bf16=False, fp16=False, beta=0.0,
        num_generations=args.group, per_device_train_batch_size=args.prompts * args.group,
        gradient_accumulation_steps=1, max_completion_length=args.tokens, max_steps=args.warmup + args.steps,
        learning_rate=1e-4, max_grad_norm=1.0, temperature=1.0, top_p=1.0, top_k=0, shuffle_dataset=False,
        generation_kwargs={"suppress_tokens": suppress}, logging_steps=10_000, save_strategy="no",
        report_to="none", disable_tqdm=True, dataloader_num_workers=0, seed=0, log_completions=False,
    )
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=torch.float32)
    return GRPOTrainer(model=model, reward_funcs=format_reward, args=config,
                       train_dataset=Dataset.from_list(rows), processing_class=processor,
                       callbacks=[timer.callback()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    benchlib.one_thread()
    import torch
    import transformers
    import trl

    torch.manual_seed(0)
    timer = StepTimer()
    built = time.perf_counter()
    trainer = build_trainer(args, timer)
    build_seconds = time.perf_counter() - built
    trainer.train()
    benchlib.emit({"steps": timer.seconds[args.warmup:], "warmup_steps": timer.seconds[:args.warmup],
                   "build_seconds": build_seconds, "peak_rss_mb": benchlib.peak_rss_mb(),
                   "versions": {"trl": trl.__version__, "transformers": transformers.__version__,
                                "torch": torch.__version__}})


if __name__ == "__main__":
    main()
