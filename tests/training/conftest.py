"""Fixtures for the training tests: one tiny Qwen2.5-VL per session, one tiny model of every family,
the hf engine on them, and two image-pair prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fadtq.pretraining.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-qwen2.5-vl"), size="tiny", seed=0)


# Every family with a tiny-model builder; the default family's model is the session's tiny model.
FAMILIES = ("qwen2_5_vl", "qwen3_vl", "qwen3_5", "smolvlm")


@pytest.fixture(scope="session", params=FAMILIES)
def family_model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model of each family, built once per session."""
    if request.param == FAMILIES[0]:
        return request.getfixturevalue("tiny_model_dir")
    from fadtq.pretraining.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp(f"tiny-{request.param}"), size="tiny", seed=0, family=request.param)


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path):
    """The session's tiny model's tokenizer."""
    from fadtq.policy.processor import load_processor

    return load_processor(str(tiny_model_dir)).tokenizer


def left_padded_ids(tokenizer, texts: list[str]) -> torch.Tensor:
    """``texts`` tokenized without special tokens, one row each, padded on the left as in generation."""
    rows = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    width = max(map(len, rows))
    return torch.tensor([[tokenizer.pad_token_id] * (width - len(row)) + row for row in rows])


def hf_engine(model_dir: Path):
    """The hf rollout engine on a fresh copy of the model in ``model_dir`` (tests may hook or train it)."""
    from transformers import AutoModelForImageTextToText

    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.policy.processor import load_processor

    model = AutoModelForImageTextToText.from_pretrained(model_dir, attn_implementation="sdpa")
    return HFRolloutEngine(model, load_processor(model_dir))


@pytest.fixture
def engine(tiny_model_dir: Path):
    """The hf rollout engine on a fresh copy of the tiny model."""
    return hf_engine(tiny_model_dir)


@pytest.fixture
def family_engine(family_model_dir: Path):
    """The hf rollout engine on a fresh copy of each family's tiny model."""
    return hf_engine(family_model_dir)


def _pair(shade: int) -> tuple[Image.Image, Image.Image]:
    """A plain reference and a test copy with a dark scratch; sizes differ from the processor's."""
    reference = Image.new("RGB", (100, 90), (120 + shade, 140, 160))
    test = reference.copy()
    ImageDraw.Draw(test).line((10 + shade, 10, 80, 70), fill=(20, 20, 20), width=3)
    return reference, test


@pytest.fixture
def two_prompts():
    """Two (reference, test, question) prompts in the policy's chat format."""
    from fadtq.generation.engine import RolloutPrompt
    from fadtq.prompts import PromptLibrary, policy_messages

    library = PromptLibrary()
    return [
        RolloutPrompt(*_pair(0), policy_messages(library, "bottle")),
        RolloutPrompt(*_pair(40), policy_messages(library, "screw bag")),
    ]


@pytest.fixture(scope="session")
def trainer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``FADTQ_CACHE`` for every trainer test, with the look-alike benchmark built once here
    (so concurrent ranks and runs never race to build it)."""
    from fadtq.data.dataset import ensure_default_benchmark

    cache = tmp_path_factory.mktemp("fadtq-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FADTQ_CACHE", str(cache))
        ensure_default_benchmark(scale="tiny", seed=0)
    return cache


@pytest.fixture(scope="session")
def model_args(tiny_model_dir: Path) -> tuple[str, ...]:
    """The trainer tests train the session's tiny model as it is (no cached default, no format
    warm-up) with the small settings of ``loop.yaml``: they test the loop's mechanics, and the
    ``signal`` reward gives them a signal."""
    from trainer_testlib import LOOP_CONFIG

    return ("--config", str(LOOP_CONFIG), "--model.path", str(tiny_model_dir))


@pytest.fixture(scope="session")
def train_env(trainer_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a ``fadtq/train.py`` subprocess: the shared cache, one thread, and the
    test-only ``signal`` reward plugin on PYTHONPATH."""
    import os

    from trainer_testlib import REPO, write_signal_plugin

    plugin = write_signal_plugin(tmp_path_factory.mktemp("signal-plugin"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    pythonpath = [str(plugin), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update({"FADTQ_CACHE": str(trainer_cache), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": os.pathsep.join(pythonpath)})
    return env


@pytest.fixture
def in_process(monkeypatch, trainer_cache):
    """For a trainer built in this process: single-process rendezvous env (restored afterwards), the
    session cache, and teardown of the process group DeepSpeed sets up."""
    import torch.distributed as dist

    from fadtq.training import cpu_compat

    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(cpu_compat.free_port()), "FADTQ_CACHE": str(trainer_cache)}.items():
        monkeypatch.setenv(key, value)
    cpu_compat.apply()
    import deepspeed.comm.comm as ds_comm
    import deepspeed.utils.groups as ds_groups

    monkeypatch.setattr(ds_comm, "cdb", ds_comm.cdb)
    monkeypatch.setattr(ds_groups, "_WORLD_GROUP", None)  # DeepSpeed caches a clone of the old world group
    yield monkeypatch
    if dist.is_initialized():
        dist.destroy_process_group()
