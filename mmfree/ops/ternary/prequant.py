"""Decode kernels that quantize each BitLinear input once ("prequant" option of `fused.py`).

The default fused kernels (`fused.py`) recompute the input's RMSNorm and int8 quantization in every
program: several dependent block reductions over the whole row before the first weight tile is used, and
the codes of every quarter re-derived inside the GEMV loop. Here one small kernel does that once per row
(`_quant_kernel`: the same formulas through the same helpers, `fused_parts.py`) and writes the int8 codes
in column order, zero-padded to 4 Kq columns (Kq = packed bytes per weight row), with their scale s and
code sum. Viewed as int32, those codes are the activation words of the dp4a path: word j Kw + m (Kw = Kq /
4) holds the codes of columns j Kq + 4m .. j Kq + 4m + 3, exactly the columns that quarter j of weight word
m encodes. The GEMV kernels are then pure streams of weight words: per tile, four L2-resident activation
words per weight word and one `dp4a` per quarter, no reduction before the first tile. The epilogues are the
default kernels' (`fused_parts.py`), so both paths give the same bits.

- `_quant_kernel`: input transform MODE 0 (raw), 1 (RMSNorm(x) * w1) or 2 (the official output gate
  RMSNorm(g) * w1 * SiLU(h)), then NORMS (1 or 3) BitLinear norms, each its own codes/scale/sum.
- `_mlgru_in_kernel`, `_bitlinear_kernel`, `_glu_in_kernel`: the three projections + recurrence, one
  projection + store or residual add, gate/up + SiLU(gate) * up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import triton
import triton.language as tl

from mmfree.ops.ternary.fused_parts import (
    _act_scale,
    _act_scale3,
    _codes,
    _dp4a,
    _glu_out,
    _linear_out,
    _mean_sq,
    _mlgru_out,
    _src,
    _tile,
    _wait_inputs,
    _y,
)

if TYPE_CHECKING:
    from mmfree.ops.ternary.fused import TernaryProj, _Launch


@triton.jit
def _quant_kernel(
    X, H, W1, WA, WB, WC, Q, S, QS,
    B, K, Kp, stride_x, stride_h, eps1, eps_a, eps_b, eps_c,
    MODE: tl.constexpr, NORMS: tl.constexpr, PDL: tl.constexpr, ROWS: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    # Q `[NORMS, B, Kp]` int8 codes (columns K.. are 0), S `[NORMS, B]` fp32 scales, QS `[NORMS, B]` int32 sums
    _wait_inputs(PDL)
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    rmask = rows < B
    r1 = tl.zeros([ROWS], dtype=tl.float32) + 1.0
    if MODE >= 1:
        r1 = 1.0 / tl.sqrt(
            _mean_sq(X, H, W1, r1, rows, rmask, K, stride_x, stride_h, 0, ROWS, BLOCK_K) + eps1
        )
    ms = _mean_sq(X, H, W1, r1, rows, rmask, K, stride_x, stride_h, MODE, ROWS, BLOCK_K)
    ra = 1.0 / tl.sqrt(ms + eps_a)
    rb = 1.0 / tl.sqrt(ms + eps_b)
    rc = 1.0 / tl.sqrt(ms + eps_c)
    if NORMS == 3:
        sa, sb, sc = _act_scale3(X, W1, r1, WA, ra, WB, rb, WC, rc, rows, rmask, K, stride_x, ROWS, BLOCK_K)
    else:
        sa = _act_scale(X, H, W1, r1, WA, ra, rows, rmask, K, stride_x, stride_h, MODE, ROWS, BLOCK_K)
        sb = sa
        sc = sa
    sum_a = tl.zeros([ROWS], dtype=tl.int32)
    sum_b = tl.zeros([ROWS], dtype=tl.int32)
    sum_c = tl.zeros([ROWS], dtype=tl.int32)
    for k0 in range(0, Kp, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        kmask = k < K
        qm = rmask[:, None] & (k < Kp)[None, :]
        v = _src(X, H, W1, r1, rows, rmask, k, kmask, stride_x, stride_h, MODE)  # [ROWS, BK]
        q = _codes(v, WA, ra, sa, k, kmask, X)  # [ROWS, BK] int32, 0 past K
        tl.store(Q + rows[:, None] * Kp + k[None, :], q.to(tl.int8), mask=qm)
        sum_a += tl.sum(q, axis=1)
        if NORMS == 3:
            q = _codes(v, WB, rb, sb, k, kmask, X)
            tl.store(Q + (B + rows[:, None]) * Kp + k[None, :], q.to(tl.int8), mask=qm)
            sum_b += tl.sum(q, axis=1)
            q = _codes(v, WC, rc, sc, k, kmask, X)
            tl.store(Q + (2 * B + rows[:, None]) * Kp + k[None, :], q.to(tl.int8), mask=qm)
            sum_c += tl.sum(q, axis=1)
    tl.store(S + rows, sa, mask=rmask)
    tl.store(QS + rows, sum_a, mask=rmask)
    if NORMS == 3:
        tl.store(S + B + rows, sb, mask=rmask)
        tl.store(QS + B + rows, sum_b, mask=rmask)
        tl.store(S + 2 * B + rows, sc, mask=rmask)
        tl.store(QS + 2 * B + rows, sum_c, mask=rmask)


@triton.jit
def _mac_words(acc, p, QW, iw, Kw, ASM: tl.constexpr):
    # acc `[BN, BW]` + the weight words p `[BN, BW]` (word columns iw) times one row's activation words QW
    # (int32, `[Kq]`): quarter j of weight word m meets activation word j Kw + m (one dp4a per quarter)
    for j in tl.static_range(4):
        qw = tl.load(QW + j * Kw + iw, mask=iw < Kw, other=0)  # [BW]
        wj = (p >> (2 * j)) & 0x03030303  # [BN, BW]: codes w + 1 of quarter j
        acc = _dp4a(wj, tl.broadcast_to(qw[None, :], acc.shape), acc, ASM)
    return acc


@triton.jit
def _row_block(B, N, BLOCK_N: tl.constexpr):
    # this program's batch row (one per program: `[1]` with its mask) and output columns with their mask
    rows = tl.program_id(1) + tl.zeros([1], dtype=tl.int32)
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    return rows, rows < B, rn, rn < N


@triton.jit
def _row_y(acc, n: tl.constexpr, S, QS, G, X, rows, rmask, B):
    # `[1, BN]` output of projection n for this row from its `[BN, BW]` accumulator
    s = tl.load(S + n * B + rows, mask=rmask, other=1.0)
    return _y(acc[None, :, :], tl.load(QS + n * B + rows, mask=rmask, other=0), G, s, X, 1)


@triton.jit
def _mlgru_in_kernel(
    X, PI, PF, PG, Q, S, QS, GI, GF, GG, LB, H, OUT,
    B, N, Kq, stride_h, stride_o,
    HAS_LB: tl.constexpr, OFFICIAL: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _row_block(B, N, BLOCK_N)
    p_i = _tile(PI, rn, nmask, 0, Kq, BLOCK_Q, 1)  # [BN, BQ / 4] words, before the codes are ready
    p_f = _tile(PF, rn, nmask, 0, Kq, BLOCK_Q, 1)
    p_g = _tile(PG, rn, nmask, 0, Kq, BLOCK_Q, 1)
    _wait_inputs(PDL)
    Kw = Kq // 4
    row = tl.program_id(1)
    acc_i = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    acc_f = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    acc_g = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    for i0 in range(0, Kq, BLOCK_Q):
        iw = i0 // 4 + tl.arange(0, BLOCK_Q // 4)
        acc_i = _mac_words(acc_i, p_i, Q + row * Kq, iw, Kw, ASM)
        acc_f = _mac_words(acc_f, p_f, Q + (B + row) * Kq, iw, Kw, ASM)
        acc_g = _mac_words(acc_g, p_g, Q + (2 * B + row) * Kq, iw, Kw, ASM)
        p_i = _tile(PI, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, 1)
        p_f = _tile(PF, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, 1)
        p_g = _tile(PG, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, 1)
    yi = _row_y(acc_i, 0, S, QS, GI, X, rows, rmask, B)
    yf = _row_y(acc_f, 1, S, QS, GF, X, rows, rmask, B)
    yg = _row_y(acc_g, 2, S, QS, GG, X, rows, rmask, B)
    _mlgru_out(yi, yf, yg, LB, H, OUT, X, rows, rmask, rn, nmask, stride_h, stride_o, HAS_LB, OFFICIAL)


@triton.jit
def _bitlinear_kernel(
    X, P, Q, S, QS, G, Y,
    B, N, Kq, stride_y,
    RESIDUAL: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _row_block(B, N, BLOCK_N)
    p = _tile(P, rn, nmask, 0, Kq, BLOCK_Q, 1)
    _wait_inputs(PDL)
    acc = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    for i0 in range(0, Kq, BLOCK_Q):
        iw = i0 // 4 + tl.arange(0, BLOCK_Q // 4)
        acc = _mac_words(acc, p, Q + tl.program_id(1) * Kq, iw, Kq // 4, ASM)
        p = _tile(P, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, 1)
    y = _row_y(acc, 0, S, QS, G, X, rows, rmask, B)
    _linear_out(y, Y, rows, rmask, rn, nmask, stride_y, RESIDUAL)


@triton.jit
def _glu_in_kernel(
    X, P, Q, S, QS, G, U,
    B, I, Kq, stride_u,
    ASM: tl.constexpr, PDL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _row_block(B, I, BLOCK_N)
    p_a = _tile(P, rn, nmask, 0, Kq, BLOCK_Q, 1)
    p_b = _tile(P, rn + I, nmask, 0, Kq, BLOCK_Q, 1)  # the up rows I..2I-1
    _wait_inputs(PDL)
    acc_a = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    acc_b = tl.zeros([BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    qrow = Q + tl.program_id(1) * Kq
    for i0 in range(0, Kq, BLOCK_Q):
        iw = i0 // 4 + tl.arange(0, BLOCK_Q // 4)
        acc_a = _mac_words(acc_a, p_a, qrow, iw, Kq // 4, ASM)
        acc_b = _mac_words(acc_b, p_b, qrow, iw, Kq // 4, ASM)
        p_a = _tile(P, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, 1)
        p_b = _tile(P, rn + I, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, 1)
    gate = _row_y(acc_a, 0, S, QS, G, X, rows, rmask, B)
    up = _row_y(acc_b, 0, S, QS, G, X, rows, rmask, B)
    _glu_out(gate, up, U, X, rows, rmask, rn, nmask, stride_u)


def quantize_rows(
    x: torch.Tensor,
    h: torch.Tensor,
    w1: torch.Tensor,
    eps1: float,
    norms: tuple[tuple[torch.Tensor, float], ...],
    mode: int,
    kq: int,
    cfg: _Launch,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes, scales and code sums of `[B, K]` x for 1 or 3 BitLinear norms (weight, eps), transformed first
    by MODE (0 raw, 1 RMSNorm(x) * w1, 2 RMSNorm(x) * w1 * SiLU(h)): `[NORMS, B, Kq]` int32 activation words
    (the int8 codes, zero-padded to 4 Kq columns), `[NORMS, B]` fp32 scales and int32 sums. One launch;
    `cfg` is the `fused._Launch` of the GEMV that reads them (its rows, block_k, warps and pdl)."""
    B, K = x.shape
    nn = len(norms)
    q = torch.empty((nn, B, 4 * kq), dtype=torch.int8, device=x.device)
    s = torch.empty((nn, B), dtype=torch.float32, device=x.device)
    qs = torch.empty((nn, B), dtype=torch.int32, device=x.device)
    wa, wb, wc = (norms * 3)[:3] if nn == 1 else norms
    _quant_kernel[(triton.cdiv(B, cfg.rows),)](
        x, h, w1, wa[0], wb[0], wc[0], q, s, qs,
        B, K, 4 * kq, x.stride(0), h.stride(0), float(eps1), float(wa[1]), float(wb[1]), float(wc[1]),
        MODE=mode, NORMS=nn, PDL=cfg.pdl, ROWS=cfg.rows, BLOCK_K=cfg.block_k, **cfg.launch_kwargs(),
    )  # fmt: skip
    return q.view(torch.int32), s, qs


