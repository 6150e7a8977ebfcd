"""A transformers cache that linear-attention layers can continue from with gradients.

transformers' ``LinearAttentionLayer`` keeps a layer's recurrent state in a fixed tensor and copies
each forward's new state into it (``copy_``: the fixed address is for CUDA graphs). The prompt cache
continues every row from a copy of its prompt's state, inside the autograd graph; the completions'
forward reads that state, which its backward needs, and then overwrites it in place: the backward
pass fails ("modified by an inplace operation"). :class:`StateReplacingCache` keeps the new state as
it is instead, which costs nothing without CUDA graphs (the policy runs none). The convolution
state is copied into in place too, but no backward reads it (the forward only concatenates it), so
it stays transformers' own, as do the attention layers.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache


class StateReplacingCache(DynamicCache):
    """A ``DynamicCache`` whose linear-attention layers keep each forward's recurrent state, never
    copying it into the previous one."""

    def update_recurrent_state(self, recurrent_states: torch.Tensor, layer_idx: int, state_idx: int = 0,
                               **kwargs) -> torch.Tensor:
        layer = self.layers[layer_idx]
        layer.recurrent_states[state_idx] = recurrent_states
        layer.is_recurrent_states_initialized[state_idx] = True
        return recurrent_states
