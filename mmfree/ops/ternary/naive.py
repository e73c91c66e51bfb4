"""Packed ternary weights: the layouts and the plain-PyTorch reference GEMM (the spec for every kernel).

2-bit layout (in memory and on disk): a ternary `[N, K]` weight becomes `[N, Kq]` uint8 with
`Kq = ceil(K / 4)`. Byte `(n, i)` holds the codes of columns `k = i + j * Kq` for `j = 0..3` in bits
`2j..2j+1`, code = w + 1 in {0, 1, 2}; columns past K hold code 1 (w = 0). Splitting K into four
contiguous quarters (instead of four neighbouring columns per byte) lets a kernel unpack a byte tile
with one shift and mask per quarter and pair it with a contiguous slice of the activations, no reshape.

1.6-bit layout (on disk only): `[N, ceil(K / 5)]` uint8, byte `(n, i)` = sum_j (w[n, 5i + j] + 1) 3^j
(3^5 = 243 <= 256), unpacked to the 2-bit layout at load.

The reference product is exact integer arithmetic: `y[m, n] = (sum_k xq[m, k] w[n, k]) * scale[m]`.
"""

from __future__ import annotations

import torch

SHIFTS = (0, 2, 4, 6)
ZERO_CODE_BYTE = 0x55  # four codes of 1 (w = 0): what padding columns hold
POW3 = (1, 3, 9, 27, 81)


def packed_cols(K: int) -> int:
    """Bytes per row of the 2-bit layout for K columns."""
    return (K + 3) // 4


def _check_codes(codes: torch.Tensor) -> None:
    if codes.ndim != 2:
        raise ValueError(f"ternary codes must be a 2-D [N, K] tensor; got shape {tuple(codes.shape)}")
    if codes.dtype.is_floating_point or codes.dtype == torch.bool:
        raise ValueError(f"ternary codes must be an integer tensor in {{-1, 0, 1}}; got dtype {codes.dtype}")
    if codes.numel() and (int(codes.min()) < -1 or int(codes.max()) > 1):
        raise ValueError("ternary codes must lie in {-1, 0, 1}; quantize the weight first (ternary_codes)")


def pack_2bit(codes: torch.Tensor) -> torch.Tensor:
    """`[N, K]` ternary codes (int, in {-1, 0, 1}) -> `[N, ceil(K/4)]` uint8 in the 2-bit layout."""
    _check_codes(codes)
    N, K = codes.shape
    Kq = packed_cols(K)
    c = torch.ones(N, 4 * Kq, dtype=torch.uint8, device=codes.device)  # [N, 4Kq]
    c[:, :K] = (codes + 1).to(torch.uint8)
    c = c.view(N, 4, Kq)  # [N, 4, Kq]
    out = c[:, 0].clone()  # [N, Kq]
    for j in range(1, 4):
        out |= c[:, j] << SHIFTS[j]
    return out


def unpack_2bit(packed: torch.Tensor, K: int, dtype: torch.dtype = torch.int8) -> torch.Tensor:
    """`[N, Kq]` uint8 (2-bit layout) -> `[N, K]` ternary values in `dtype` (bit-exact inverse of pack_2bit)."""
    if packed.ndim != 2 or packed.dtype != torch.uint8:
        raise ValueError(f"packed weight must be [N, Kq] uint8; got {tuple(packed.shape)} {packed.dtype}")
    if packed.shape[1] != packed_cols(K):
        raise ValueError(f"packed weight has {packed.shape[1]} bytes per row; K={K} needs {packed_cols(K)}")
    planes = [((packed >> s) & 3) for s in SHIFTS]  # 4 x [N, Kq]
    w = torch.cat(planes, dim=1)[:, :K]  # [N, K]
    return w.to(dtype) - 1


def pack_base3(codes: torch.Tensor) -> torch.Tensor:
    """`[N, K]` ternary codes -> `[N, ceil(K/5)]` uint8, five trits per byte (1.6 bits per weight)."""
    _check_codes(codes)
    N, K = codes.shape
    K5 = (K + 4) // 5
    c = torch.ones(N, 5 * K5, dtype=torch.int16, device=codes.device)  # [N, 5 K5]
    c[:, :K] = (codes + 1).to(torch.int16)
    c = c.view(N, K5, 5)  # [N, K5, 5]
    pw = torch.tensor(POW3, dtype=torch.int16, device=codes.device)  # [5]
    return (c * pw).sum(-1).to(torch.uint8)  # [N, K5]


def unpack_base3(packed: torch.Tensor, K: int) -> torch.Tensor:
    """`[N, ceil(K/5)]` uint8 (base 3) -> `[N, K]` int8 ternary codes."""
    if packed.ndim != 2 or packed.dtype != torch.uint8:
        raise ValueError(
            f"base-3 packed weight must be [N, K5] uint8; got {tuple(packed.shape)} {packed.dtype}"
        )
    if packed.shape[1] != (K + 4) // 5:
        raise ValueError(
            f"base-3 packed weight has {packed.shape[1]} bytes per row; K={K} needs {(K + 4) // 5}"
        )
    if packed.numel() and int(packed.max()) > 242:
        raise ValueError("base-3 packed weight holds a byte > 242 (3^5 - 1): the file is corrupt")
    v = packed.to(torch.int16)  # [N, K5]
    trits = []
    for _ in range(5):
        trits.append(v % 3)
        v = v // 3
    c = torch.stack(trits, dim=-1).flatten(1)[:, :K]  # [N, K]
    return c.to(torch.int8) - 1


def ternary_matmul_naive(
    xq: torch.Tensor, packed: torch.Tensor, K: int, scale: torch.Tensor, out_dtype: torch.dtype
) -> torch.Tensor:
    """Reference `(xq @ W^T) * scale[:, None]` with W unpacked from the 2-bit layout.

    Args:
        xq: `[M, K]` int8 activation codes; packed: `[N, ceil(K/4)]` uint8; scale: `[M]` fp32 (g / s).
    Returns:
        `[M, N]` in out_dtype; the dot products are exact int32 (int64 on CPU, float64 elsewhere).
    """
    w = unpack_2bit(packed, K)  # [N, K]
    if xq.device.type == "cpu":
        acc = (xq.to(torch.int64) @ w.to(torch.int64).t()).to(torch.int32)  # [M, N]
    else:
        acc = (xq.double() @ w.double().t()).round().to(torch.int32)  # [M, N]
    return (acc.float() * scale.float()[:, None]).to(out_dtype)
