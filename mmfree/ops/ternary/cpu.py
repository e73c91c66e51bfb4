"""CPU paths for packed ternary weights (the weights stay at 2 bits in memory).

- `ternary_matmul_cpu`: unpack the codes to fp32 and multiply in fp32. Every product and partial sum is
  an integer below 2^24 (|x| <= 128, K < 2^17), so the result equals the int32 reference exactly.
- `ternary_gemv_compiled`: one row (batch-1 decoding) through a `torch.compile`d (inductor C++) loop that
  reads each packed byte once and unpacks it in registers; again exact. Compiling needs a C++ compiler
  and takes seconds per shape the first time; without one it falls back (logged once) to the eager path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from mmfree.ops.ternary.naive import SHIFTS, unpack_2bit

logger = logging.getLogger("mmfree")
EXACT_MAX_K = 1 << 17  # beyond this fp32 sums of int8 x ternary products could round
_compiled: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
_compile_failed = False


def _quarters(xq: torch.Tensor, Kq: int) -> torch.Tensor:
    """`[M, K]` int8 -> `[M, 4, Kq]` fp32, zero-padded to 4 Kq columns (quarter j = columns j Kq ...)."""
    M, K = xq.shape
    x = torch.zeros(M, 4 * Kq, dtype=torch.float32, device=xq.device)  # [M, 4Kq]
    x[:, :K] = xq
    return x.view(M, 4, Kq)


def _gemv_planes(x4: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """`sum_j sum_i (c_j[n, i] - 1) x4[j, i]` with x4 `[4, Kq]` fp32, packed `[N, Kq]` uint8 -> `[N]`."""
    acc = (((packed >> SHIFTS[0]) & 3).to(torch.float32) * x4[0]).sum(-1)  # [N]
    for j in range(1, 4):
        acc = acc + (((packed >> SHIFTS[j]) & 3).to(torch.float32) * x4[j]).sum(-1)  # [N]
    return acc - x4.sum()


def ternary_matmul_cpu(
    xq: torch.Tensor, packed: torch.Tensor, K: int, scale: torch.Tensor, out_dtype: torch.dtype
) -> torch.Tensor:
    """`(xq @ W^T) * scale[:, None]` by unpacking to fp32: xq `[M, K]` int8, packed `[N, Kq]`, scale `[M]`."""
    if K > EXACT_MAX_K:
        from mmfree.ops.ternary.naive import ternary_matmul_naive

        return ternary_matmul_naive(xq, packed, K, scale, out_dtype)
    w = unpack_2bit(packed, K, torch.float32)  # [N, K]
    acc = xq.float() @ w.t()  # [M, N], exact integers
    return (acc * scale.float()[:, None]).to(out_dtype)


def ternary_gemv_compiled(
    xq: torch.Tensor, packed: torch.Tensor, K: int, scale: torch.Tensor, out_dtype: torch.dtype
) -> torch.Tensor:
    """As `ternary_matmul_cpu` for few rows, through the compiled byte-streaming loop (one call per row)."""
    global _compiled, _compile_failed
    if _compile_failed or K > EXACT_MAX_K:
        return ternary_matmul_cpu(xq, packed, K, scale, out_dtype)
    if _compiled is None:
        import torch._dynamo as dynamo

        # one static graph per weight shape (a model has about five); dynamic shapes run 2x slower here
        dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, 64)
        _compiled = torch.compile(_gemv_planes, dynamic=False, fullgraph=True)
    Kq = packed.shape[1]
    x4 = _quarters(xq, Kq)  # [M, 4, Kq]
    try:
        acc = torch.stack([_compiled(x4[m], packed) for m in range(xq.shape[0])])  # [M, N]
    except Exception as err:  # no C++ compiler, or inductor cannot build here
        _compile_failed = True
        logger.warning("mmfree ternary CPU kernel: torch.compile failed (%s); using the eager path", err)
        return ternary_matmul_cpu(xq, packed, K, scale, out_dtype)
    return (acc * scale.float()[:, None]).to(out_dtype)