def mlgru_input_step(
    x: torch.Tensor,
    attn_norm: tuple[torch.Tensor, float],
    projs: tuple[TernaryProj, TernaryProj, TernaryProj],
    lower_bound: torch.Tensor | None,
    state: torch.Tensor,
    out: torch.Tensor,
    official: bool,
    cfg: _Launch,
) -> None:
    """`fused.mlgru_input_step` (arguments checked there) in two launches: the codes, then the GEMV."""
    B, N, kq = x.shape[0], projs[0].packed.shape[0], projs[0].packed.shape[1]
    q, s, qs = quantize_rows(
        x, x, attn_norm[0], attn_norm[1], tuple((p.norm_weight, p.eps) for p in projs), 1, kq, cfg
    )
    i, f, g = projs
    _mlgru_in_kernel[(triton.cdiv(N, cfg.block_n), B)](
        x, i.packed.view(torch.int32), f.packed.view(torch.int32), g.packed.view(torch.int32), q, s, qs,
        i.scale, f.scale, g.scale, lower_bound if lower_bound is not None else state, state, out,
        B, N, kq, state.stride(0), out.stride(0),
        HAS_LB=lower_bound is not None, OFFICIAL=official, ASM=cfg.asm, PDL=cfg.pdl,
        BLOCK_N=cfg.block_n, BLOCK_Q=cfg.block_q, **cfg.launch_kwargs(),
    )  # fmt: skip


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
) -> None:
    """`fused.bitlinear_step` (arguments checked and resolved to MODE, w1, eps1, h there) in two launches."""
    B, N, kq = x.shape[0], proj.packed.shape[0], proj.packed.shape[1]
    q, s, qs = quantize_rows(x, h, w1, eps1, ((proj.norm_weight, proj.eps),), mode, kq, cfg)
    _bitlinear_kernel[(triton.cdiv(N, cfg.block_n), B)](
        x, proj.packed.view(torch.int32), q, s, qs, proj.scale, out, B, N, kq, out.stride(0),
        RESIDUAL=residual, ASM=cfg.asm, PDL=cfg.pdl, BLOCK_N=cfg.block_n, BLOCK_Q=cfg.block_q,
        **cfg.launch_kwargs(),
    )  # fmt: skip


def glu_input_step(
    x: torch.Tensor,
    mlp_norm: tuple[torch.Tensor, float],
    gate_proj: TernaryProj,
    out: torch.Tensor,
    cfg: _Launch,
) -> None:
    """`fused.glu_input_step` (arguments checked there) in two launches: the codes, then the GEMV."""
    B, inter, kq = x.shape[0], gate_proj.packed.shape[0] // 2, gate_proj.packed.shape[1]
    q, s, qs = quantize_rows(
        x, x, mlp_norm[0], mlp_norm[1], ((gate_proj.norm_weight, gate_proj.eps),), 1, kq, cfg
    )
    _glu_in_kernel[(triton.cdiv(inter, cfg.block_n), B)](
        x, gate_proj.packed.view(torch.int32), q, s, qs, gate_proj.scale, out, B, inter, kq, out.stride(0),
        ASM=cfg.asm, PDL=cfg.pdl, BLOCK_N=cfg.block_n, BLOCK_Q=cfg.block_q, **cfg.launch_kwargs(),
    )  # fmt: skip
