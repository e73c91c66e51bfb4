"""Split-K forms of the "prequant" decode GEMVs ("splitk" option of `fused.py`; opt-in, slower on an H200).

Each kernel takes its `prequant.py` twin's arguments, then ACC and CNT; `prequant`'s launchers pick one.

A batch-1 GEMV of `prequant.py` runs one program per block of BLOCK_N outputs, each streaming its rows' K
tiles with two in flight. At 13B shapes three of a layer's four GEMVs launch 320 such programs: under 10
warps per SM, DRAM at 13-27% of its peak, most of the time waiting on loads (Nsight Compute, BENCHMARKS.md,
session 9). Here a call's K tiles are split over SPLIT programs per block (`split_k`: enough to reach 4
programs per SM), so more weight bytes are in flight at once:

- program (block, row SPLIT + part) multiplies its part's tiles (whole tiles; the last part may be short)
  against the row's activation words, as `prequant.py` does, and adds its exact int32 sums `[BN]` (one per
  projection) into ACC `[P, B, N]` with atomics;
- it then counts itself in CNT `[B, blocks]` (after a block barrier, so every thread's sums have landed);
- the program that counts last takes the sums, leaving ACC and CNT at zero for the next call, and runs the
  projection's epilogue (`fused_parts.py`).

Integer sums are exact in any order, so the bits equal the one-program kernels'. ACC and CNT live in the
caller's scratch (`FusedDecodeStep`'s workspace), zeroed once.

Timed on an H200 at batch 1 (BENCHMARKS.md, session 10), the whole step takes 1.03x (370M), 1.37x (1.3B)
and 1.12x (13B) the unsplit kernels' time: the atomic add, the count and the exchange are dependent trips to
L2 between a split program's K loop and its epilogue, about 2 us per launch, more than the extra bytes in
flight save on GEMVs of 4-13 us.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mmfree.ops.ternary.fused_parts import (
    _act_words,
    _glu_out,
    _linear_out,
    _mac4,
    _mlgru_out,
    _wait_inputs,
    _y,
)

# The programs a split launch aims for: None = 4 per SM of the device (132 SMs off CUDA); a split never
# exceeds the call's K tile count.
SPLITK_PROGRAMS: int | None = None


@triton.jit
def _split_block(B, N, SPLIT: tl.constexpr, BLOCK_N: tl.constexpr):
    # this program's batch row (scalar, and `[1]` with its mask), output columns with their mask, and its
    # part of the row's K tiles
    row = tl.program_id(1) // SPLIT
    rows = row + tl.zeros([1], dtype=tl.int32)
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    return row, rows, rows < B, rn, rn < N, tl.program_id(1) % SPLIT


@triton.jit
def _k_part(part, Kq, SPLIT: tl.constexpr, BLOCK_Q: tl.constexpr):
    # the packed bytes (lo, hi) of K part `part`: whole tiles, the last part possibly short or empty
    per = tl.cdiv(tl.cdiv(Kq, BLOCK_Q), SPLIT) * BLOCK_Q
    lo = part * per
    return lo, tl.minimum(Kq, lo + per)


@triton.jit
def _part_tile(P, rn, nmask, i0, hi, Kq, BLOCK_Q: tl.constexpr):
    # `prequant`'s `[BN, BQ / 4]` weight words of rows rn from byte i0 on, 0 from byte hi on
    iw = i0 // 4 + tl.arange(0, BLOCK_Q // 4)
    m = nmask[:, None] & (iw[None, :] < hi // 4)
    return tl.load(P + rn[:, None] * (Kq // 4) + iw[None, :], mask=m, other=0)


@triton.jit
def _counted_last(CNT, row, SPLIT: tl.constexpr):
    # after this program added its sums: whether it is its block's last (the count goes back to 0 then)
    tl.debug_barrier()  # every thread's sums land before the count says so
    count = CNT + row * tl.num_programs(0) + tl.program_id(0)
    last = tl.atomic_add(count, 1) == SPLIT - 1
    if last:
        tl.atomic_xchg(count, 0)
    return last


@triton.jit
def _take(ACC, n: tl.constexpr, m: tl.constexpr, row, B, N, rn, nmask, S, QS, G, X, rows, rmask,
          BLOCK_N: tl.constexpr):  # fmt: skip
    # projection n's summed `[BN]` products from ACC (left at 0) as its `[1, BN]` BitLinear output, with the
    # activation scale and code sum of the quantization kernel's norm m
    sums = ACC + (n * B + row) * N + rn
    total = tl.atomic_xchg(sums, tl.zeros([BLOCK_N], dtype=tl.int32), mask=nmask)  # [BN]
    s = tl.load(S + m * B + rows, mask=rmask, other=1.0)
    qs = tl.load(QS + m * B + rows, mask=rmask, other=0)
    # the code sum subtracted, as PATH 2 has it
    return _y(total[None, :] - qs[:, None], qs, tl.load(G), s, X, 2)


@triton.jit
def _add(ACC, n: tl.constexpr, row, B, N, rn, nmask, acc):
    # add this program's `[BN, BW]` accumulator of projection n into ACC
    tl.atomic_add(ACC + (n * B + row) * N + rn, tl.sum(acc, axis=1), mask=nmask)


@triton.jit
def _bitlinear_split_kernel(
    X, P, Q, S, QS, G, Y,
    B, N, Kq, stride_y, ACC, CNT,
    RESIDUAL: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, SPLIT: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):  # fmt: skip
    row, rows, rmask, rn, nmask, part = _split_block(B, N, SPLIT, BLOCK_N)
    lo, hi = _k_part(part, Kq, SPLIT, BLOCK_Q)
    p = _part_tile(P, rn, nmask, lo, hi, Kq, BLOCK_Q)
    n = _part_tile(P, rn, nmask, lo + BLOCK_Q, hi, Kq, BLOCK_Q)
    _wait_inputs(PDL)
    acc = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    for i0 in range(lo, hi, BLOCK_Q):
        c0, c1, c2, c3 = _act_words(Q + row * Kq, i0, Kq // 4, BLOCK_Q // 4)
        acc = _mac4(acc, p, c0, c1, c2, c3, ASM)
        p = n
        n = _part_tile(P, rn, nmask, i0 + 2 * BLOCK_Q, hi, Kq, BLOCK_Q)
    _add(ACC, 0, row, B, N, rn, nmask, acc)
    if _counted_last(CNT, row, SPLIT):
        y = _take(ACC, 0, 0, row, B, N, rn, nmask, S, QS, G, X, rows, rmask, BLOCK_N)
        _linear_out(y, Y, rows, rmask, rn, nmask, stride_y, RESIDUAL)


@triton.jit
def _mlgru_in_split_kernel(
    X, PI, PF, PG, Q, S, QS, GI, GF, GG, LB, H, OUT,
    B, N, Kq, stride_h, stride_o, ACC, CNT,
    HAS_LB: tl.constexpr, OFFICIAL: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, SPLIT: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
):  # fmt: skip
    row, rows, rmask, rn, nmask, part = _split_block(B, N, SPLIT, BLOCK_N)
    lo, hi = _k_part(part, Kq, SPLIT, BLOCK_Q)
    p_i = _part_tile(PI, rn, nmask, lo, hi, Kq, BLOCK_Q)
    p_f = _part_tile(PF, rn, nmask, lo, hi, Kq, BLOCK_Q)
    p_g = _part_tile(PG, rn, nmask, lo, hi, Kq, BLOCK_Q)
    n_i = _part_tile(PI, rn, nmask, lo + BLOCK_Q, hi, Kq, BLOCK_Q)
    n_f = _part_tile(PF, rn, nmask, lo + BLOCK_Q, hi, Kq, BLOCK_Q)
    n_g = _part_tile(PG, rn, nmask, lo + BLOCK_Q, hi, Kq, BLOCK_Q)
    _wait_inputs(PDL)
    Kw = Kq // 4
    acc_i = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    acc_f = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    acc_g = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    for i0 in range(lo, hi, BLOCK_Q):
        i0_, i1_, i2_, i3_ = _act_words(Q + row * Kq, i0, Kw, BLOCK_Q // 4)
        f0_, f1_, f2_, f3_ = _act_words(Q + (B + row) * Kq, i0, Kw, BLOCK_Q // 4)
        g0_, g1_, g2_, g3_ = _act_words(Q + (2 * B + row) * Kq, i0, Kw, BLOCK_Q // 4)
        acc_i = _mac4(acc_i, p_i, i0_, i1_, i2_, i3_, ASM)
        acc_f = _mac4(acc_f, p_f, f0_, f1_, f2_, f3_, ASM)
        acc_g = _mac4(acc_g, p_g, g0_, g1_, g2_, g3_, ASM)
        p_i, p_f, p_g = n_i, n_f, n_g
        n_i = _part_tile(PI, rn, nmask, i0 + 2 * BLOCK_Q, hi, Kq, BLOCK_Q)
        n_f = _part_tile(PF, rn, nmask, i0 + 2 * BLOCK_Q, hi, Kq, BLOCK_Q)
        n_g = _part_tile(PG, rn, nmask, i0 + 2 * BLOCK_Q, hi, Kq, BLOCK_Q)
    _add(ACC, 0, row, B, N, rn, nmask, acc_i)
    _add(ACC, 1, row, B, N, rn, nmask, acc_f)
    _add(ACC, 2, row, B, N, rn, nmask, acc_g)
    if _counted_last(CNT, row, SPLIT):
        yi = _take(ACC, 0, 0, row, B, N, rn, nmask, S, QS, GI, X, rows, rmask, BLOCK_N)
        yf = _take(ACC, 1, 1, row, B, N, rn, nmask, S, QS, GF, X, rows, rmask, BLOCK_N)
        yg = _take(ACC, 2, 2, row, B, N, rn, nmask, S, QS, GG, X, rows, rmask, BLOCK_N)
        _mlgru_out(yi, yf, yg, LB, H, OUT, X, rows, rmask, rn, nmask, stride_h, stride_o, HAS_LB, OFFICIAL)


@triton.jit
def _glu_in_split_kernel(
    X, P, Q, S, QS, G, U,
    B, I, Kq, stride_u, ACC, CNT,
    ASM: tl.constexpr, PDL: tl.constexpr, SPLIT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
):  # fmt: skip
    row, rows, rmask, rn, nmask, part = _split_block(B, I, SPLIT, BLOCK_N)
    lo, hi = _k_part(part, Kq, SPLIT, BLOCK_Q)
    p_a = _part_tile(P, rn, nmask, lo, hi, Kq, BLOCK_Q)
    p_b = _part_tile(P, rn + I, nmask, lo, hi, Kq, BLOCK_Q)  # the up rows I..2I-1
    n_a = _part_tile(P, rn, nmask, lo + BLOCK_Q, hi, Kq, BLOCK_Q)
    n_b = _part_tile(P, rn + I, nmask, lo + BLOCK_Q, hi, Kq, BLOCK_Q)
    _wait_inputs(PDL)
    acc_a = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    acc_b = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    for i0 in range(lo, hi, BLOCK_Q):
        c0, c1, c2, c3 = _act_words(Q + row * Kq, i0, Kq // 4, BLOCK_Q // 4)
        acc_a = _mac4(acc_a, p_a, c0, c1, c2, c3, ASM)
        acc_b = _mac4(acc_b, p_b, c0, c1, c2, c3, ASM)
        p_a, p_b = n_a, n_b
        n_a = _part_tile(P, rn, nmask, i0 + 2 * BLOCK_Q, hi, Kq, BLOCK_Q)
        n_b = _part_tile(P, rn + I, nmask, i0 + 2 * BLOCK_Q, hi, Kq, BLOCK_Q)
    _add(ACC, 0, row, B, I, rn, nmask, acc_a)
    _add(ACC, 1, row, B, I, rn, nmask, acc_b)
    if _counted_last(CNT, row, SPLIT):
        gate = _take(ACC, 0, 0, row, B, I, rn, nmask, S, QS, G, X, rows, rmask, BLOCK_N)
        up = _take(ACC, 1, 0, row, B, I, rn, nmask, S, QS, G, X, rows, rmask, BLOCK_N)  # the gate rows' norm
        _glu_out(gate, up, U, X, rows, rmask, rn, nmask, stride_u)


def split_k(programs: int, tiles: int, device: torch.device) -> int:
    """The K parts of a split launch whose unsplit grid has `programs` (blocks x rows) over `tiles` K tiles:
    enough to bring the grid to SPLITK_PROGRAMS or more (an H200 at batch 1: 2 for the 13B MLGRU input,
    o_proj and down_proj, 1 for its GLU input), 1 when it is there already."""
    target = SPLITK_PROGRAMS
    if target is None:
        sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 132
        target = 4 * sms
    return max(1, min(tiles, -(-target // max(programs, 1))))


def sums(
    scratch: dict[str, torch.Tensor] | None, projs: int, B: int, N: int, blocks: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The zeroed ACC `[projs, B, N]` and CNT `[B, blocks]` int32 of a split launch, kept in scratch (each
    launch leaves them at zero) or allocated."""
    key = f"splitk_{projs}x{B}x{N}x{blocks}"
    if scratch is not None and key + "_acc" in scratch:
        return scratch[key + "_acc"], scratch[key + "_cnt"]
    acc = torch.zeros((projs, B, N), dtype=torch.int32, device=device)  # [projs, B, N]
    cnt = torch.zeros((B, blocks), dtype=torch.int32, device=device)  # [B, blocks]
    if scratch is not None:
        scratch[key + "_acc"], scratch[key + "_cnt"] = acc, cnt
    return acc, cnt
