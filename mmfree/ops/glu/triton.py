"""Triton SwiGLU `SiLU(gate) * up` over the fused gate/up projection `[..., 2I]`, forward and backward.

The plain-PyTorch form (`naive.py`) runs SiLU, the product and, in backward, three products, SiLU's
backward and a `cat` of the two halves' gradients, and autograd keeps SiLU's `[..., I]` output for the
backward. Here the forward reads the two halves once and writes the product; the backward recomputes SiLU
from the saved input and writes both halves' gradients straight into one `[..., 2I]` tensor (no cat). Math
in fp32, every intermediate the reference stores rounded to the input dtype, so results match it to the
last bit or close.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 2048  # elements of the [M, I] output per program


@triton.jit
def _swiglu_fwd_kernel(Y, OUT, n, I, BLOCK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # flat index into [M, I]
    mask = e < n
    row, col = e // I, e % I
    g = tl.load(Y + row * 2 * I + col, mask=mask, other=0.0).to(tl.float32)  # gate half
    u = tl.load(Y + row * 2 * I + I + col, mask=mask, other=0.0).to(tl.float32)  # up half
    s = (g * tl.sigmoid(g)).to(OUT.dtype.element_ty).to(tl.float32)
    tl.store(OUT + e, (s * u).to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd_kernel(Y, DOUT, DY, n, I, BLOCK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    row, col = e // I, e % I
    g = tl.load(Y + row * 2 * I + col, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(Y + row * 2 * I + I + col, mask=mask, other=0.0).to(tl.float32)
    do = tl.load(DOUT + e, mask=mask, other=0.0).to(tl.float32)
    sig = tl.sigmoid(g)
    s = (g * sig).to(DY.dtype.element_ty).to(tl.float32)
    ds = (do * u).to(DY.dtype.element_ty).to(tl.float32)  # d SiLU(g), rounded as the reference stores it
    dg = ds * sig * (1.0 + g * (1.0 - sig))
    tl.store(DY + row * 2 * I + col, dg.to(DY.dtype.element_ty), mask=mask)
    tl.store(DY + row * 2 * I + I + col, (do * s).to(DY.dtype.element_ty), mask=mask)


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


def swiglu_fwd(y: torch.Tensor) -> torch.Tensor:
    """y `[M, 2I]` contiguous -> `[M, I]`."""
    M, I2 = y.shape
    out = torch.empty(M, I2 // 2, dtype=y.dtype, device=y.device)  # [M, I]
    if out.numel():
        _swiglu_fwd_kernel[_grid(out.numel())](y, out, out.numel(), I2 // 2, BLOCK=BLOCK, num_warps=8)
    return out


def swiglu_bwd(y: torch.Tensor, dout: torch.Tensor) -> torch.Tensor:
    """y `[M, 2I]`, dout `[M, I]` (both contiguous) -> dy `[M, 2I]`."""
    dy = torch.empty_like(y)  # [M, 2I]
    if dout.numel():
        _swiglu_bwd_kernel[_grid(dout.numel())](
            y, dout, dy, dout.numel(), y.shape[1] // 2, BLOCK=BLOCK, num_warps=8
        )
    return dy


class SwiGLUFunction(torch.autograd.Function):
    """Saves only the input (which the gate/up projection produced anyway); SiLU is recomputed."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(y)
        return swiglu_fwd(y)

    @staticmethod
    def backward(ctx, dout: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return swiglu_bwd(y, dout.contiguous())


def swiglu_triton(y: torch.Tensor) -> torch.Tensor:
    """`SiLU(gate) * up` with `[gate, up] = y.chunk(2, -1)`; y `[..., 2I]` -> `[..., I]` in y's dtype."""
    if y.shape[-1] % 2:
        raise ValueError(f"swiglu: the last dim holds [gate, up] and must be even; got {tuple(y.shape)}")
    if y.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"swiglu: y must be float32, bfloat16 or float16; got {y.dtype}")
    lead = y.shape[:-1]
    out = SwiGLUFunction.apply(y.reshape(-1, y.shape[-1]).contiguous())  # [M, I]
    return out.reshape(*lead, y.shape[-1] // 2)
