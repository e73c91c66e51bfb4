"""Batch-1 decode kernels that quantize their input inside the GEMV ("fold" option of `fused.py`).

With "prequant" a BitLinear call is two launches: a one-program kernel that normalizes and quantizes the
row, then the word GEMV (`prequant.py`). Each launch boundary is a dependent round trip, and at 1.3B the
quantization launches are about a third of the step (`benchmarks/decode_kernels.py --probes noquant`).
Here one launch does both: every program loads its weight rows whole (`[BLOCK_N, BW]` int32 words, BW the
packed row's words rounded up to a power of two) before it waits for the previous kernel, then loads the
input row from L2 in the layout of the activation words (`[BW, 4]` per quarter j: column j Kq + 4 m + b is
byte b of word m), runs the quantization kernel's formulas on it (the same per-element operations; the row
sums add up in another order, so a code can differ at a rounding tie, as between "prequant" and the
default), packs the codes four to a word in registers and multiplies them into the weight words with
`dp4a` (`fused_parts._mac4`). The row is normalized redundantly by every program, which is cheaper than a
launch while the row is short; `FOLD_TILES` bounds the packed row length per kernel.

- `_mlgru_in_kernel`: attn_norm, the i/f/g codes (each its own norm and scale), the three projections and
  the recurrence;
- `_bitlinear_kernel`: input MODE 0 (raw), 1 (RMSNorm(x) * w1) or 2 (the official output gate; 3 with
  SiLU(h) stored by the MLGRU kernel), one projection, store or residual add;
- `_glu_in_kernel`: mlp_norm, gate/up, SiLU(gate) * up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import triton
import triton.language as tl

from mmfree.ops.ternary.fused_parts import (
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
    _wait_inputs,
    _y_rows,
)

if TYPE_CHECKING:
    from mmfree.ops.ternary.fused import TernaryProj, _Launch


@triton.jit
def _cols(J: tl.constexpr, Kq, K, BW: tl.constexpr):
    # quarter J of the row in the activation words' layout: `[BW, 4]` columns J Kq + 4 m + b and their mask
    m = tl.arange(0, BW)
    b = tl.arange(0, 4)
    col = J * Kq + 4 * m[:, None] + b[None, :]
    return col, (m[:, None] < Kq // 4) & (col < K)


@triton.jit
def _ld(P, J: tl.constexpr, Kq, K, BW: tl.constexpr):
    # `[BW, 4]` fp32 values of quarter J of the vector P (0 past the row)
    col, cm = _cols(J, Kq, K, BW)
    return tl.load(P + col, mask=cm, other=0.0).to(tl.float32)


@triton.jit
def _ssq(v0, v1, v2, v3):
    # the sum of the squares of a row held as four `[BW, 4]` quarters (one block reduction)
    return tl.sum(v0 * v0 + v1 * v1 + v2 * v2 + v3 * v3)


@triton.jit
def _abs4(x0, x1, x2, x3):
    # `[BW, 4]` largest magnitude over the four quarters, per position
    return tl.maximum(tl.maximum(tl.abs(x0), tl.abs(x1)), tl.maximum(tl.abs(x2), tl.abs(x3)))


@triton.jit
def _flat(t):
    # a `[BW, 4]` tensor as one axis, in any order (for a multi-tensor `tl.reduce`)
    return tl.reshape(t, [t.shape[0] * t.shape[1]])


@triton.jit
def _max3(a, b, c, d, e, f):
    return tl.maximum(a, d), tl.maximum(b, e), tl.maximum(c, f)


@triton.jit
def _add3(a, b, c, d, e, f):
    return a + d, b + e, c + f


@triton.jit
def _words(q):
    # `[BW, 4]` int32 codes -> `[BW]` activation words (byte b of word m is the code of column 4 m + b)
    shift = tl.arange(0, 4) * 8
    return tl.sum((q & 0xFF) << shift[None, :], axis=1)


@triton.jit
def _ld4(P, Kq, K, BW: tl.constexpr):
    # the four quarters of the vector P (a norm weight: loaded before the kernel waits for its input)
    return _ld(P, 0, Kq, K, BW), _ld(P, 1, Kq, K, BW), _ld(P, 2, Kq, K, BW), _ld(P, 3, Kq, K, BW)


@triton.jit
def _normed(v0, v1, v2, v3, w0, w1, w2, w3, r, X):
    # the four quarters of RMSNorm(v) * w in the model dtype, given the norm's 1 / rms r
    return _rnd(v0 * r * w0, X), _rnd(v1 * r * w1, X), _rnd(v2 * r * w2, X), _rnd(v3 * r * w3, X)


@triton.jit
def _codes(x0, x1, x2, x3, s):
    # the int8 codes of xn s as the four quarters' activation words, and `[BW, 4]` code sums over the
    # quarters (for one block reduction later)
    q0 = _int8_codes(x0 * s)
    q1 = _int8_codes(x1 * s)
    q2 = _int8_codes(x2 * s)
    q3 = _int8_codes(x3 * s)
    return _words(q0), _words(q1), _words(q2), _words(q3), q0 + q1 + q2 + q3


@triton.jit
def _quantize(v0, v1, v2, v3, w0, w1, w2, w3, ms, eps, X):
    # one BitLinear norm (weight quarters w0..w3) of the row (as `prequant._quant_kernel`): xn = RMSNorm(v) * w
    # (model dtype), its int8 scale s = 127 / max|xn| and codes; returns the four quarters' activation
    # words, `[1]` s and the `[1]` code sum
    x0, x1, x2, x3 = _normed(v0, v1, v2, v3, w0, w1, w2, w3, 1.0 / tl.sqrt(ms + eps), X)
    s = _inv_amax(tl.max(_abs4(x0, x1, x2, x3)) + tl.zeros([1], dtype=tl.float32))  # [1]
    c0, c1, c2, c3, qt = _codes(x0, x1, x2, x3, s)
    return c0, c1, c2, c3, s, tl.sum(qt) + tl.zeros([1], dtype=tl.int32)


@triton.jit
def _normed_row(X, w0, w1, w2, w3, eps, Kq, K, BW: tl.constexpr):
    # RMSNorm(x) * w of the row X (model dtype) as four quarters, and their mean square
    x0 = _ld(X, 0, Kq, K, BW)
    x1 = _ld(X, 1, Kq, K, BW)
    x2 = _ld(X, 2, Kq, K, BW)
    x3 = _ld(X, 3, Kq, K, BW)
    a0, a1, a2, a3 = _normed(x0, x1, x2, x3, w0, w1, w2, w3, 1.0 / tl.sqrt(_ssq(x0, x1, x2, x3) / K + eps), X)
    return a0, a1, a2, a3, _ssq(a0, a1, a2, a3) / K


@triton.jit
def _rows(P, rn, nmask, Kq, BW: tl.constexpr):
    # the whole packed rows rn: `[BLOCK_N, BW]` int32 words (0 past the row)
    iw = tl.arange(0, BW)
    Kw = Kq // 4
    return tl.load(P + rn[:, None] * Kw + iw[None, :], mask=nmask[:, None] & (iw[None, :] < Kw), other=0)


@triton.jit
def _block1(N, BLOCK_N: tl.constexpr):
    # batch row 0 (`[1]` with its mask) and this program's output columns with their mask
    rows = tl.zeros([1], dtype=tl.int32)
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    return rows, rows < 1, rn, rn < N


@triton.jit
def _gemv(p, c0, c1, c2, c3, ASM: tl.constexpr):
    # `[BN, BW]` int32 products of the weight rows p and one row's activation words (for `_y_rows`)
    acc = tl.zeros(p.shape, dtype=tl.int32)
    return _mac4(acc, p, c0, c1, c2, c3, ASM)


@triton.jit
def _mlgru_in_kernel(
    X, WA, WI, WF, WG, PI, PF, PG, GI, GF, GG, LB, H, OUT, SH,
    N, D, Kq, eps_a, eps_i, eps_f, eps_g,
    HAS_LB: tl.constexpr, OFFICIAL: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, LATE: tl.constexpr,
    SILU: tl.constexpr, BLOCK_N: tl.constexpr, BW: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _block1(N, BLOCK_N)
    p_i = _rows(PI, rn, nmask, Kq, BW)  # [BN, BW] words, before the input is ready
    p_f = _rows(PF, rn, nmask, Kq, BW)
    p_g = _rows(PG, rn, nmask, Kq, BW)
    g_i, g_f, g_g = tl.load(GI), tl.load(GF), tl.load(GG)
    wa0, wa1, wa2, wa3 = _ld4(WA, Kq, D, BW)  # the norm weights, [BW, 4] quarters
    wi0, wi1, wi2, wi3 = _ld4(WI, Kq, D, BW)
    wf0, wf1, wf2, wf3 = _ld4(WF, Kq, D, BW)
    wg0, wg1, wg2, wg3 = _ld4(WG, Kq, D, BW)
    if not LATE:
        lb, hp = _mlgru_prev(LB, H, rows, rmask, rn, nmask, 0, HAS_LB)  # [1, BN], [1, BN]
    _wait_inputs(PDL)
    a0, a1, a2, a3, ms = _normed_row(X, wa0, wa1, wa2, wa3, eps_a, Kq, D, BW)
    # the three norms' codes with one block reduction for their scales and one for their code sums
    i0, i1, i2, i3 = _normed(a0, a1, a2, a3, wi0, wi1, wi2, wi3, 1.0 / tl.sqrt(ms + eps_i), X)
    f0, f1, f2, f3 = _normed(a0, a1, a2, a3, wf0, wf1, wf2, wf3, 1.0 / tl.sqrt(ms + eps_f), X)
    h0, h1, h2, h3 = _normed(a0, a1, a2, a3, wg0, wg1, wg2, wg3, 1.0 / tl.sqrt(ms + eps_g), X)
    m_i, m_f, m_g = tl.reduce(
        (_flat(_abs4(i0, i1, i2, i3)), _flat(_abs4(f0, f1, f2, f3)), _flat(_abs4(h0, h1, h2, h3))), 0, _max3
    )
    one = tl.zeros([1], dtype=tl.float32)
    s_i, s_f, s_g = _inv_amax(m_i + one), _inv_amax(m_f + one), _inv_amax(m_g + one)  # [1] each
    i0, i1, i2, i3, t_i = _codes(i0, i1, i2, i3, s_i)
    f0, f1, f2, f3, t_f = _codes(f0, f1, f2, f3, s_f)
    h0, h1, h2, h3, t_g = _codes(h0, h1, h2, h3, s_g)
    acc_i = _gemv(p_i, i0, i1, i2, i3, ASM)
    acc_f = _gemv(p_f, f0, f1, f2, f3, ASM)
    acc_g = _gemv(p_g, h0, h1, h2, h3, ASM)
    qs_i, qs_f, qs_g = tl.reduce((_flat(t_i), _flat(t_f), _flat(t_g)), 0, _add3)
    zero = tl.zeros([1], dtype=tl.int32)
    yi = _y_rows(acc_i, qs_i + zero, g_i, s_i, X)  # [1, BN]
    yf = _y_rows(acc_f, qs_f + zero, g_f, s_f, X)
    yg = _y_rows(acc_g, qs_g + zero, g_g, s_g, X)
    if LATE:
        lb, hp = _mlgru_prev(LB, H, rows, rmask, rn, nmask, 0, HAS_LB)
    _mlgru_store(yi, yf, yg, lb, hp, H, OUT, X, rows, rmask, rn, nmask, 0, 0, HAS_LB, OFFICIAL, SH, SILU)


@triton.jit
def _bitlinear_kernel(
    X, H, W1, W2, G, P, Y,
    N, K, Kq, eps1, eps2,
    MODE: tl.constexpr, RESIDUAL: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, LATE: tl.constexpr,
    BLOCK_N: tl.constexpr, BW: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _block1(N, BLOCK_N)
    p = _rows(P, rn, nmask, Kq, BW)
    g = tl.load(G)
    w0, w1, w2, w3 = _ld4(W2, Kq, K, BW)  # the norm weights, [BW, 4] quarters
    if MODE >= 1:
        u0, u1, u2, u3 = _ld4(W1, Kq, K, BW)
    if not LATE:
        res = _residual(Y, rows, rmask, rn, nmask, 0, RESIDUAL)  # [1, BN]
    _wait_inputs(PDL)
    v0 = _ld(X, 0, Kq, K, BW)
    v1 = _ld(X, 1, Kq, K, BW)
    v2 = _ld(X, 2, Kq, K, BW)
    v3 = _ld(X, 3, Kq, K, BW)
    if MODE >= 1:  # RMSNorm(x) * w1 in the model dtype
        r1 = 1.0 / tl.sqrt(_ssq(v0, v1, v2, v3) / K + eps1)
        v0, v1, v2, v3 = _normed(v0, v1, v2, v3, u0, u1, u2, u3, r1, X)
    if MODE == 2:  # times SiLU(h), h the state rounded to the model dtype
        v0 = _silu_gate(v0, _ld(H, 0, Kq, K, BW), X)
        v1 = _silu_gate(v1, _ld(H, 1, Kq, K, BW), X)
        v2 = _silu_gate(v2, _ld(H, 2, Kq, K, BW), X)
        v3 = _silu_gate(v3, _ld(H, 3, Kq, K, BW), X)
    if MODE == 3:  # the same, H holding SiLU(h) as the MLGRU kernel stored it ("silu")
        v0 = _rnd(v0 * _ld(H, 0, Kq, K, BW), X)
        v1 = _rnd(v1 * _ld(H, 1, Kq, K, BW), X)
        v2 = _rnd(v2 * _ld(H, 2, Kq, K, BW), X)
        v3 = _rnd(v3 * _ld(H, 3, Kq, K, BW), X)
    c0, c1, c2, c3, s, qs = _quantize(v0, v1, v2, v3, w0, w1, w2, w3, _ssq(v0, v1, v2, v3) / K, eps2, X)
    y = _y_rows(_gemv(p, c0, c1, c2, c3, ASM), qs, g, s, X)
    if LATE:
        res = _residual(Y, rows, rmask, rn, nmask, 0, RESIDUAL)
    _linear_store(y, res, Y, rows, rmask, rn, nmask, 0, RESIDUAL)


@triton.jit
def _glu_in_kernel(
    X, WM, W2, G, P, U,
    I, D, Kq, eps1, eps2,
    ASM: tl.constexpr, PDL: tl.constexpr, BLOCK_N: tl.constexpr, BW: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _block1(I, BLOCK_N)
    p_a = _rows(P, rn, nmask, Kq, BW)
    p_b = _rows(P, rn + I, nmask, Kq, BW)  # the up rows I..2I-1
    g = tl.load(G)
    wm0, wm1, wm2, wm3 = _ld4(WM, Kq, D, BW)  # the norm weights, [BW, 4] quarters
    w0, w1, w2, w3 = _ld4(W2, Kq, D, BW)
    _wait_inputs(PDL)
    a0, a1, a2, a3, ms = _normed_row(X, wm0, wm1, wm2, wm3, eps1, Kq, D, BW)
    c0, c1, c2, c3, s, qs = _quantize(a0, a1, a2, a3, w0, w1, w2, w3, ms, eps2, X)
    gate = _y_rows(_gemv(p_a, c0, c1, c2, c3, ASM), qs, g, s, X)
    up = _y_rows(_gemv(p_b, c0, c1, c2, c3, ASM), qs, g, s, X)
    _glu_out(gate, up, U, X, rows, rmask, rn, nmask, 0)


# Tiles of the fold kernels on CUDA, per kernel ("mlgru", "bitlinear", "glu"): (largest BW in words, largest N,
# BLOCK_N, num_warps), the first row that bounds both; any other call runs the prequant pair. A row bounds N
# so that the grid stays one wave: every program holds its weight rows whole in registers (sm_90, triton
# 3.6, no spills: 100-160 registers a thread for these rows, 255 for the MLGRU kernel at 512 words), and it
# bounds the redundant normalization work (the 32000-row head keeps the prequant pair). Chosen from those
# offline compiles; an H200 sweep of BLOCK_N x warps per kernel (BENCHMARKS.md, session 11, `decode_kernels.py
# --fold-tiles`) found no faster whole 1.3B step (440.5 µs; GLU 32x4 470, MLGRU 8x8 481, BitLinear 8x4 552).
FOLD_TILES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "mlgru": ((128, 1024, 8, 4), (128, 4096, 16, 8)),
    "bitlinear": ((128, 1024, 8, 4), (128, 4096, 16, 4), (256, 1024, 8, 8), (512, 2048, 16, 8)),
    "glu": ((128, 1024, 8, 4), (128, 16384, 16, 4)),
}


# Register caps (ptxas `.maxnreg`) of fold launches on CUDA, by (kernel, BW). A GEMV loads its weights before
# its wait only once its programs fit on an SM beside the running kernel's. The 1.3B down_proj (16 rows x 8
# warps, 512-word rows) follows the GLU input, up to three programs of 96 registers x 128 threads per SM;
# with `_y_rows` (session 14) it took 118 registers (120 x 256 allocated), which no longer fit beside three
# of them (64K registers an SM); capped at 104 it takes 96, with no spills (sm_90, triton 3.6), and the 1.3B
# step went from 456 to 371 µs (H200, session 15). A cap on kernels that need fewer registers made ptxas use
# more (48 -> 66), so the cap is per row length.
FOLD_MAX_REGS: dict[tuple[str, int], int] = {("bitlinear", 512): 104}


def _max_regs(kind: str, bw: int, cfg: _Launch) -> dict[str, int]:
    # the launch keyword for FOLD_MAX_REGS' cap, on the compiled (CUDA) path only
    cap = FOLD_MAX_REGS.get((kind, bw)) if cfg.asm else None
    return {"maxnreg": cap} if cap else {}


def fold_tile(kind: str, n: int, kq: int, cuda: bool) -> tuple[int, int, int] | None:
    """(BLOCK_N, num_warps, BW) of a fold launch of n outputs (per projection) whose packed rows have kq
    bytes, or None when no row of FOLD_TILES[kind] ("mlgru", "bitlinear" or "glu") takes it: then the
    prequant pair runs."""
    bw = max(4, triton.next_power_of_2(kq // 4))
    if not cuda:
        return (16, 1, bw) if bw <= 128 else None  # the interpreter: few programs, short rows only
    for max_bw, max_n, block_n, warps in FOLD_TILES[kind]:
        if bw <= max_bw and n <= max_n:
            return block_n, warps, bw
    return None


def mlgru_input_step(
    x: torch.Tensor,
    attn_norm: tuple[torch.Tensor, float],
    projs: tuple[TernaryProj, TernaryProj, TernaryProj],
    lower_bound: torch.Tensor | None,
    state: torch.Tensor,
    out: torch.Tensor,
    official: bool,
    cfg: _Launch,
    tile: tuple[int, int, int],
    silu_out: torch.Tensor | None = None,
) -> None:
    """`fused.mlgru_input_step` at batch 1 (arguments checked there) in one launch."""
    N, kq = projs[0].packed.shape
    block_n, warps, bw = tile
    i, f, g = projs
    _mlgru_in_kernel[(triton.cdiv(N, block_n),)](
        x, attn_norm[0], i.norm_weight, f.norm_weight, g.norm_weight,
        i.packed.view(torch.int32), f.packed.view(torch.int32), g.packed.view(torch.int32),
        i.scale, f.scale, g.scale, lower_bound if lower_bound is not None else state, state, out,
        silu_out if silu_out is not None else state,
        N, x.shape[1], kq, float(attn_norm[1]), float(i.eps), float(f.eps), float(g.eps),
        HAS_LB=lower_bound is not None, OFFICIAL=official, ASM=cfg.asm, PDL=cfg.pdl, LATE=cfg.late,
        SILU=silu_out is not None,
        BLOCK_N=block_n, BW=bw, **cfg._replace(warps=warps).launch_kwargs(), **_max_regs("mlgru", bw, cfg),
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
    tile: tuple[int, int, int],
) -> None:
    """`fused.bitlinear_step` at batch 1 (arguments checked and resolved to MODE, w1, eps1, h there)."""
    N, kq = proj.packed.shape
    block_n, warps, bw = tile
    _bitlinear_kernel[(triton.cdiv(N, block_n),)](
        x, h, w1, proj.norm_weight, proj.scale, proj.packed.view(torch.int32), out,
        N, x.shape[1], kq, float(eps1), float(proj.eps),
        MODE=mode, RESIDUAL=residual, ASM=cfg.asm, PDL=cfg.pdl, LATE=cfg.late, BLOCK_N=block_n, BW=bw,
        **cfg._replace(warps=warps).launch_kwargs(), **_max_regs("bitlinear", bw, cfg),
    )  # fmt: skip


def glu_input_step(
    x: torch.Tensor,
    mlp_norm: tuple[torch.Tensor, float],
    gate_proj: TernaryProj,
    out: torch.Tensor,
    cfg: _Launch,
    tile: tuple[int, int, int],
) -> None:
    """`fused.glu_input_step` at batch 1 (arguments checked there) in one launch."""
    inter, kq = gate_proj.packed.shape[0] // 2, gate_proj.packed.shape[1]
    block_n, warps, bw = tile
    _glu_in_kernel[(triton.cdiv(inter, block_n),)](
        x, mlp_norm[0], gate_proj.norm_weight, gate_proj.scale, gate_proj.packed.view(torch.int32), out,
        inter, x.shape[1], kq, float(mlp_norm[1]), float(gate_proj.eps),
        ASM=cfg.asm, PDL=cfg.pdl, BLOCK_N=block_n, BW=bw, **cfg._replace(warps=warps).launch_kwargs(),
        **_max_regs("glu", bw, cfg),
    )  # fmt: skip
