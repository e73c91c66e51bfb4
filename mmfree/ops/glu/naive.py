"""Plain-PyTorch SwiGLU over a fused gate/up tensor: the executable spec of `triton.py`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def swiglu(y: torch.Tensor) -> torch.Tensor:
    """`SiLU(gate) * up` with `[gate, up] = y.chunk(2, -1)`; y `[..., 2I]` -> `[..., I]` in y's dtype.

    SiLU's output is rounded to y's dtype before the product (what `F.silu(gate) * up` computes in bf16).
    """
    gate, up = y.chunk(2, dim=-1)  # [..., I] each
    return F.silu(gate) * up
