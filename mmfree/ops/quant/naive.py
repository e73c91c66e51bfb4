"""Reference quantizers of BitLinear (the executable spec for every kernel).

- weights: per-tensor absmean ternary, `g = max(mean|W|, 1e-5)`, codes `clamp(round(W / g), -1, 1)`;
- activations: per-token absmax int8, `s = 127 / max(|x|, 1e-5)` over the last dim,
  codes `clamp(round(x * s), -128, 127)`.

The fake-quantized forms return `codes * scale` with straight-through gradients (identity backward),
exactly as the official code does (it multiplies by the reciprocal scale, so do we).
"""

from __future__ import annotations

import torch

WEIGHT_EPS = 1e-5
ACT_EPS = 1e-5


def ternary_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary codes of a weight and its scale.

    Args:
        weight: `[N, K]` full-precision weight.
    Returns:
        codes `[N, K]` int8 in {-1, 0, 1} and the fp32 scalar `g` with `W_q = codes * g`.
    """
    w = weight.float()
    inv = 1.0 / w.abs().mean().clamp(min=WEIGHT_EPS)  # []
    codes = (w * inv).round().clamp(-1, 1).to(torch.int8)  # [N, K]
    return codes, 1.0 / inv


def weight_quant(weight: torch.Tensor) -> torch.Tensor:
    """Fake-quantized ternary weight `codes * g` in the weight's dtype, with a straight-through gradient."""
    inv = 1.0 / weight.abs().mean().clamp(min=WEIGHT_EPS)
    wq = (weight * inv).round().clamp(-1, 1) / inv
    return weight + (wq - weight).detach()


def int8_codes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token int8 codes and scales.

    Args:
        x: `[..., K]` activations.
    Returns:
        codes `[..., K]` int8 and scales `[..., 1]` fp32 (`s`; the value is `codes / s`).
    """
    xf = x.float()
    scale = 127.0 / xf.abs().amax(dim=-1, keepdim=True).clamp(min=ACT_EPS)  # [..., 1]
    codes = (xf * scale).round().clamp(-128, 127).to(torch.int8)  # [..., K]
    return codes, scale


def act_quant(x: torch.Tensor) -> torch.Tensor:
    """Fake-quantized int8 activation `codes / s` in x's dtype, with a straight-through gradient."""
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=ACT_EPS)
    xq = (x * scale).round().clamp(-128, 127) / scale
    return x + (xq - x).detach()
