"""LM-head loss with one dispatch point."""

from __future__ import annotations

import torch

from mmfree.ops.loss.naive import lm_head_loss_naive


def lm_head_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    norm_weight: torch.Tensor | None = None,
    ternary: bool = True,
    eps: float = 1e-6,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Mean next-token cross-entropy of a (ternary or full-precision) head: hidden `[N, D]`, weight `[V, D]`."""
    return lm_head_loss_naive(hidden, weight, labels, norm_weight, ternary, eps, ignore_index)


__all__ = ["lm_head_loss", "lm_head_loss_naive"]
