"""LM-head loss with one dispatch point: chunked (default) or the full-logits reference (`MMFREE_BACKEND=torch`).

The chunked form is plain PyTorch and runs on any device; `torch` keeps the unoptimized reference so
the baseline benchmark measures the library as it was before the fused paths.
"""

from __future__ import annotations

import torch

from mmfree.ops.backend import requested_backend
from mmfree.ops.loss.chunked import DEFAULT_CHUNK_TOKENS, lm_head_loss_chunked
from mmfree.ops.loss.naive import head_logits, lm_head_loss_naive


def lm_head_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    norm_weight: torch.Tensor | None = None,
    ternary: bool = True,
    eps: float = 1e-6,
    ignore_index: int = -100,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    backend: str | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the LM head over labels != ignore_index.

    Args:
        hidden: `[N, D]` final hidden states; weight: `[V, D]` head weight; labels: `[N]` int64;
        norm_weight: `[D]` the head's RMSNorm weight (ternary head) or None; ternary: BitLinear head
        (RMSNorm, int8 activations, ternary weight, STE) or a plain full-precision linear (no norm);
        chunk_tokens: tokens per chunk of the chunked form.
    Returns:
        0-d fp32 loss.
    """
    if hidden.ndim != 2 or weight.ndim != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"lm_head_loss: hidden must be [N, D] and weight [V, D]; got {tuple(hidden.shape)}, {tuple(weight.shape)}"
        )
    if labels.shape != hidden.shape[:1]:
        raise ValueError(f"lm_head_loss: labels must be [{hidden.shape[0]}]; got {tuple(labels.shape)}")
    if norm_weight is not None and tuple(norm_weight.shape) != (hidden.shape[1],):
        raise ValueError(
            f"lm_head_loss: norm_weight must be [{hidden.shape[1]}]; got {tuple(norm_weight.shape)}"
        )
    if requested_backend(backend) == "torch":
        return lm_head_loss_naive(hidden, weight, labels, norm_weight, ternary, eps, ignore_index)
    return lm_head_loss_chunked(hidden, weight, labels, norm_weight, ternary, eps, ignore_index, chunk_tokens)


__all__ = [
    "DEFAULT_CHUNK_TOKENS",
    "head_logits",
    "lm_head_loss",
    "lm_head_loss_chunked",
    "lm_head_loss_naive",
]
