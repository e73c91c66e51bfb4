"""Packed ternary x int8 matmul with one dispatch point, plus the packing layouts.

`ternary_matmul(xq, packed, K, scale)` computes `(xq @ W^T) * scale[:, None]` for int8 activation codes
`xq [M, K]` and a ternary weight `W [N, K]` held at 2 bits (`naive.pack_2bit`). Backends: Triton on CUDA
(GEMV for decoding, int8 tensor-core GEMM for prefill). On CPU, `cpu_kernel` (else $MMFREE_TERNARY_CPU)
picks the kernel: `cpp` (default) a C++ SIMD kernel built at first use, falling back to `eager` with one
logged warning when it cannot be built; `compiled` a torch.compile'd byte-streaming GEMV for M <= 4;
`eager` the exact fp32 unpack path. All are exact (int32 dot products, then one fp32 scale multiply).
"""

from __future__ import annotations

import os

import torch

from mmfree.ops.backend import use_triton
from mmfree.ops.ternary.cpu import ternary_gemv_compiled, ternary_matmul_cpp, ternary_matmul_cpu
from mmfree.ops.ternary.naive import (
    pack_2bit,
    pack_base3,
    packed_cols,
    ternary_matmul_naive,
    unpack_2bit,
    unpack_base3,
)

CPU_KERNELS = ("cpp", "compiled", "eager")
CPU_ENV_VAR = "MMFREE_TERNARY_CPU"


def cpu_kernel_choice(cpu_kernel: str | None = None) -> str:
    """The CPU kernel asked for: the argument, else $MMFREE_TERNARY_CPU, else `cpp`."""
    choice = (cpu_kernel or os.environ.get(CPU_ENV_VAR) or "cpp").lower()
    if choice not in CPU_KERNELS:
        where = "cpu_kernel" if cpu_kernel else f"${CPU_ENV_VAR}"
        raise ValueError(
            f"unknown ternary CPU kernel {choice!r} (from {where}); choose one of {', '.join(CPU_KERNELS)}"
        )
    return choice


def ternary_matmul(
    xq: torch.Tensor,
    packed: torch.Tensor,
    K: int,
    scale: torch.Tensor,
    out_dtype: torch.dtype = torch.float32,
    backend: str | None = None,
    cpu_kernel: str | None = None,
) -> torch.Tensor:
    """`[M, K]` int8 codes times the packed `[N, ceil(K/4)]` ternary weight, scaled per row -> `[M, N]`.

    Args:
        xq: int8 activation codes; packed: uint8 2-bit layout; K: the weight's true column count;
        scale: `[M]` fp32 per-row output scale (`g / s`: weight scale over activation scale).
    """
    if xq.ndim != 2 or xq.dtype != torch.int8:
        raise ValueError(f"ternary_matmul: xq must be [M, K] int8; got {tuple(xq.shape)} {xq.dtype}")
    if xq.shape[1] != K or packed.ndim != 2 or packed.shape[1] != packed_cols(K):
        raise ValueError(
            f"ternary_matmul: xq [M, {xq.shape[1]}] does not match a packed weight {tuple(packed.shape)} of K={K}"
        )
    if scale.shape != (xq.shape[0],):
        raise ValueError(f"ternary_matmul: scale must be [{xq.shape[0]}]; got {tuple(scale.shape)}")
    if use_triton("ternary_matmul", xq, packed, backend=backend):
        from mmfree.ops.ternary.triton import ternary_matmul_triton

        return ternary_matmul_triton(xq, packed, K, scale, out_dtype)
    if xq.device.type == "cpu":
        choice = cpu_kernel_choice(cpu_kernel)
        if choice == "cpp":
            return ternary_matmul_cpp(xq, packed, K, scale, out_dtype)
        if xq.shape[0] <= 4 and choice == "compiled":
            return ternary_gemv_compiled(xq, packed, K, scale, out_dtype)
        return ternary_matmul_cpu(xq, packed, K, scale, out_dtype)
    return ternary_matmul_naive(xq, packed, K, scale, out_dtype)


__all__ = [
    "CPU_ENV_VAR",
    "CPU_KERNELS",
    "cpu_kernel_choice",
    "pack_2bit",
    "pack_base3",
    "packed_cols",
    "ternary_matmul",
    "ternary_matmul_naive",
    "unpack_2bit",
    "unpack_base3",
]
