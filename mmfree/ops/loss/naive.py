"""Reference LM-head loss: the full `[N, V]` logits, then `F.cross_entropy` (the executable spec)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmfree.ops.bitlinear.naive import bitlinear_naive


def head_logits(
    hidden: torch.Tensor, weight: torch.Tensor, norm_weight: torch.Tensor | None, ternary: bool, eps: float
) -> torch.Tensor:
    """Logits `[N, V]` of the head: a BitLinear (ternary=True) or a plain linear layer (ternary=False)."""
    if ternary:
        return bitlinear_naive(hidden, norm_weight, weight, None, eps)  # [N, V]
    return F.linear(hidden, weight)  # [N, V]


def lm_head_loss_naive(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    norm_weight: torch.Tensor | None = None,
    ternary: bool = True,
    eps: float = 1e-6,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Mean cross-entropy over labels != ignore_index. hidden `[N, D]`, weight `[V, D]`, labels `[N]`."""
    logits = head_logits(hidden, weight, norm_weight, ternary, eps)  # [N, V]
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)
