"""Decode kernels that quantize each BitLinear input once ("prequant" option of `fused.py`).

The default fused kernels (`fused.py`) recompute the input's RMSNorm and int8 quantization in every
program: several dependent block reductions over the whole row before the first weight tile is used, and
the codes of every quarter re-derived inside the GEMV loop. Here one small kernel does that once per row
(`_quant_kernel`: the formulas of `fused_parts.py`'s prologue on the row held whole in registers, so its
sums run in another order than the default's and a code can differ at a rounding tie) and writes the int8
codes in column order, zero-padded to 4 Kq columns (Kq = packed bytes per weight row), with their scale s
and code sum. Viewed as int32, those codes are the activation words of the dp4a path: word j Kw + m
(Kw = Kq / 4) holds the codes of columns j Kq + 4m .. j Kq + 4m + 3, exactly the columns that quarter j of
weight word m encodes. The GEMV kernels are then pure streams of weight words:
per tile, four L2-resident activation words per weight word and one `dp4a` per quarter, no reduction before
the first tile, and two tiles in flight per projection (the next one loads while this one is multiplied;
with QNEXT, the "qnext" option, the next tile's activation words load with it). The epilogues are
the default kernels' (`fused_parts.py`), with their operands loaded before or after the K loop as
PREQUANT_TILES says per layer width (see `_mlgru_in_kernel`). A tile that covers the whole packed row (ONE:
`BLOCK_Q` >= Kq, as the "whole" option gives the BitLinear GEMVs) has no loop: the rows load before the
wait and are multiplied once, with the same integer sums.

- `_quant_kernel`: input transform MODE 0 (raw), 1 (RMSNorm(x) * w1) or 2 (the official output gate
  RMSNorm(g) * w1 * SiLU(h); MODE 3 the same with SiLU(h) stored by the MLGRU kernel, "silu" option),
  then one BitLinear norm's codes, scale and code sum per program (the MLGRU input's three norms on three
  programs, each repeating the transform).
- `_mlgru_in_kernel`, `_bitlinear_kernel`, `_glu_in_kernel`: the three projections + recurrence, one
  projection + store or residual add, gate/up + SiLU(gate) * up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import triton
import triton.language as tl

from mmfree.ops.ternary import fold
from mmfree.ops.ternary.fused_parts import (
    _act_words,
    _glu_out,
    _int8_codes,
    _inv_amax,
    _linear_store,
    _mac4,
    _mlgru_prev,
    _mlgru_store,
    _residual,
    _rnd,
    _silu_gate,
    _tile,
    _wait_inputs,
    _y_rows,
    _y_rows2,
)

if TYPE_CHECKING:
    from mmfree.ops.ternary.fused import TernaryProj, _Launch


@triton.jit
def _quant_kernel(
    X, H, W1, WA, WB, WC, Q, S, QS,
    B, K, Kp, stride_x, stride_h, eps1, eps_a, eps_b, eps_c,
    MODE: tl.constexpr, PDL: tl.constexpr, T: tl.constexpr, EA: tl.constexpr, EB: tl.constexpr,
):  # fmt: skip
    # program (row, n): row `row` held whole in registers (one load of each input, then dependent block
    # reductions) through BitLinear norm n (weight WA, WB or WC): Q `[NORMS, B, Kp]` int8 codes (columns
    # K.. are 0), S `[NORMS, B]` fp32 scales, QS `[NORMS, B]` int32 code sums. With three norms each program
    # repeats the MODE transform, so the norms run on three SMs at once. The row is one `[T, EA]` piece
    # (column t EA + j), or with EB > 0 that and a `[T, EB]` piece after it (column T EA + t EB + j): a
    # width such as 5120 = 512 x (8 + 2) then needs no padded lanes. Each reduction sums a thread's values
    # of both pieces first (axis 1), then across the block once.
    _quant_row(
        X, H, W1, WA, WB, WC, Q, S, QS, B, K, Kp, stride_x, stride_h, eps1, eps_a, eps_b, eps_c,
        tl.program_id(0), tl.program_id(1), MODE, PDL, False, T, EA, EB,
    )  # fmt: skip


@triton.jit
def _piece(T: tl.constexpr, E: tl.constexpr, start):
    # the columns `[T, E]` of one piece (column start + t E + j)
    return start + tl.arange(0, T)[:, None] * E + tl.arange(0, E)[None, :]


@triton.jit
def _gate_in(v, H, k, m, CG: tl.constexpr, X, MODE: tl.constexpr):
    # the output gate's last factor on one piece: MODE 2 times SiLU(h) (h the state rounded to the model
    # dtype), MODE 3 times SiLU(h) as the MLGRU kernel stored it in H ("silu"); else v
    if MODE == 2:
        v = _silu_gate(v, _ld_row(H, k, m, CG), X)
    elif MODE == 3:
        v = _rnd(v * _ld_row(H, k, m, CG), X)
    return v


@triton.jit
def _quant_row(
    X, H, W1, WA, WB, WC, Q, S, QS,
    B, K, Kp, stride_x, stride_h, eps1, eps_a, eps_b, eps_c, row, n,
    MODE: tl.constexpr, PDL: tl.constexpr, CG: tl.constexpr, T: tl.constexpr, EA: tl.constexpr,
    EB: tl.constexpr,
):  # fmt: skip
    # `_quant_kernel`'s work for one (row, norm n) on the calling program's T threads; with CG the inputs X
    # and H load from L2 past L1 (a GEMV's tail reading a row other programs of its launch just wrote:
    # `benchmarks/boundary_probes.py tail`)
    ka = _piece(T, EA, 0)  # [T, EA]
    ma = ka < K
    w1a = tl.load(W1 + ka, mask=ma, other=0.0).to(tl.float32)  # the weights first: with PDL they load
    wa = _norm_weight(WA, WB, WC, n, ka, ma)  # while the previous kernel finishes
    if EB > 0:
        kb = _piece(T, EB, T * EA)  # [T, EB]
        mb = kb < K
        w1b = tl.load(W1 + kb, mask=mb, other=0.0).to(tl.float32)
        wb = _norm_weight(WA, WB, WC, n, kb, mb)
    eps = tl.where(n == 0, eps_a, tl.where(n == 1, eps_b, eps_c))
    _wait_inputs(PDL)
    xr = X + row * stride_x
    hr = H + row * stride_h
    va = _ld_row(xr, ka, ma, CG)  # [T, EA]
    if EB > 0:
        vb = _ld_row(xr, kb, mb, CG)  # [T, EB]
    if MODE >= 1:  # RMSNorm(x) * w1 in the model dtype
        part = tl.sum(va * va, axis=1)
        if EB > 0:
            part += tl.sum(vb * vb, axis=1)
        r1 = 1.0 / tl.sqrt(tl.sum(part, axis=0) / K + eps1)
        va = _gate_in(_rnd(va * r1 * w1a, X), hr, ka, ma, CG, X, MODE)
        if EB > 0:
            vb = _gate_in(_rnd(vb * r1 * w1b, X), hr, kb, mb, CG, X, MODE)
    part = tl.sum(va * va, axis=1)
    if EB > 0:
        part += tl.sum(vb * vb, axis=1)
    r = 1.0 / tl.sqrt(tl.sum(part, axis=0) / K + eps)
    xa = _rnd(va * r * wa, X)  # xn = RMSNorm(v) * w (model dtype)
    amax = tl.max(tl.abs(xa), axis=1)
    if EB > 0:
        xb = _rnd(vb * r * wb, X)
        amax = tl.maximum(amax, tl.max(tl.abs(xb), axis=1))
    s = _inv_amax(tl.max(amax, axis=0))  # 127 / max|xn|
    out = n * B + row
    qa = _int8_codes(xa * s)
    tl.store(Q + out * Kp + ka, qa.to(tl.int8), mask=ka < Kp)
    qsum = tl.sum(qa, axis=1)
    if EB > 0:
        qb = _int8_codes(xb * s)
        tl.store(Q + out * Kp + kb, qb.to(tl.int8), mask=kb < Kp)
        qsum += tl.sum(qb, axis=1)
    tl.store(S + out, s)
    tl.store(QS + out, tl.sum(qsum, axis=0))


@triton.jit
def _ld_row(P, k, m, CG: tl.constexpr):
    # fp32 values of the row P at columns k (0 where not m); with CG from L2 past L1
    if CG:
        return tl.load(P + k, mask=m, other=0.0, cache_modifier=".cg").to(tl.float32)
    return tl.load(P + k, mask=m, other=0.0).to(tl.float32)


@triton.jit
def _norm_weight(WA, WB, WC, n, k, m):
    # BitLinear norm n's weight (WA, WB or WC) at columns k, in fp32
    if n == 0:
        w = tl.load(WA + k, mask=m, other=0.0).to(tl.float32)
    elif n == 1:
        w = tl.load(WB + k, mask=m, other=0.0).to(tl.float32)
    else:
        w = tl.load(WC + k, mask=m, other=0.0).to(tl.float32)
    return w


@triton.jit
def _row_block(B, N, BLOCK_N: tl.constexpr):
    # this program's batch row (one per program: `[1]` with its mask) and output columns with their mask
    rows = tl.program_id(1) + tl.zeros([1], dtype=tl.int32)
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    return rows, rows < B, rn, rn < N


@triton.jit
def _row_scales(S, QS, n: tl.constexpr, rows, rmask, B):
    # `[1]` scale and code sum of this row's codes for projection n (the quantization kernel's outputs)
    return tl.load(S + n * B + rows, mask=rmask, other=1.0), tl.load(QS + n * B + rows, mask=rmask, other=0)


# The GEMV kernels load everything their epilogues read that no kernel of this decode step writes (weight
# scales, lower bound, the MLGRU state, the residual stream) before they wait for the previous kernel, and
# the quantization kernel's scales and code sums right after it, with the first codes: none of those loads
# waits behind the K loop. With LATE (PREQUANT_TILES' row above 1024 outputs, or the "late" option) the
# state, residual, scales and code sums load after the K loop instead. Reading the state and the residual
# early is safe under programmatic dependent launch: a kernel lets the next one launch only after its own
# wait, so when a GEMV starts, every kernel two or more launches back has finished, and the last writer of
# the state (this kernel, one token back) or of the residual stream (the BitLinear GEMV two GEMVs back) is
# at least two launches back (four with the quantization kernels between). Every store comes after a wait.
@triton.jit
def _mlgru_in_kernel(
    X, PI, PF, PG, Q, S, QS, GI, GF, GG, LB, H, OUT, SH,
    B, N, Kq, stride_h, stride_o,
    HAS_LB: tl.constexpr, OFFICIAL: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, LATE: tl.constexpr,
    QNEXT: tl.constexpr, ONE: tl.constexpr, SILU: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _row_block(B, N, BLOCK_N)
    p_i = _tile(PI, rn, nmask, 0, Kq, BLOCK_Q, 1)  # [BN, BQ / 4] words, before the codes are ready
    p_f = _tile(PF, rn, nmask, 0, Kq, BLOCK_Q, 1)
    p_g = _tile(PG, rn, nmask, 0, Kq, BLOCK_Q, 1)
    if not ONE:  # the next tiles: two in flight per projection
        n_i = _tile(PI, rn, nmask, BLOCK_Q, Kq, BLOCK_Q, 1)
        n_f = _tile(PF, rn, nmask, BLOCK_Q, Kq, BLOCK_Q, 1)
        n_g = _tile(PG, rn, nmask, BLOCK_Q, Kq, BLOCK_Q, 1)
    g_i, g_f, g_g = tl.load(GI), tl.load(GF), tl.load(GG)
    if not LATE:
        lb, hp = _mlgru_prev(LB, H, rows, rmask, rn, nmask, stride_h, HAS_LB)  # [1, BN], [1, BN]
    _wait_inputs(PDL)
    if not LATE:
        s_i, qs_i = _row_scales(S, QS, 0, rows, rmask, B)
        s_f, qs_f = _row_scales(S, QS, 1, rows, rmask, B)
        s_g, qs_g = _row_scales(S, QS, 2, rows, rmask, B)
    Kw = Kq // 4
    BW: tl.constexpr = BLOCK_Q // 4
    row = tl.program_id(1)
    q_i, q_f, q_g = Q + row * Kq, Q + (B + row) * Kq, Q + (2 * B + row) * Kq  # this row's words, per norm
    acc_i = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    acc_f = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    acc_g = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    if QNEXT or ONE:  # the first tile's activation words; the loop loads each next tile's with its weights
        i0_, i1_, i2_, i3_ = _act_words(q_i, 0, Kw, BW)
        f0_, f1_, f2_, f3_ = _act_words(q_f, 0, Kw, BW)
        g0_, g1_, g2_, g3_ = _act_words(q_g, 0, Kw, BW)
    if ONE:  # the whole row is one tile, loaded before the wait
        acc_i = _mac4(acc_i, p_i, i0_, i1_, i2_, i3_, ASM)
        acc_f = _mac4(acc_f, p_f, f0_, f1_, f2_, f3_, ASM)
        acc_g = _mac4(acc_g, p_g, g0_, g1_, g2_, g3_, ASM)
    else:
        for i0 in range(0, Kq, BLOCK_Q):
            if QNEXT:
                i0n, i1n, i2n, i3n = _act_words(q_i, i0 + BLOCK_Q, Kw, BW)
                f0n, f1n, f2n, f3n = _act_words(q_f, i0 + BLOCK_Q, Kw, BW)
                g0n, g1n, g2n, g3n = _act_words(q_g, i0 + BLOCK_Q, Kw, BW)
            else:
                i0_, i1_, i2_, i3_ = _act_words(q_i, i0, Kw, BW)
                f0_, f1_, f2_, f3_ = _act_words(q_f, i0, Kw, BW)
                g0_, g1_, g2_, g3_ = _act_words(q_g, i0, Kw, BW)
            acc_i = _mac4(acc_i, p_i, i0_, i1_, i2_, i3_, ASM)
            acc_f = _mac4(acc_f, p_f, f0_, f1_, f2_, f3_, ASM)
            acc_g = _mac4(acc_g, p_g, g0_, g1_, g2_, g3_, ASM)
            if QNEXT:
                i0_, i1_, i2_, i3_ = i0n, i1n, i2n, i3n
                f0_, f1_, f2_, f3_ = f0n, f1n, f2n, f3n
                g0_, g1_, g2_, g3_ = g0n, g1n, g2n, g3n
            p_i, p_f, p_g = n_i, n_f, n_g
            n_i = _tile(PI, rn, nmask, i0 + 2 * BLOCK_Q, Kq, BLOCK_Q, 1)
            n_f = _tile(PF, rn, nmask, i0 + 2 * BLOCK_Q, Kq, BLOCK_Q, 1)
            n_g = _tile(PG, rn, nmask, i0 + 2 * BLOCK_Q, Kq, BLOCK_Q, 1)
    if LATE:
        lb, hp = _mlgru_prev(LB, H, rows, rmask, rn, nmask, stride_h, HAS_LB)
        s_i, qs_i = _row_scales(S, QS, 0, rows, rmask, B)
        s_f, qs_f = _row_scales(S, QS, 1, rows, rmask, B)
        s_g, qs_g = _row_scales(S, QS, 2, rows, rmask, B)
    yi = _y_rows(acc_i, qs_i, g_i, s_i, X)  # [1, BN]
    yf = _y_rows(acc_f, qs_f, g_f, s_f, X)
    yg = _y_rows(acc_g, qs_g, g_g, s_g, X)
    _mlgru_store(
        yi, yf, yg, lb, hp, H, OUT, X, rows, rmask, rn, nmask, stride_h, stride_o, HAS_LB, OFFICIAL, SH, SILU
    )


@triton.jit
def _words_gemv(
    P, rn, rn_b, nmask, p_a, p_b, n_a, n_b, qrow, Kq,
    TWO: tl.constexpr, ASM: tl.constexpr, QNEXT: tl.constexpr, ONE: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):  # fmt: skip
    # `[BN, BW]` int32 accumulators of the weight rows rn (and, with TWO, rn_b: the GLU's up rows) times one
    # row's activation words at qrow, from the first tiles p_a / p_b and (unless ONE) the next tiles n_a /
    # n_b loaded before the wait; without TWO, acc_b stays zero
    BW: tl.constexpr = BLOCK_Q // 4
    acc_a = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    acc_b = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    if QNEXT or ONE:  # the first tile's activation words; the loop loads each next tile's with its weights
        c0, c1, c2, c3 = _act_words(qrow, 0, Kq // 4, BW)
    if ONE:  # the whole row is one tile, loaded before the wait
        acc_a = _mac4(acc_a, p_a, c0, c1, c2, c3, ASM)
        if TWO:
            acc_b = _mac4(acc_b, p_b, c0, c1, c2, c3, ASM)
    else:
        for i0 in range(0, Kq, BLOCK_Q):
            if QNEXT:
                d0, d1, d2, d3 = _act_words(qrow, i0 + BLOCK_Q, Kq // 4, BW)
            else:
                c0, c1, c2, c3 = _act_words(qrow, i0, Kq // 4, BW)
            acc_a = _mac4(acc_a, p_a, c0, c1, c2, c3, ASM)
            if TWO:
                acc_b = _mac4(acc_b, p_b, c0, c1, c2, c3, ASM)
            if QNEXT:
                c0, c1, c2, c3 = d0, d1, d2, d3
            p_a = n_a
            n_a = _tile(P, rn, nmask, i0 + 2 * BLOCK_Q, Kq, BLOCK_Q, 1)
            if TWO:
                p_b = n_b
                n_b = _tile(P, rn_b, nmask, i0 + 2 * BLOCK_Q, Kq, BLOCK_Q, 1)
    return acc_a, acc_b


@triton.jit
def _whole_tile(P, rn, nmask, i0, Kq, BQ: tl.constexpr, LANES: tl.constexpr):
    # `_tile` (PATH 1) of a whole-row GEMV: `[BN, BQ / 4]` words. With LANES (the launch's threads, "wvec")
    # and BQ / 4 words 2 or 3 times LANES, the load gives each thread 2-3 consecutive words (a contiguity
    # hint, where Triton would give 4), so it lays all warps along K: the tile's column slice is then the
    # layout of a 1-D load of BQ / 4 activation words, which `_mac4` broadcasts with no shared-memory
    # conversion (at 4 words a thread, a 256-word tile on 4 warps takes 2 warps along its rows, and each of
    # the four activation vectors crossed shared memory between two barriers after the wait). One word a
    # thread (128-word tiles) made the 1.3B and 2.7B heads slower (H200: 6.1 -> 12.5 µs, 8.4 -> 10.7 µs)
    BW: tl.constexpr = BQ // 4
    if LANES > 0 and BW >= 2 * LANES and BW < 4 * LANES:
        VEC: tl.constexpr = BW // LANES
        iw = i0 // 4 + tl.max_contiguous(tl.arange(0, BW), VEC)
        Kw = Kq // 4
        return tl.load(P + rn[:, None] * Kw + iw[None, :], mask=nmask[:, None] & (iw[None, :] < Kw), other=0)
    return _tile(P, rn, nmask, i0, Kq, BQ, 1)


@triton.jit
def _bitlinear_kernel(
    X, P, Q, S, QS, G, Y,
    B, N, Kq, stride_y,
    RESIDUAL: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, LATE: tl.constexpr, QNEXT: tl.constexpr,
    ONE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr, BQ2: tl.constexpr = 0,
    LANES: tl.constexpr = 0,
):  # fmt: skip
    # with BQ2 > 0 (ONE, "wsplit") the whole row is two tiles: bytes 0 .. BLOCK_Q and BLOCK_Q .. BLOCK_Q + BQ2,
    # both powers of two (1280 = 1024 + 256 bytes, where one tile would pad to 2048). LANES: `_whole_tile`
    rows, rmask, rn, nmask = _row_block(B, N, BLOCK_N)
    if ONE:
        p = _whole_tile(P, rn, nmask, 0, Kq, BLOCK_Q, LANES)
        n = p
    else:
        p = _tile(P, rn, nmask, 0, Kq, BLOCK_Q, 1)
        n = _tile(P, rn, nmask, BLOCK_Q, Kq, BLOCK_Q, 1)
    if BQ2 > 0:
        p2 = _whole_tile(P, rn, nmask, BLOCK_Q, Kq, BQ2, LANES)  # [BN, BQ2 / 4] the next (or last) words
    g = tl.load(G)
    if not LATE:
        res = _residual(Y, rows, rmask, rn, nmask, stride_y, RESIDUAL)  # [1, BN]
    _wait_inputs(PDL)
    if not LATE:
        s, qs = _row_scales(S, QS, 0, rows, rmask, B)
    qrow = Q + tl.program_id(1) * Kq
    acc, _ = _words_gemv(P, rn, rn, nmask, p, p, n, n, qrow, Kq, False, ASM, QNEXT, ONE, BLOCK_N, BLOCK_Q)
    if LATE:
        res = _residual(Y, rows, rmask, rn, nmask, stride_y, RESIDUAL)
        s, qs = _row_scales(S, QS, 0, rows, rmask, B)
    if BQ2 > 0:
        d0, d1, d2, d3 = _act_words(qrow, BLOCK_Q, Kq // 4, BQ2 // 4)
        acc2 = _mac4(tl.zeros([BLOCK_N, BQ2 // 4], dtype=tl.int32), p2, d0, d1, d2, d3, ASM)
        y = _y_rows2(acc, acc2, qs, g, s, X)
    else:
        y = _y_rows(acc, qs, g, s, X)
    _linear_store(y, res, Y, rows, rmask, rn, nmask, stride_y, RESIDUAL)


@triton.jit
def _glu_in_kernel(
    X, P, Q, S, QS, G, U,
    B, I, Kq, stride_u,
    ASM: tl.constexpr, PDL: tl.constexpr, LATE: tl.constexpr, QNEXT: tl.constexpr, ONE: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _row_block(B, I, BLOCK_N)
    p_a = _tile(P, rn, nmask, 0, Kq, BLOCK_Q, 1)
    p_b = _tile(P, rn + I, nmask, 0, Kq, BLOCK_Q, 1)  # the up rows I..2I-1
    n_a, n_b = p_a, p_b
    if not ONE:
        n_a = _tile(P, rn, nmask, BLOCK_Q, Kq, BLOCK_Q, 1)
        n_b = _tile(P, rn + I, nmask, BLOCK_Q, Kq, BLOCK_Q, 1)
    g = tl.load(G)
    _wait_inputs(PDL)
    if not LATE:
        s, qs = _row_scales(S, QS, 0, rows, rmask, B)
    qrow = Q + tl.program_id(1) * Kq
    acc_a, acc_b = _words_gemv(
        P, rn, rn + I, nmask, p_a, p_b, n_a, n_b, qrow, Kq, True, ASM, QNEXT, ONE, BLOCK_N, BLOCK_Q
    )
    if LATE:
        s, qs = _row_scales(S, QS, 0, rows, rmask, B)
    gate = _y_rows(acc_a, qs, g, s, X)
    up = _y_rows(acc_b, qs, g, s, X)
    _glu_out(gate, up, U, X, rows, rmask, rn, nmask, stride_u)


QUANT_MAX_WARPS = 32  # `_quant_kernel`'s warps: one per 512 values of the row, 4 to this many


def quantize_rows(
    x: torch.Tensor,
    h: torch.Tensor,
    w1: torch.Tensor,
    eps1: float,
    norms: tuple[tuple[torch.Tensor, float], ...],
    mode: int,
    kq: int,
    cfg: _Launch,
    scratch: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes, scales and code sums of `[B, K]` x for 1 or 3 BitLinear norms (weight, eps), transformed first
    by MODE (0 raw, 1 RMSNorm(x) * w1, 2 RMSNorm(x) * w1 * SiLU(h)): `[NORMS, B, Kq]` int32 activation words
    (the int8 codes, zero-padded to 4 Kq columns), `[NORMS, B]` fp32 scales and int32 sums. One launch of
    one program per row and norm (up to 32 warps: about 16 values per thread); `cfg.pdl` is the GEMV's
    option. The buffers live in `scratch` when given (one set per shape, reused by later calls: each call's
    kernels run after the previous call's on the stream, and with PDL the quantization kernel writes only
    after its wait), else they are allocated."""
    B, K = x.shape
    nn = len(norms)
    key = f"prequant_{nn}x{B}x{kq}"
    if scratch is not None and key + "_q" in scratch:
        q, s, qs = scratch[key + "_q"], scratch[key + "_s"], scratch[key + "_qs"]
    else:
        q = torch.empty((nn, B, 4 * kq), dtype=torch.int8, device=x.device)  # [NORMS, B, 4 Kq]
        s = torch.empty((nn, B), dtype=torch.float32, device=x.device)  # [NORMS, B]
        qs = torch.empty((nn, B), dtype=torch.int32, device=x.device)  # [NORMS, B]
        if scratch is not None:
            scratch[key + "_q"], scratch[key + "_s"], scratch[key + "_qs"] = q, s, qs
    wa, wb, wc = (norms * 3)[:3] if nn == 1 else norms
    warps, ea, eb = quant_pieces(4 * kq, cfg.pieces)
    _quant_kernel[(B, nn)](
        x, h, w1, wa[0], wb[0], wc[0], q, s, qs,
        B, K, 4 * kq, x.stride(0), h.stride(0), float(eps1), float(wa[1]), float(wb[1]), float(wc[1]),
        MODE=mode, PDL=cfg.pdl, T=32 * warps, EA=ea, EB=eb, num_warps=warps,
        **({"launch_pdl": True} if cfg.pdl else {}),
    )  # fmt: skip
    return q.view(torch.int32), s, qs


