"""cpu_compat: the flash-attn stand-in is exact, apply() is idempotent, OpenRLHF imports after it."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from fadtq.training import cpu_compat

RENDEZVOUS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCH_EXTENSIONS_DIR")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No rendezvous variables, the cache in tmp_path; everything restored afterwards."""
    for key in RENDEZVOUS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FADTQ_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_unpad_then_pad_round_trip_on_hand_values():
    hidden = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 0.0, 0.0]]).unsqueeze(-1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    unpadded, indices, cu_seqlens, max_len, used = cpu_compat.unpad_input(hidden, mask)
    assert unpadded.squeeze(-1).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert indices.tolist() == [0, 1, 2, 4, 5]
    assert cu_seqlens.tolist() == [0, 3, 5] and cu_seqlens.dtype == torch.int32
    assert max_len == 3 and used.tolist() == [3, 2]
    assert torch.equal(cpu_compat.pad_input(unpadded, indices, 2, 4), hidden)


def test_pad_input_passes_gradients_to_kept_rows_only():
    values = torch.tensor([[1.0], [2.0], [3.0]], requires_grad=True)
    padded = cpu_compat.pad_input(values, torch.tensor([0, 2, 3]), batch=2, seqlen=2)
    assert padded.squeeze(-1).tolist() == [[1.0, 0.0], [2.0, 3.0]]
    (padded * torch.tensor([[[1.0], [10.0]], [[100.0], [1000.0]]])).sum().backward()
    assert values.grad.squeeze(-1).tolist() == [1.0, 100.0, 1000.0]


def test_unused_mask_rows_are_kept_but_not_counted():
    hidden = torch.arange(4.0).view(1, 4, 1)
    _, indices, cu_seqlens, _, used = cpu_compat.unpad_input(
        hidden, torch.tensor([[1, 1, 0, 0]]), unused_mask=torch.tensor([[0, 0, 1, 0]])
    )
    assert indices.tolist() == [0, 1, 2] and cu_seqlens.tolist() == [0, 3] and used.tolist() == [2]


def test_apply_is_idempotent_and_keeps_existing_values(clean_env, monkeypatch):
    monkeypatch.setenv("MASTER_PORT", "29123")
    first = cpu_compat.apply()
    snapshot = {key: os.environ[key] for key in RENDEZVOUS}
    assert cpu_compat.apply() == []
    assert {key: os.environ[key] for key in RENDEZVOUS} == snapshot
    assert "env RANK=0" in first and not any(line.startswith("env MASTER_PORT") for line in first)
    assert snapshot["MASTER_PORT"] == "29123"
    assert snapshot["TORCH_EXTENSIONS_DIR"] == str(clean_env / "torch_extensions")


def test_free_port_default_when_unset(clean_env):
    cpu_compat.apply()
    assert 0 < int(os.environ["MASTER_PORT"]) < 65536


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA patches apply only without CUDA")
def test_cuda_calls_become_cpu(clean_env):
    cpu_compat.apply()
    torch.cuda.set_device(0)
    torch.cuda.synchronize()
    assert torch.cuda.current_device() == "cpu"


def test_openrlhf_imports_after_apply(clean_env):
    cpu_compat.apply()
    from openrlhf.models import Actor  # noqa: F401
    from openrlhf.models.ring_attn_utils import pad_input, unpad_input
    from openrlhf.utils.deepspeed import DeepspeedStrategy  # noqa: F401
    from transformers.utils import is_flash_attn_2_available

    assert importlib.util.find_spec("flash_attn") is not None  # a stand-in with a spec, never a ValueError
    if getattr(importlib.import_module("flash_attn"), "_fadtq_cpu_compat", False):
        assert unpad_input is cpu_compat.unpad_input and pad_input is cpu_compat.pad_input
        assert not is_flash_attn_2_available()
