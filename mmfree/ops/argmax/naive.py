"""Reference of the greedy token pick: `torch.argmax` over each row of the logits (the executable spec)."""

from __future__ import annotations

import torch


def argmax_rows(logits: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """logits `[B, V]` -> `[B]` int64: the index of each row's largest value, the first one on ties."""
    if out is None:
        return logits.argmax(-1)
    return torch.argmax(logits, dim=-1, out=out)
