"""SwiGLU of the GLU channel mixer, with one dispatch point (`MMFREE_BACKEND=auto|triton|torch`)."""

from __future__ import annotations

import torch

from mmfree.ops.backend import use_triton
from mmfree.ops.glu.naive import swiglu as swiglu_naive


def swiglu(y: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """`SiLU(gate) * up` with `[gate, up] = y.chunk(2, -1)`; y `[..., 2I]` -> `[..., I]` in y's dtype."""
    if use_triton("swiglu", y, backend=backend):
        from mmfree.ops.glu.triton import swiglu_triton

        return swiglu_triton(y)
    return swiglu_naive(y)


__all__ = ["swiglu", "swiglu_naive"]
