"""Triton kernels for packed ternary weights (2-bit layout of `naive.py`) times int8 activations.

- `_ternary_gemv_kernel` (decoding, few rows): each program streams a `[BLOCK_N, BLOCK_Q]` byte tile once,
  unpacks the four quarter-planes with a shift and a mask and accumulates `code * x` in int32 on the CUDA
  cores (the `-1` offset is folded out: `sum (c - 1) x = sum c x - sum x`).
- `_ternary_gemm_kernel` (prefill, batched decoding): the byte tile `[BLOCK_Q, BLOCK_N]` is unpacked in
  registers into four int8 `{-1, 0, 1}` tiles, each multiplied with its quarter of the activations on the
  int8 tensor cores (`tl.dot` int8 x int8 -> int32).

Both fuse the output scale: `y[m, n] = acc[m, n] * scale[m]` with `scale = g / s` (fp32).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

GEMV_MAX_M = 4  # rows up to which the CUDA-core GEMV beats the tensor-core GEMM (see benchmarks/decode.py)


@triton.jit
def _ternary_gemv_kernel(
    X,
    P,
    S,
    Y,
    N,
    K,
    Kq,
    stride_xm,
    stride_ym,
    BLOCK_N: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):
    pid_n = tl.program_id(0)
    m = tl.program_id(1)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ri = tl.arange(0, BLOCK_Q)
    acc = tl.zeros([BLOCK_N], dtype=tl.int32)
    xsum = tl.zeros([BLOCK_Q], dtype=tl.int32)
    for i0 in range(0, Kq, BLOCK_Q):
        ii = i0 + ri
        p = tl.load(P + rn[:, None] * Kq + ii[None, :], mask=(rn[:, None] < N) & (ii[None, :] < Kq), other=0)
        p = p.to(tl.int32)
        for j in tl.static_range(4):
            k = j * Kq + ii
            x = tl.load(X + m * stride_xm + k, mask=(ii < Kq) & (k < K), other=0).to(tl.int32)
            acc += tl.sum(((p >> (2 * j)) & 3) * x[None, :], axis=1)
            xsum += x
    acc = acc - tl.sum(xsum, axis=0)
    out = acc.to(tl.float32) * tl.load(S + m)
    tl.store(Y + m * stride_ym + rn, out.to(Y.dtype.element_ty), mask=rn < N)


@triton.jit
def _ternary_gemm_kernel(
    X,
    P,
    S,
    Y,
    M,
    N,
    K,
    Kq,
    stride_xm,
    stride_ym,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    width = GROUP_M * grid_n
    first_m = (pid // width) * GROUP_M
    size_m = tl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ri = tl.arange(0, BLOCK_Q)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)
    for i0 in range(0, Kq, BLOCK_Q):
        ii = i0 + ri
        p = tl.load(P + rn[None, :] * Kq + ii[:, None], mask=(rn[None, :] < N) & (ii[:, None] < Kq), other=0)
        for j in tl.static_range(4):
            k = j * Kq + ii
            xm = (rm[:, None] < M) & (ii[None, :] < Kq) & (k[None, :] < K)
            x = tl.load(X + rm[:, None] * stride_xm + k[None, :], mask=xm, other=0)
            w = ((p >> (2 * j)) & 3).to(tl.int8) - 1
            acc = tl.dot(x, w, acc, out_dtype=tl.int32)
    s = tl.load(S + rm, mask=rm < M, other=0.0)
    out = acc.to(tl.float32) * s[:, None]
    ym = (rm[:, None] < M) & (rn[None, :] < N)
    tl.store(Y + rm[:, None] * stride_ym + rn[None, :], out.to(Y.dtype.element_ty), mask=ym)


def _gemv_config(N: int, Kq: int, device: torch.device) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_Q, num_warps): small row blocks so that even N = 1024 fills the GPU."""
    if device.type != "cuda":
        return 16, 32, 1
    return (8 if N <= 4096 else 16), min(256, triton.next_power_of_2(Kq)), 4


def _gemm_config(M: int, device: torch.device) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_Q, num_warps, num_stages), fixed by shape (no autotuning)."""
    if device.type != "cuda":
        return 16, 32, 32, 4, 1
    if M <= 16:
        return 16, 64, 64, 4, 4
    if M <= 64:
        return 64, 128, 64, 4, 3
    return 128, 128, 64, 8, 3


def ternary_matmul_triton(
    xq: torch.Tensor,
    packed: torch.Tensor,
    K: int,
    scale: torch.Tensor,
    out_dtype: torch.dtype,
    kernel: str = "auto",
) -> torch.Tensor:
    """`(xq @ W^T) * scale[:, None]`: xq `[M, K]` int8, packed `[N, ceil(K/4)]` uint8, scale `[M]` fp32.

    kernel: "gemv", "gemm" or "auto" (GEMV up to GEMV_MAX_M rows). Returns `[M, N]` in out_dtype.
    """
    M = xq.shape[0]
    N, Kq = packed.shape
    xq = xq.contiguous()
    packed = packed.contiguous()
    scale = scale.float().contiguous()
    y = torch.empty(M, N, dtype=out_dtype, device=xq.device)  # [M, N]
    if M == 0 or N == 0:
        return y
    if kernel == "auto":
        kernel = "gemv" if M <= GEMV_MAX_M else "gemm"
    if kernel == "gemv":
        bn, bq, warps = _gemv_config(N, Kq, xq.device)
        _ternary_gemv_kernel[(triton.cdiv(N, bn), M)](
            xq, packed, scale, y, N, K, Kq, xq.stride(0), y.stride(0), BLOCK_N=bn, BLOCK_Q=bq, num_warps=warps
        )
    elif kernel == "gemm":
        bm, bn, bq, warps, stages = _gemm_config(M, xq.device)
        grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
        _ternary_gemm_kernel[grid](
            xq,
            packed,
            scale,
            y,
            M,
            N,
            K,
            Kq,
            xq.stride(0),
            y.stride(0),
            BLOCK_M=bm,
            BLOCK_N=bn,
            BLOCK_Q=bq,
            GROUP_M=8,
            num_warps=warps,
            num_stages=stages,
        )
    else:
        raise ValueError(f"ternary kernel must be 'auto', 'gemv' or 'gemm'; got {kernel!r}")
    return y
