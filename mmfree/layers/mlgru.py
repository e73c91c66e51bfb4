"""MLGRU token mixer: ternary projections around an element-wise gated linear recurrence.

`gate_form="official"` (what the released checkpoints need): `o_proj(RMSNorm(g_proj(x)) * swish(h))`,
the gate and the state swapped relative to the paper. `gate_form="paper"`: `o_proj(sigmoid(g_proj(x)) * h)`.
Both share `f = lb + (1 - lb) * sigmoid(f_proj(x))`, `i = SiLU(i_proj(x)) * (1 - f)`, `h_t = f_t h_{t-1} + i_t`
(fp32 state, d numbers per layer, constant in the sequence length).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mmfree.layers.bitlinear import BitLinear
from mmfree.layers.norm import RMSNorm
from mmfree.ops.bitlinear import bitlinear_shared
from mmfree.ops.mlgru import mlgru
from mmfree.ops.norm import rms_norm_swish_gate

GateForm = Literal["official", "paper"]
GATE_FORMS: tuple[str, ...] = ("official", "paper")


class MLGRU(nn.Module):
    """MatMul-free linear GRU.

    Args:
        hidden_size: model width d.
        expand_ratio: recurrence width = d * expand_ratio (official: 1).
        num_heads: only reshapes (the recurrence is element-wise); kept for config compatibility.
        gate_form: "official" or "paper" (see the module docstring).
        norm_eps: epsilon of the output-gate RMSNorm; bitlinear_eps: epsilon of each BitLinear's norm.
    """

    def __init__(
        self,
        hidden_size: int,
        expand_ratio: int = 1,
        num_heads: int = 1,
        gate_form: GateForm = "official",
        norm_eps: float = 1e-6,
        bitlinear_eps: float = 1e-6,
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        if gate_form not in GATE_FORMS:
            raise ValueError(f"unknown gate_form {gate_form!r}; choose one of {GATE_FORMS}")
        self.hidden_size = hidden_size
        self.input_dim = int(hidden_size * expand_ratio)
        self.num_heads = num_heads
        self.gate_form = gate_form
        self.layer_idx = layer_idx
        self.i_proj = BitLinear(hidden_size, self.input_dim, eps=bitlinear_eps)
        self.f_proj = BitLinear(hidden_size, self.input_dim, eps=bitlinear_eps)
        self.g_proj = BitLinear(hidden_size, self.input_dim, eps=bitlinear_eps)
        if gate_form == "official":
            self.g_norm = RMSNorm(self.input_dim, eps=norm_eps)
        self.o_proj = BitLinear(self.input_dim, hidden_size, eps=bitlinear_eps)
        for proj in (self.i_proj, self.f_proj, self.g_proj):
            proj.init_scheme = "xavier"
        self.o_proj.init_scheme = "xavier_residual"

    def _input_projections(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """i, f, g projections of x `[B, T, d]`: one shared-input op for three plain BitLinears (one backward
        pass for their norms on the Triton path), else each module (packed or otherwise swapped ones)."""
        projs = (self.i_proj, self.f_proj, self.g_proj)
        if all(type(p) is BitLinear and p.bias is None and p.norm.eps == projs[0].norm.eps for p in projs):
            i_raw, f_raw, g = bitlinear_shared(
                x, [p.norm.weight for p in projs], [p.weight for p in projs], projs[0].norm.eps
            )
            return i_raw, f_raw, g
        return self.i_proj(x), self.f_proj(x), self.g_proj(x)

    def forward(
        self,
        x: torch.Tensor,
        lower_bound: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x `[B, T, d]`; lower_bound `[d']`; state `[B, d']` fp32; reset, mask `[B, T]`.

        Returns the output `[B, T, d]` and the final state `[B, d']` (fp32).
        """
        i_raw, f_raw, g = self._input_projections(x)  # [B, T, d'] each
        h, final = mlgru(f_raw, i_raw, lower_bound, state, reset, mask)  # [B, T, d'], [B, d']
        if self.gate_form == "official":
            o = rms_norm_swish_gate(g, h, self.g_norm.weight, self.g_norm.eps)  # [B, T, d']
        else:
            o = torch.sigmoid(g) * h  # [B, T, d']
        return self.o_proj(o), final
