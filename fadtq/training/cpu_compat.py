"""What OpenRLHF's ``DeepspeedStrategy`` and ``Actor`` need to run without CUDA or flash-attn.

OpenRLHF 0.11 assumes a GPU machine in three places, each patched here only when the thing is
absent, so on a GPU machine with flash-attn :func:`apply` changes nothing but missing env vars:

1. ``openrlhf/models/ring_attn_utils.py`` imports ``flash_attn.bert_padding`` (index_first_axis,
   pad_input, rearrange, unpad_input) and ``flash_attn.utils.distributed.all_gather`` at import
   time, which makes ``openrlhf.models`` and ``openrlhf.utils.deepspeed`` unimportable without
   flash-attn. A pure-torch stand-in is registered in ``sys.modules`` when ``flash_attn`` cannot
   be imported. It is exact, only slower, and serves the packed-sample / ring-attention paths.
2. ``DeepspeedStrategy`` calls ``torch.cuda.set_device``, ``torch.cuda.current_device`` (as the
   device of reduced tensors) and ``torch.cuda.synchronize``. Without CUDA they become a no-op,
   ``"cpu"`` and a no-op.
3. DeepSpeed on its CPU accelerator JIT-compiles a shared-memory all-reduce op at
   ``init_distributed`` (about 40 s with gcc), used only by ``inference_all_reduce``; training
   reduces through gloo. Unless the op was prebuilt, it is marked incompatible so it is skipped.
4. DeepSpeed started without its launcher falls back to MPI discovery and fails on mpi4py, so the
   single-process rendezvous variables get defaults (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
   a free MASTER_PORT). ``TORCH_EXTENSIONS_DIR`` defaults to the project cache
   (``$FADTQ_CACHE`` or ``<repo>/.cache/fadtq``) so ops DeepSpeed JIT-compiles are built once.

Call :func:`apply` before importing ``openrlhf``. It is idempotent and returns what it changed.
"""

from __future__ import annotations

import importlib.machinery
import os
import socket
import sys
import types

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange

from fadtq.paths import cache_dir

_MARK = "_fadtq_cpu_compat"
_SHM_COMM_OP = "deepspeed_shm_comm"


def index_first_axis(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows ``indices`` of ``tensor`` (differentiable through plain indexing)."""
    return tensor[indices]


def unpad_input(
    hidden_states: torch.Tensor, attention_mask: torch.Tensor, unused_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """Drop padded positions: ``(b, s, ...) -> (total, ...)`` plus what :func:`pad_input` needs.

    Returns (unpadded, indices into the flattened ``b*s`` axis, cumulative sequence lengths as
    int32 with a leading 0, the longest sequence, per-row used lengths), as flash-attn 2.8 does.
    ``unused_mask`` marks positions kept in the output but not counted as used.
    """
    keep = attention_mask + unused_mask if unused_mask is not None else attention_mask
    used_seqlens = attention_mask.sum(dim=-1, dtype=torch.int32)
    seqlens = keep.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(keep.flatten(), as_tuple=False).flatten()
    cu_seqlens = F.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
    flat = rearrange(hidden_states, "b s ... -> (b s) ...")
    return index_first_axis(flat, indices), indices, cu_seqlens, int(seqlens.max().item()), used_seqlens


def pad_input(hidden_states: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """Inverse of :func:`unpad_input`: ``(total, ...) -> (batch, seqlen, ...)``, zeros at padding."""
    output = hidden_states.new_zeros((batch * seqlen, *hidden_states.shape[1:]))
    output = output.index_put((indices,), hidden_states)
    return rearrange(output, "(b s) ... -> b s ...", b=batch)


class _AllGather(torch.autograd.Function):
    """Concatenate every rank's tensor along dim 0; the gradient is the sum of this rank's slices."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
        ctx.group = group
        ctx.rank = dist.get_rank(group=group)
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group=group))]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad.chunk(dist.get_world_size(group=ctx.group), dim=0)[ctx.rank], None


def all_gather(tensor: torch.Tensor, process_group: dist.ProcessGroup | None) -> torch.Tensor:
    return _AllGather.apply(tensor, process_group)


def _module(name: str, **attributes: object) -> types.ModuleType:
    """A stand-in module with a spec, so ``importlib.util.find_spec`` does not raise on it."""
    module = types.ModuleType(name, "fadtq.training.cpu_compat stand-in for flash-attn")
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    setattr(module, _MARK, True)
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


def _flash_attn_importable() -> bool:
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def _install_flash_attn_standin() -> list[str]:
    if getattr(sys.modules.get("flash_attn"), _MARK, False) or _flash_attn_importable():
        return []
    bert_padding = _module(
        "flash_attn.bert_padding",
        index_first_axis=index_first_axis,
        pad_input=pad_input,
        rearrange=rearrange,
        unpad_input=unpad_input,
    )
    distributed = _module("flash_attn.utils.distributed", all_gather=all_gather)
    utils = _module("flash_attn.utils", distributed=distributed)
    root = _module("flash_attn", bert_padding=bert_padding, utils=utils)
    sys.modules.update(
        {
            "flash_attn": root,
            "flash_attn.bert_padding": bert_padding,
            "flash_attn.utils": utils,
            "flash_attn.utils.distributed": distributed,
        }
    )
    return ["flash_attn stand-in (bert_padding, utils.distributed.all_gather)"]


def _set_device(_device: object) -> None:
    """Without CUDA there is one device, the CPU: nothing to select."""


def _current_device() -> str:
    return "cpu"


def _synchronize(_device: object = None) -> None:
    """CPU ops run synchronously: nothing to wait for."""


_CUDA_REPLACEMENTS = {"set_device": _set_device, "current_device": _current_device, "synchronize": _synchronize}
for _replacement in _CUDA_REPLACEMENTS.values():
    setattr(_replacement, _MARK, True)


def _patch_cuda() -> list[str]:
    if torch.cuda.is_available() or getattr(torch.cuda.set_device, _MARK, False):
        return []
    for name, replacement in _CUDA_REPLACEMENTS.items():
        setattr(torch.cuda, name, replacement)
    return ["torch.cuda.set_device/current_device/synchronize -> cpu"]


def _skip_shm_comm_build() -> list[str]:
    if torch.cuda.is_available():
        return []
    import deepspeed.ops
    from deepspeed.git_version_info import installed_ops

    compatible = deepspeed.ops.__compatible_ops__
    if installed_ops.get(_SHM_COMM_OP) or not compatible.get(_SHM_COMM_OP):
        return []
    compatible[_SHM_COMM_OP] = False
    return [f"deepspeed {_SHM_COMM_OP} op not built (inference-only)"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env_defaults() -> list[str]:
    """Single-process rendezvous and the extension cache, only for variables not already set."""
    defaults = {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "TORCH_EXTENSIONS_DIR": str(cache_dir() / "torch_extensions"),
    }
    if "MASTER_PORT" not in os.environ:
        defaults["MASTER_PORT"] = str(free_port())
    changed = []
    for key, value in defaults.items():
        if key not in os.environ:
            os.environ[key] = value
            changed.append(f"env {key}={value}")
    return changed


def apply() -> list[str]:
    """Apply every patch whose target is absent; returns one line per change made by this call."""
    return _install_flash_attn_standin() + _patch_cuda() + _skip_shm_comm_build() + _env_defaults()
