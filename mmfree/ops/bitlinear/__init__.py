"""BitLinear op with one dispatch point (`MMFREE_BACKEND=auto|triton|torch`)."""

from __future__ import annotations

import torch

from mmfree.ops.backend import use_triton
from mmfree.ops.bitlinear.naive import bitlinear_naive


def bitlinear(
    x: torch.Tensor,
    norm_weight: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    eps: float = 1e-6,
    backend: str | None = None,
) -> torch.Tensor:
    """Ternary-weight, int8-activation linear layer with its input RMSNorm.

    Args:
        x: `[..., K]` input; norm_weight: `[K]`; weight: `[N, K]` master weight; bias: `[N]` or None.
    Returns:
        `[..., N]` in x's dtype, or in the autocast dtype inside an autocast region (as `F.linear`).
    """
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"bitlinear: input has {x.shape[-1]} features but the weight expects {weight.shape[-1]}"
        )
    if use_triton("bitlinear", x, weight, backend=backend):
        from mmfree.ops.bitlinear.triton import bitlinear_triton

        # A custom kernel is invisible to autocast: cast like F.linear would, so mixed-precision training
        # (fp32 master weights, bf16 autocast) runs the kernel and its backward GEMMs in bf16, not fp32.
        if torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return bitlinear_triton(x, norm_weight, weight, bias, eps)
    return bitlinear_naive(x, norm_weight, weight, bias, eps)


def bitlinear_shared(
    x: torch.Tensor,
    norm_weights: list[torch.Tensor],
    weights: list[torch.Tensor],
    eps: float = 1e-6,
    backend: str | None = None,
) -> list[torch.Tensor]:
    """Several bias-free BitLinears of the same input `[..., K]` (each its own norm weight `[K]` and weight
    `[N_p, K]`, one epsilon) -> their outputs `[..., N_p]`. The same values as one `bitlinear` call each;
    on the Triton path the backward runs the norms' backward for all of them in one pass (`shared.py`)."""
    if use_triton("bitlinear", x, *weights, backend=backend):
        from mmfree.ops.bitlinear.shared import bitlinear_shared_triton

        if torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return bitlinear_shared_triton(x, norm_weights, weights, eps)
    return [bitlinear(x, nw, w, None, eps, backend=backend) for nw, w in zip(norm_weights, weights)]


def invalidate_weight_cache() -> None:
    """Drop the Triton path's cached ternarized weights. Optimizer steps do this by themselves; call it after
    writing weights through `.data` or by other means outside an optimizer."""
    import sys

    module = sys.modules.get("mmfree.ops.bitlinear.triton")
    if module is not None:
        module.invalidate_weight_cache()


__all__ = ["bitlinear", "bitlinear_naive", "bitlinear_shared", "invalidate_weight_cache"]
