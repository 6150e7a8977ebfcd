"""Format warm-up for models trained from scratch (the offline tiny models), not for real ones.

A randomly initialised policy never writes ``<think>...</think><answer>...</answer>``, so every
reward is 0 and RL has no signal. This short supervised pass teaches the *form* only: responses
are templated reasoning sentences that say nothing about the images, with an answer drawn at
random, independent of the label. After it the policy writes the format, while its accuracy
stays at chance (about 1/3) with a high Balance Score: whatever RL gains afterwards is learned.
Qwen2.5-VL-3B and other instruction-tuned models need no warm-up.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import torch

from fadtq.prompts import CLASS_NAMES

NEUTRAL_SENTENCES = (
    "I compare the test image with the reference image.",
    "I look at each part, its count, its position and its surface.",
    "The reference shows the normal arrangement of the parts.",
    "I check the colours, the shapes and the layout of the test image.",
    "I compare the objects of both images one by one.",
)


def synthetic_response(rng: random.Random) -> str:
    """A well-formed response whose reasoning is neutral and whose answer is a coin flip."""
    think = " ".join(rng.sample(NEUTRAL_SENTENCES, k=rng.randint(1, 2)))
    return f"<think>{think}</think><answer>{rng.choice(CLASS_NAMES)}</answer>"


def supervised_batch(processor, pairs, responses, finished: bool = True) -> dict[str, torch.Tensor]:
    """Inputs with labels on the response tokens only (prompt and padding are -100). Each item of
    ``pairs`` has ``messages`` and either ``images`` (a list) or ``ref_image`` and ``test_image``.
    ``finished=False``: the responses are beginnings, with no end-of-turn token after them."""
    prompts = [processor.apply_chat_template(p.messages, add_generation_prompt=True, tokenize=False) for p in pairs]
    end = processor.tokenizer.eos_token if finished else ""
    texts = [prompt + response + end for prompt, response in zip(prompts, responses)]
    images = [list(getattr(p, "images", None) or (p.ref_image, p.test_image)) for p in pairs]
    inputs = dict(processor(text=texts, images=images, padding=True, padding_side="right", return_tensors="pt"))
    prompt_ids = processor(text=prompts, images=images, padding=True, padding_side="right", return_tensors="pt")
    prompt_lengths = prompt_ids["attention_mask"].sum(dim=1)
    labels = inputs["input_ids"].clone()
    positions = torch.arange(labels.shape[1]).unsqueeze(0)
    labels[(positions < prompt_lengths.unsqueeze(1)) | (inputs["attention_mask"] == 0)] = -100
    inputs["labels"] = labels
    return inputs


def warmup(model_path: str | Path, out: str | Path, dataset, steps: int = 150, batch_size: int = 8,
           lr: float = 1e-3, seed: int = 0, progress: bool = True) -> Path:
    """Train the format into ``model_path`` and save the result to ``out`` (written atomically)."""
    from tqdm import tqdm
    from transformers import AutoModelForImageTextToText

    from fadtq.policy.processor import load_processor, save_policy

    torch.manual_seed(seed)
    rng = random.Random(seed)
    processor = load_processor(model_path)
    model = AutoModelForImageTextToText.from_pretrained(str(model_path), dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    bar = tqdm(range(steps), desc="format warm-up", disable=not progress)
    for _ in bar:
        pairs = [dataset[rng.randrange(len(dataset))] for _ in range(batch_size)]
        loss = model(**supervised_batch(processor, pairs, [synthetic_response(rng) for _ in pairs])).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{time.time_ns()}")
    save_policy(model, processor, tmp, dataset.max_side)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
