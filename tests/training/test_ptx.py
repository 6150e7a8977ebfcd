"""``train.ptx_coef``: RL mixes in the policy's pretraining reasoning on fresh pairs, never the answer."""

from __future__ import annotations

import torch

from fadtq.run_config import load_run_config
from fadtq.policy.processor import load_processor
from fadtq.training.auxiliary import MicroBatch
from fadtq.training.ptx import PTX_OFFSET, DescriptionLoss
from fadtq.pretraining.warmup import supervised_batch


def test_beginnings_carry_no_end_of_turn(tiny_model_dir):
    processor = load_processor(tiny_model_dir)
    from fadtq.pretraining.pretrain import PretrainRecipe, examples
    from fadtq.prompts import PromptLibrary

    pair = next(examples(PretrainRecipe(), PTX_OFFSET, 1, PromptLibrary(), pair=True))
    eos = processor.tokenizer.convert_tokens_to_ids(processor.tokenizer.eos_token)
    whole = supervised_batch(processor, [pair], [pair.response])
    begun = supervised_batch(processor, [pair], [f"<think>{pair.think}</think><answer>"], finished=False)
    assert eos in whole["labels"][0].tolist() and eos not in begun["labels"][0].tolist()
    labelled = begun["input_ids"][0][begun["labels"][0] != -100]
    text = processor.tokenizer.decode(labelled)
    assert text.startswith("<think>reference:") and text.endswith("<answer>")


def test_the_mix_is_the_same_for_the_same_slot_and_differs_between_slots(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    cfg = load_run_config("cpu_default", {"train.ptx_coef": "1.0", "train.ptx_batch_size": "2"})
    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    ptx = DescriptionLoss(cfg, load_processor(tiny_model_dir), rank=0, world_size=2)
    with torch.no_grad():
        slot = MicroBatch(step=3, number=1, count=4)
        (first, weight), (again, _) = ptx(model, None, None, slot), ptx(model, None, None, slot)
        other_rank, _ = DescriptionLoss(cfg, load_processor(tiny_model_dir), rank=1, world_size=2)(model, None, None, slot)
    assert torch.isfinite(first) and first.item() == again.item() != other_rank.item() and weight == 1.0


def test_a_run_with_ptx_and_a_frozen_tower_logs_the_mix_and_keeps_the_tower(train_env, model_args, tiny_model_dir,
                                                                            tmp_path):
    from trainer_testlib import ok, policy_state, python_cmd, rows, run

    ok(run(python_cmd(*model_args, "--rewards", "format,accuracy,signal", "--train.max_steps", "2",
                      "--rollout.max_new_tokens", "8", "--train.ptx_coef", "0.5", "--train.ptx_batch_size", "1",
                      "--train.freeze_vision_tower", "true", "--output.dir", tmp_path, "--output.name", "run"),
           train_env))
    assert all(row["loss/ptx_loss"] > 0 for row in rows(tmp_path / "run" / "metrics.jsonl"))
    start, final = policy_state(tiny_model_dir), policy_state(tmp_path / "run" / "final")
    tower = [name for name in start if ".visual." in f".{name}"]
    assert tower and all(torch.equal(start[name], final[name]) for name in tower)
    assert any(not torch.equal(start[name], final[name]) for name in start if name not in tower)
