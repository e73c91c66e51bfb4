"""Triton RMSNorm and the fused MLGRU output gate `RMSNorm(x) * o * sigmoid(o)`, forward and backward.

One program normalizes one row in the forward pass; in the backward pass each program walks a block of
rows and accumulates its partial `dweight` in registers, so no [M, D] fp32 temporary is written; a second
small kernel sums the per-program partials and casts to the weight's dtype (two launches in all). The backward kernel is also the RMSNorm backward of the fused BitLinear
(`HAS_GATE=False`). All math is fp32; outputs are in the input dtype.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_gate_fwd_kernel(
    X,
    O,
    W,
    Y,
    RSTD,
    stride_x,
    stride_o,
    stride_y,
    N,
    eps,
    HAS_W: tl.constexpr,
    HAS_GATE: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    m = cols < N
    x = tl.load(X + row * stride_x + cols, mask=m, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)
    y = x * rstd
    if HAS_W:
        y = y * tl.load(W + cols, mask=m, other=0.0).to(tl.float32)
    if HAS_GATE:
        # the reference rounds the normalized value to the input dtype before gating
        y = y.to(Y.dtype.element_ty).to(tl.float32)
        o = tl.load(O + row * stride_o + cols, mask=m, other=0.0).to(tl.float32)
        y = y * o * tl.sigmoid(o)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=m)
    tl.store(RSTD + row, rstd)


@triton.jit
def _rms_gate_bwd_kernel(
    X,
    O,
    W,
    DY,
    RSTD,
    DX,
    DO,
    DW,
    stride_x,
    stride_o,
    stride_dy,
    stride_dx,
    stride_do,
    M,
    N,
    rows_per_program,
    HAS_W: tl.constexpr,
    HAS_GATE: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    m = cols < N
    if HAS_W:
        w = tl.load(W + cols, mask=m, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_N], dtype=tl.float32)
    row0 = pid * rows_per_program
    for r in range(0, rows_per_program):
        row = row0 + r
        if row < M:
            x = tl.load(X + row * stride_x + cols, mask=m, other=0.0).to(tl.float32)
            dy = tl.load(DY + row * stride_dy + cols, mask=m, other=0.0).to(tl.float32)
            rstd = tl.load(RSTD + row)
            xhat = x * rstd
            if HAS_GATE:
                yn = xhat
                if HAS_W:
                    yn = yn * w
                o = tl.load(O + row * stride_o + cols, mask=m, other=0.0).to(tl.float32)
                sig = tl.sigmoid(o)
                do = dy * yn * (sig + o * sig * (1.0 - sig))
                tl.store(DO + row * stride_do + cols, do.to(DO.dtype.element_ty), mask=m)
                dy = dy * o * sig
            if HAS_W:
                dw += dy * xhat
                dxhat = dy * w
            else:
                dxhat = dy
            c = tl.sum(dxhat * xhat, axis=0) / N
            dx = rstd * (dxhat - xhat * c)
            tl.store(DX + row * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=m)
    if HAS_W:
        tl.store(DW + pid * N + cols, dw, mask=m)


@triton.jit
def _sum_partials_kernel(P, OUT, programs, N, BLOCK: tl.constexpr):
    # OUT[n] = sum_p P[p, n], stored in OUT's dtype
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = cols < N
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for p in range(0, programs):
        acc += tl.load(P + p * N + cols, mask=m, other=0.0)
    tl.store(OUT + cols, acc.to(OUT.dtype.element_ty), mask=m)


@functools.cache
def sm_count(index: int) -> int:
    """Multiprocessors of CUDA device `index` (cached: the query is slow next to a kernel launch)."""
    return torch.cuda.get_device_properties(index).multi_processor_count


def _block_n(n: int) -> int:
    block = triton.next_power_of_2(n)
    if block > 65536:
        raise ValueError(f"rms_norm (triton): rows of {n} features exceed the 65536 supported by one program")
    return block


def _num_warps(block: int) -> int:
    return min(max(block // 256, 1), 16)


def rms_gate_fwd(
    x: torch.Tensor, o: torch.Tensor | None, weight: torch.Tensor | None, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`[M, N]` rows -> (y `[M, N]` in x's dtype, rstd `[M]` fp32). Gate applied when `o` is given."""
    M, N = x.shape
    y = torch.empty_like(x)  # [M, N]
    rstd = torch.empty(M, dtype=torch.float32, device=x.device)  # [M]
    if M == 0:
        return y, rstd
    block = _block_n(N)
    _rms_gate_fwd_kernel[(M,)](
        x,
        o if o is not None else x,
        weight if weight is not None else x,
        y,
        rstd,
        x.stride(0),
        o.stride(0) if o is not None else 0,
        y.stride(0),
        N,
        eps,
        HAS_W=weight is not None,
        HAS_GATE=o is not None,
        BLOCK_N=block,
        num_warps=_num_warps(block),
    )
    return y, rstd


