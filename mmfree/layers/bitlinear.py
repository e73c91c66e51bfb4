"""BitLinear: RMSNorm, per-token int8 activations and per-tensor ternary weights around a linear map.

Parameter names follow the official code (`weight`, `norm.weight`) so checkpoints load either way.
Full-precision master weights are kept; training passes gradients straight through both quantizers.
"""

from __future__ import annotations

import torch
from torch import nn

from mmfree.layers.norm import RMSNorm
from mmfree.ops.bitlinear import bitlinear
from mmfree.ops.quant import ternary_codes


class BitLinear(nn.Linear):
    """Ternary-weight linear layer with its own input RMSNorm: `[..., in] -> [..., out]`.

    Args:
        in_features, out_features: sizes; bias: official models have none.
        eps: the input RMSNorm's epsilon (1e-6 is what the released checkpoints were trained with).
    """

    # How a model initializes this layer's weight: "normal" (std = initializer_range), "xavier" (gain 2^-2.5,
    # the official token-mixer init); a "_residual" suffix scales it by 1/sqrt(2 * layers) (residual outputs).
    init_scheme: str = "normal"

    def __init__(self, in_features: int, out_features: int, bias: bool = False, eps: float = 1e-6) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.norm = RMSNorm(in_features, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bitlinear(x, self.norm.weight, self.weight, self.bias, self.norm.eps)

    @torch.no_grad()
    def ternary(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight's ternary codes `[out, in]` int8 and its fp32 scale (what packing stores)."""
        return ternary_codes(self.weight)
