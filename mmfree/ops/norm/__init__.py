"""RMSNorm and the MLGRU output gate, each with one dispatch point (`MMFREE_BACKEND=auto|triton|torch`)."""

from __future__ import annotations

import torch

from mmfree.ops.backend import use_triton
from mmfree.ops.norm import naive
from mmfree.ops.norm.naive import rms_norm as rms_norm_naive
from mmfree.ops.norm.naive import rms_norm_swish_gate as rms_norm_swish_gate_naive


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-6, backend: str | None = None
) -> torch.Tensor:
    """`x * rsqrt(mean(x^2) + eps) * weight` over the last dim; x `[..., D]`, weight `[D]` -> x's dtype."""
    if use_triton("rms_norm", x, backend=backend):
        from mmfree.ops.norm.triton import rms_norm_triton

        return rms_norm_triton(x, weight, eps)
    return naive.rms_norm(x, weight, eps)


def rms_norm_swish_gate(
    x: torch.Tensor,
    o: torch.Tensor,
    weight: torch.Tensor | None,
    eps: float = 1e-6,
    backend: str | None = None,
) -> torch.Tensor:
    """The official MLGRU output gate `RMSNorm(x) * o * sigmoid(o)`; x, o `[..., D]`, weight `[D]`."""
    if x.shape != o.shape:
        raise ValueError(
            f"rms_norm_swish_gate: x and o must have the same shape; got {tuple(x.shape)}, {tuple(o.shape)}"
        )
    if use_triton("rms_norm_swish_gate", x, o, backend=backend):
        from mmfree.ops.norm.triton import rms_norm_swish_gate_triton

        return rms_norm_swish_gate_triton(x, o, weight, eps)
    return naive.rms_norm_swish_gate(x, o, weight, eps)


__all__ = ["rms_norm", "rms_norm_naive", "rms_norm_swish_gate", "rms_norm_swish_gate_naive"]
