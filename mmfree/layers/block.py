"""The pre-norm residual block: `x + MLGRU(RMSNorm(x))`, then `x + GLU(RMSNorm(x))`."""

from __future__ import annotations

import torch
from torch import nn

from mmfree.layers.glu import GLU
from mmfree.layers.mlgru import MLGRU, GateForm
from mmfree.layers.norm import RMSNorm


class MMFreeBlock(nn.Module):
    """One layer of the MatMul-free LM (parameter names as in the official checkpoints)."""

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        layer_idx: int,
        expand_ratio: int = 1,
        num_heads: int = 1,
        gate_form: GateForm = "official",
        norm_eps: float = 1e-6,
        bitlinear_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.attn_norm = RMSNorm(hidden_size, eps=norm_eps)
        self.attn = MLGRU(hidden_size, expand_ratio, num_heads, gate_form, norm_eps, bitlinear_eps, layer_idx)
        self.mlp_norm = RMSNorm(hidden_size, eps=norm_eps)
        self.mlp = GLU(hidden_size, intermediate_size, bitlinear_eps)

    def forward(
        self,
        x: torch.Tensor,
        lower_bound: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x `[B, T, d]` -> (`[B, T, d]`, final recurrent state `[B, d']` fp32)."""
        h, final = self.attn(self.attn_norm(x), lower_bound, state, reset, mask)
        x = x + h
        x = x + self.mlp(self.mlp_norm(x))
        return x, final
