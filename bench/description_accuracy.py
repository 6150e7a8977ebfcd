"""What a pretrained policy sees: per category and fact, how often its greedy description of a
fresh look-alike image (held out from pretraining) states the scene's own fact.

``fadtq pretrain`` teaches descriptions such as ``"6 pins, damage at the top left"``. Its check
counts whole descriptions; this breaks them into facts (a count, a part present or not, damage and
where), so that what the vision tower has not learned shows by name.

    .venv/bin/python bench/description_accuracy.py --model runs/pretrained --images 300
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

from benchlib import RESULTS, atomic_write_json, command_line, one_thread


def fact_name(phrase: str) -> str:
    """``"6 pins"`` -> ``pins``; ``"no toppings"`` -> ``toppings``; ``"damage at the top"`` -> ``damage``."""
    if "damage" in phrase:
        return "damage"
    words = phrase.replace("no ", "").split()
    return words[-1].rstrip("s") if words[0].isdigit() else " ".join(words[-1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", required=True, help="a pretrained model folder")
    parser.add_argument("--images", type=int, default=300, help="held-out fresh images")
    parser.add_argument("--categories", help="comma-separated scenes (default: all five)")
    args = parser.parse_args()
    one_thread()
    import torch
    from transformers import AutoModelForImageTextToText

    from fadtq.prompts import PromptLibrary
    from fadtq.pretraining.pretrain import VALIDATION_OFFSET, PretrainRecipe, examples
    from fadtq.policy.family import family_of_model
    from fadtq.policy.processor import load_processor

    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=torch.float32).eval()
    processor = load_processor(args.model)
    suppress = processor.tokenizer.convert_tokens_to_ids(list(family_of_model(model).vision_control_tokens))
    recipe = PretrainRecipe(categories=tuple(args.categories.split(","))) if args.categories else PretrainRecipe()
    held_out = list(examples(recipe, VALIDATION_OFFSET, args.images, PromptLibrary(), pair=False))
    right, seen, truths = Counter(), Counter(), defaultdict(Counter)
    for start in range(0, len(held_out), 32):
        chunk = held_out[start:start + 32]
        texts = [processor.apply_chat_template(e.messages, add_generation_prompt=True, tokenize=False) for e in chunk]
        inputs = processor(text=texts, images=[e.images for e in chunk], padding=True, padding_side="left",
                           return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=40, do_sample=False, suppress_tokens=suppress)
        for example, ids in zip(chunk, out[:, inputs["input_ids"].shape[1]:]):
            said = processor.tokenizer.decode(ids, skip_special_tokens=True).strip().rstrip(".").split(", ")
            for i, fact in enumerate(example.think.split(", ")):
                key = (example.category, fact_name(fact))
                seen[key] += 1
                truths[key][fact] += 1
                right[key] += i < len(said) and said[i] == fact
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    print(f"{'category':20s} {'fact':10s} {'said right':>10s} {'always the commonest':>21s}")
    for (category, fact), n in sorted(seen.items()):
        accuracy, majority = right[(category, fact)] / n, max(truths[(category, fact)].values()) / n
        table[category][fact] = {"accuracy": round(accuracy, 3), "majority": round(majority, 3), "images": n}
        print(f"{category:20s} {fact:10s} {accuracy:10.1%} {majority:21.1%}   ({n} images)")
    atomic_write_json(RESULTS / f"description_accuracy_{Path(args.model).name}.json",
                      {"model": str(args.model), "images": args.images, "accuracy": table,
                       "command": command_line()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
