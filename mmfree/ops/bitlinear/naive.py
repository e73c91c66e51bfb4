"""Reference BitLinear: RMSNorm -> per-token int8 fake quant -> ternary fake-quant weight -> linear.

This is the unoptimized path (it stores the normalized input and the quantized weight for backward);
gradients pass straight through both quantizers: `dX = dY W_q`, `dW = dY^T x_q`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmfree.ops.norm.naive import rms_norm
from mmfree.ops.quant.naive import act_quant, weight_quant


def bitlinear_naive(
    x: torch.Tensor,
    norm_weight: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """`[..., K] -> [..., N]` with weight `[N, K]`, norm_weight `[K]`."""
    xn = rms_norm(x, norm_weight, eps)  # [..., K]
    return F.linear(act_quant(xn), weight_quant(weight), bias)  # [..., N]