def quant_pieces(kp: int, pieces: bool) -> tuple[int, int, int]:
    """(num_warps, EA, EB) of `_quant_kernel` for rows of kp code columns: one warp per 512 columns of the
    padded row (4 to QUANT_MAX_WARPS), each thread holding EA columns; with `pieces` (the "pieces" option),
    a width that splits with fewer padded lanes into whole columns per thread takes EA + EB (the largest
    power of two, then the remainder's next one): 5120 on 16 warps is 8 + 2 a thread where the
    power-of-two row pads to 16. (A third piece for 13824 = 512 x (16 + 8 + 4), option "pieces3" in session
    17, timed no faster on an H200 and was removed.)"""
    block = triton.next_power_of_2(kp)
    warps = min(QUANT_MAX_WARPS, max(4, block // 512))
    threads = 32 * warps
    if pieces:
        for w in (warps, warps // 2):  # 13824 = 512 x 27 (16 warps) but not 1024 x a whole number
            t = 32 * w
            if w >= 4 and kp % t == 0:
                per = kp // t
                ea = 1 << (per.bit_length() - 1)
                eb = triton.next_power_of_2(per - ea) if per > ea else 0
                if t * (ea + eb) < block:
                    return w, ea, eb
    return warps, max(1, block // threads), 0


def whole_split(kq: int) -> tuple[int, int] | None:
    """("wsplit") A whole packed row of kq bytes as two power-of-two tiles (BLOCK_Q, BQ2) in bytes, the first
    the largest that fits, the second the rest rounded up, where that holds fewer padded words than one tile:
    1280 = 1024 + 256 (13B o_proj and head; one tile would be 2048), 640 = 512 + 128; None where it does not
    (3456, the 13B down_proj: 2048 + 2048 pads as much as 4096)."""
    kw = kq // 4
    if kq % 4 or kw < 2 or kw & (kw - 1) == 0:
        return None
    first = 1 << (kw.bit_length() - 1)
    second = triton.next_power_of_2(kw - first)
    if first + second >= triton.next_power_of_2(kw):
        return None
    return 4 * first, 4 * second


def _launch_gemv(
    kernel: Any,
    N: int,
    kq: int,
    args: tuple[Any, ...],
    consts: dict[str, Any],
    cfg: _Launch,
    one: bool | None = None,
) -> None:
    """Launch a GEMV of N outputs per projection over (blocks of BLOCK_N, B rows), packed rows of kq bytes;
    args[0] is x `[B, K]`. A tile of at least kq bytes holds the whole row: ONE, no K loop (`one` True: the
    caller splits the whole row, BLOCK_Q being the first tile)."""
    grid = (triton.cdiv(N, cfg.block_n), args[0].shape[0])
    one = cfg.block_q >= kq if one is None else one
    kernel[grid](
        *args, LATE=cfg.late, QNEXT=cfg.qnext, ONE=one, ASM=cfg.asm, PDL=cfg.pdl, BLOCK_N=cfg.block_n,
        BLOCK_Q=cfg.block_q, **consts, **cfg.launch_kwargs(),
    )  # fmt: skip


def mlgru_input_step(
    x: torch.Tensor,
    attn_norm: tuple[torch.Tensor, float],
    projs: tuple[TernaryProj, TernaryProj, TernaryProj],
    lower_bound: torch.Tensor | None,
    state: torch.Tensor,
    out: torch.Tensor,
    official: bool,
    cfg: _Launch,
    scratch: dict[str, torch.Tensor] | None = None,
    silu_out: torch.Tensor | None = None,
) -> None:
    """`fused.mlgru_input_step` (arguments checked there) in two launches: the codes, then the GEMV (with
    the "fold" option, in one where `fold.fold_tile` allows)."""
    B, N, kq = x.shape[0], projs[0].packed.shape[0], projs[0].packed.shape[1]
    if cfg.fold_tile is not None:
        fold.mlgru_input_step(
            x, attn_norm, projs, lower_bound, state, out, official, cfg, cfg.fold_tile, silu_out
        )
        return
    q, s, qs = quantize_rows(
        x, x, attn_norm[0], attn_norm[1], tuple((p.norm_weight, p.eps) for p in projs), 1, kq, cfg, scratch
    )
    i, f, g = projs
    args = (
        x, i.packed.view(torch.int32), f.packed.view(torch.int32), g.packed.view(torch.int32), q, s, qs,
        i.scale, f.scale, g.scale, lower_bound if lower_bound is not None else state, state, out,
        silu_out if silu_out is not None else state, B, N, kq, state.stride(0), out.stride(0),
    )  # fmt: skip
    consts = dict(HAS_LB=lower_bound is not None, OFFICIAL=official, SILU=silu_out is not None)
    _launch_gemv(_mlgru_in_kernel, N, kq, args, consts, cfg)


def bitlinear_step(
    x: torch.Tensor,
    h: torch.Tensor,
    w1: torch.Tensor,
    eps1: float,
    mode: int,
    proj: TernaryProj,
    out: torch.Tensor,
    residual: bool,
    cfg: _Launch,
    scratch: dict[str, torch.Tensor] | None = None,
) -> None:
    """`fused.bitlinear_step` (arguments checked and resolved to MODE, w1, eps1, h there) in two launches (or
    one, as `mlgru_input_step`)."""
    B, N, kq = x.shape[0], proj.packed.shape[0], proj.packed.shape[1]
    if cfg.fold_tile is not None:
        fold.bitlinear_step(x, h, w1, eps1, mode, proj, out, residual, cfg, cfg.fold_tile)
        return
    q, s, qs = quantize_rows(x, h, w1, eps1, ((proj.norm_weight, proj.eps),), mode, kq, cfg, scratch)
    args = (x, proj.packed.view(torch.int32), q, s, qs, proj.scale, out, B, N, kq, out.stride(0))
    consts = dict(RESIDUAL=residual)
    whole = cfg.block_q >= kq  # the row in one tile: ONE, no K loop
    if cfg.wvec and whole:  # `_whole_tile`'s loads
        consts["LANES"] = 32 * cfg.warps
    split = whole_split(kq) if cfg.wsplit and whole else None
    if split is not None:  # the whole row as two power-of-two tiles
        consts["BQ2"] = split[1]
        _launch_gemv(_bitlinear_kernel, N, kq, args, consts, cfg._replace(block_q=split[0]), one=True)
        return
    _launch_gemv(_bitlinear_kernel, N, kq, args, consts, cfg)


def glu_input_step(
    x: torch.Tensor,
    mlp_norm: tuple[torch.Tensor, float],
    gate_proj: TernaryProj,
    out: torch.Tensor,
    cfg: _Launch,
    scratch: dict[str, torch.Tensor] | None = None,
) -> None:
    """`fused.glu_input_step` (arguments checked there) in two launches: the codes, then the GEMV (or one, as
    `mlgru_input_step`)."""
    B, inter, kq = x.shape[0], gate_proj.packed.shape[0] // 2, gate_proj.packed.shape[1]
    if cfg.fold_tile is not None:
        fold.glu_input_step(x, mlp_norm, gate_proj, out, cfg, cfg.fold_tile)
        return
    q, s, qs = quantize_rows(
        x, x, mlp_norm[0], mlp_norm[1], ((gate_proj.norm_weight, gate_proj.eps),), 1, kq, cfg, scratch
    )
    args = (
        x,
        gate_proj.packed.view(torch.int32),
        q,
        s,
        qs,
        gate_proj.scale,
        out,
        B,
        inter,
        kq,
        out.stride(0),
    )
    _launch_gemv(_glu_in_kernel, inter, kq, args, {}, cfg)
