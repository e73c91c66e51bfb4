"""Ternary GLU channel mixer: `down_proj(SiLU(g) * u)` with `[g, u] = gate_proj(x)` (official layout)."""

from __future__ import annotations

import torch
from torch import nn

from mmfree.layers.bitlinear import BitLinear
from mmfree.ops.glu import swiglu


def glu_intermediate_size(hidden_size: int, hidden_ratio: int = 4) -> int:
    """The official GLU width: `256 * ceil(int(d * ratio * 2 / 3) / 256)` (2816 at d=1024)."""
    inner = int(hidden_size * hidden_ratio * 2 / 3)
    return 256 * ((inner + 255) // 256)


class GLU(nn.Module):
    """`[..., d] -> [..., d]` through a fused gate/up projection d -> 2I and a down projection I -> d."""

    def __init__(self, hidden_size: int, intermediate_size: int, bitlinear_eps: float = 1e-6) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.gate_proj = BitLinear(hidden_size, 2 * intermediate_size, eps=bitlinear_eps)
        self.down_proj = BitLinear(intermediate_size, hidden_size, eps=bitlinear_eps)
        self.down_proj.init_scheme = "normal_residual"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(swiglu(self.gate_proj(x)))  # [..., 2I] -> [..., I] -> [..., d]
