"""Reference RMSNorm and the gated variants used by MLGRU's output gate (fp32 math, input dtype out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-6) -> torch.Tensor:
    """`x * rsqrt(mean(x^2) + eps) * weight` over the last dim, computed in fp32.

    Args:
        x: `[..., D]`; weight: `[D]` or None.
    Returns:
        `[..., D]` in x's dtype.
    """
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)  # [..., D]
    if weight is not None:
        y = y * weight.float()
    return y.to(x.dtype)


def rms_norm_swish_gate(x: torch.Tensor, o: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-6):
    """The official MLGRU output gate: `RMSNorm(x) * o * sigmoid(o)`; x, o `[..., D]`, weight `[D]`."""
    y = rms_norm(x, weight, eps).float()
    of = o.float()
    return (y * F.silu(of)).to(x.dtype)