def rms_gate_bwd(
    dy: torch.Tensor,
    x: torch.Tensor,
    o: torch.Tensor | None,
    weight: torch.Tensor | None,
    rstd: torch.Tensor,
    dw_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Backward of `rms_gate_fwd`: dx `[M, N]` (x's dtype), do `[M, N]` or None, dweight `[N]` (dw_dtype) or None."""
    M, N = x.shape
    dx = torch.empty_like(x)  # [M, N]
    do = torch.empty_like(o) if o is not None else None  # [M, N]
    if x.is_cuda:
        programs = min(M, sm_count(x.device.index or 0) * 4)
    else:
        programs = min(M, 4)
    programs = max(programs, 1)
    rows = triton.cdiv(max(M, 1), programs)
    has_w = weight is not None
    # every program stores its full partial row, so no zero fill is needed
    dw_part = torch.empty(programs if has_w else 0, N, dtype=torch.float32, device=x.device)  # [P, N]
    if M > 0:
        block = _block_n(N)
        _rms_gate_bwd_kernel[(programs,)](
            x,
            o if o is not None else x,
            weight if weight is not None else x,
            dy,
            rstd,
            dx,
            do if do is not None else dx,
            dw_part if has_w else dx,
            x.stride(0),
            o.stride(0) if o is not None else 0,
            dy.stride(0),
            dx.stride(0),
            do.stride(0) if do is not None else 0,
            M,
            N,
            rows,
            HAS_W=weight is not None,
            HAS_GATE=o is not None,
            BLOCK_N=block,
            num_warps=_num_warps(block),
        )
    if not has_w:
        return dx, do, None
    dw = torch.empty(N, dtype=dw_dtype, device=x.device)  # [N]
    if M > 0:
        _sum_partials_kernel[(triton.cdiv(N, 256),)](dw_part, dw, programs, N, BLOCK=256)
    else:
        dw.zero_()
    return dx, do, dw


class RMSNormGateFunction(torch.autograd.Function):
    """Autograd wrapper of the fused (gated) RMSNorm kernels over rows `[M, N]`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, o: torch.Tensor | None, weight: torch.Tensor | None, eps: float):
        y, rstd = rms_gate_fwd(x, o, weight, eps)
        ctx.save_for_backward(x, o, weight, rstd)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, o, weight, rstd = ctx.saved_tensors
        dw_dtype = weight.dtype if weight is not None else torch.float32
        dx, do, dw = rms_gate_bwd(dy.contiguous(), x, o, weight, rstd, dw_dtype)
        return dx, do, dw, None


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1]).contiguous()


def _check_weight(name: str, weight: torch.Tensor | None, n: int) -> None:
    if weight is not None and tuple(weight.shape) != (n,):
        raise ValueError(
            f"{name}: weight must have shape [{n}] (the last dim of x); got {tuple(weight.shape)}"
        )


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last dim. x `[..., D]`, weight `[D]` or None -> `[..., D]` in x's dtype."""
    _check_weight("rms_norm", weight, x.shape[-1])
    y = RMSNormGateFunction.apply(_rows(x), None, weight, eps)  # [M, D]
    return y.reshape(x.shape)


def rms_norm_swish_gate_triton(
    x: torch.Tensor, o: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-6
) -> torch.Tensor:
    """The official MLGRU output gate `RMSNorm(x) * o * sigmoid(o)`.

    Args:
        x: `[..., D]` gate pre-activation (normalized); o: `[..., D]` recurrent state; weight: `[D]` or None.
    Returns:
        `[..., D]` in x's dtype.
    """
    if x.shape != o.shape:
        raise ValueError(
            f"rms_norm_swish_gate: x and o must have the same shape; got {tuple(x.shape)}, {tuple(o.shape)}"
        )
    _check_weight("rms_norm_swish_gate", weight, x.shape[-1])
    y = RMSNormGateFunction.apply(_rows(x), _rows(o), weight, eps)  # [M, D]
    return y.reshape(x.shape)
