"""Recurrent-state cache for generation: one fp32 `[B, d']` state per layer, constant in sequence length."""

from __future__ import annotations

import torch


class MMFreeCache:
    """The per-layer MLGRU states carried between forward calls (what a KV cache is for a Transformer).

    `states[l]` is `[B, d']` fp32 (or None before the first call); `seen_tokens` counts the positions
    consumed so far, which generation uses to feed only the new tokens.
    """

    is_compileable = False

    def __init__(self, num_layers: int) -> None:
        self.states: list[torch.Tensor | None] = [None] * num_layers
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.states)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Positions consumed so far."""
        return self.seen_tokens

    def get_max_cache_shape(self) -> int | None:
        """No maximum: the state does not grow with the sequence."""
        return None

    def update(self, layer_idx: int, state: torch.Tensor) -> None:
        """Store layer `layer_idx`'s new state `[B, d']`."""
        self.states[layer_idx] = state

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Select batch rows (beam search)."""
        self.states = [None if s is None else s.index_select(0, beam_idx.to(s.device)) for s in self.states]

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat each batch row `repeats` times (num_return_sequences, beam expansion)."""
        self.states = [None if s is None else s.repeat_interleave(repeats, dim=0) for s in self.states]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the given batch rows."""
        self.reorder_cache(indices)

    def memory_bytes(self) -> int:
        """Bytes held by the states."""
        return sum(s.numel() * s.element_size() for s in self.states if s is not None)
