"""Reference LM-head loss: full logits, then cross-entropy (the spec for the chunked version)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmfree.ops.bitlinear.naive import bitlinear_naive


def lm_head_loss_naive(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    norm_weight: torch.Tensor | None = None,
    ternary: bool = True,
    eps: float = 1e-6,
    ignore_index: int = -100,
) -> torch.Tensor:
    """hidden `[N, D]`, weight `[V, D]`, labels `[N]` -> mean loss over labels != ignore_index."""
    if ternary:
        logits = bitlinear_naive(hidden, norm_weight, weight, None, eps)  # [N, V]
    else:
        logits = F.linear(hidden, weight)  # [N, V]
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)
