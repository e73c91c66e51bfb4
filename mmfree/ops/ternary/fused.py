"""Fused single-token decode kernels: RMSNorm + int8 quant prologue, packed ternary GEMV, layer epilogue.

Every kernel takes the raw `[B, K]` input of a BitLinear (or of the norm in front of it) and recomputes
the whole-row reductions in each program (the vectors are small; a redundant pass is cheaper than a
launch): mean square -> rstd, the normalized value rounded to the model dtype, its absmax -> the int8
scale `s = 127 / max|xn|`. The GEMV loop then streams a `[BLOCK_N, BLOCK_Q]` tile of the 2-bit layout
(`naive.py`), re-derives the int8 codes of each quarter of the input on the fly (round half to even,
as `torch.round`) and accumulates in int32 for a block of `ROWS` batch rows at once: at batch 1 on the CUDA
cores (codes w + 1 in {0, 1, 2} broadcast against the activations, the code sum subtracted after), from
`DOT_MIN_BATCH` rows on the int8 tensor cores (the `[BLOCK_Q, BLOCK_N]` tile unpacked into four {-1, 0, 1}
planes, each a `tl.dot` with its quarter of the `[ROWS >= 16, BLOCK_Q]` codes; padded rows are zero). With
the "dp4a" option the batch-1 GEMV reads the tile as 32-bit words and multiplies four codes per `dp4a`
(`fused_parts.py` has the three paths). All sums are exact, so every path gives the same bits. The epilogue
is the layer's element-wise math; every value the unfused path stores in the model dtype is rounded to it
here. With the "pdl" option each kernel loads its first weight tiles before it waits for the previous
kernel (programmatic dependent launch), so a step's launches overlap.

- `_mlgru_in_kernel`: `attn_norm`, then the i/f/g projections (each its own norm weight and scale) on the
  same columns, then the recurrence `h = f h_prev + SiLU(i)(1 - f)` in place in the fp32 state; writes
  `g` ("official") or `sigmoid(g) * h` ("paper").
- `_bitlinear_kernel`: one BitLinear whose input is the raw vector (MODE 0), a pre-normed one (MODE 1:
  final norm before the head) or the official output gate `RMSNorm(g) * SiLU(h)` (MODE 2); epilogue
  stores or adds to a residual stream in place.
- `_glu_in_kernel`: `mlp_norm`, then the gate/up projection (rows j and I + j), epilogue `SiLU(gate) * up`.

With the default options ("dp4a,prequant,pdl,fold,whole,pieces,silu,wsplit,wvec,wmac") a batch-1 call on
whole-word rows does not run these kernels: it runs one `fold.py` kernel where the row fits (the codes
derived in every program), else `prequant.py`'s pair (the codes once per row, then a pure word GEMV with the
same epilogues). These kernels serve the tensor-core path from `DOT_MIN_BATCH` rows and every other option
set.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

from mmfree.ops.backend import log_once
from mmfree.ops.ternary import fold, prequant
from mmfree.ops.ternary.fused_parts import (
    _acc0,
    _act_scale,
    _act_scale3,
    _block,
    _glu_out,
    _linear_out,
    _mean_sq,
    _mlgru_out,
    _proj,
    _proj2,
    _quarter,
    _tile,
    _wait_inputs,
    _y,
)


@triton.jit
def _mlgru_in_kernel(
    X, WA, PI, PF, PG, WI, WF, WG, GI, GF, GG, LB, H, OUT,
    B, D, N, Kq, stride_x, stride_h, stride_o, eps_a, eps_i, eps_f, eps_g,
    HAS_LB: tl.constexpr, OFFICIAL: tl.constexpr, PATH: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr,
    ROWS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _block(B, N, ROWS, BLOCK_N)
    p_i = _tile(PI, rn, nmask, 0, Kq, BLOCK_Q, PATH)  # the first weight tiles, before the inputs are ready
    p_f = _tile(PF, rn, nmask, 0, Kq, BLOCK_Q, PATH)
    p_g = _tile(PG, rn, nmask, 0, Kq, BLOCK_Q, PATH)
    _wait_inputs(PDL)
    one = tl.zeros([ROWS], dtype=tl.float32) + 1.0
    rq = tl.arange(0, BLOCK_Q)
    acc_i = _acc0(ROWS, BLOCK_N, BLOCK_Q, PATH)
    acc_f = _acc0(ROWS, BLOCK_N, BLOCK_Q, PATH)
    acc_g = _acc0(ROWS, BLOCK_N, BLOCK_Q, PATH)
    qsum_i = tl.zeros([ROWS], dtype=tl.int32)
    qsum_f = tl.zeros([ROWS], dtype=tl.int32)
    qsum_g = tl.zeros([ROWS], dtype=tl.int32)
    r1 = 1.0 / tl.sqrt(_mean_sq(X, H, WA, one, rows, rmask, D, stride_x, 0, 0, ROWS, BLOCK_K) + eps_a)
    ms = _mean_sq(X, H, WA, r1, rows, rmask, D, stride_x, 0, 1, ROWS, BLOCK_K)
    ri = 1.0 / tl.sqrt(ms + eps_i)
    rf = 1.0 / tl.sqrt(ms + eps_f)
    rg = 1.0 / tl.sqrt(ms + eps_g)
    si, sf, sg = _act_scale3(X, WA, r1, WI, ri, WF, rf, WG, rg, rows, rmask, D, stride_x, ROWS, BLOCK_K)
    for i0 in range(0, Kq, BLOCK_Q):
        ii = i0 + rq
        for j in tl.static_range(4):
            v, k, km = _quarter(X, H, WA, r1, rows, rmask, j, ii, Kq, D, stride_x, 0, 1)
            acc_i, qsum_i = _proj(acc_i, qsum_i, p_i, v, WI, ri, si, k, km, X, j, PATH, ASM)
            acc_f, qsum_f = _proj(acc_f, qsum_f, p_f, v, WF, rf, sf, k, km, X, j, PATH, ASM)
            acc_g, qsum_g = _proj(acc_g, qsum_g, p_g, v, WG, rg, sg, k, km, X, j, PATH, ASM)
        p_i = _tile(PI, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, PATH)
        p_f = _tile(PF, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, PATH)
        p_g = _tile(PG, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, PATH)
    yi = _y(acc_i, qsum_i, tl.load(GI), si, X, PATH)
    yf = _y(acc_f, qsum_f, tl.load(GF), sf, X, PATH)
    yg = _y(acc_g, qsum_g, tl.load(GG), sg, X, PATH)
    _mlgru_out(yi, yf, yg, LB, H, OUT, X, rows, rmask, rn, nmask, stride_h, stride_o, HAS_LB, OFFICIAL)


@triton.jit
def _bitlinear_kernel(
    X, W1, H, W2, G, P, Y,
    B, K, N, Kq, stride_x, stride_h, stride_y, eps1, eps2,
    MODE: tl.constexpr, RESIDUAL: tl.constexpr, PATH: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr,
    ROWS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _block(B, N, ROWS, BLOCK_N)
    p = _tile(P, rn, nmask, 0, Kq, BLOCK_Q, PATH)
    _wait_inputs(PDL)
    r1 = tl.zeros([ROWS], dtype=tl.float32) + 1.0
    rq = tl.arange(0, BLOCK_Q)
    acc = _acc0(ROWS, BLOCK_N, BLOCK_Q, PATH)
    qsum = tl.zeros([ROWS], dtype=tl.int32)
    if MODE >= 1:
        r1 = 1.0 / tl.sqrt(
            _mean_sq(X, H, W1, r1, rows, rmask, K, stride_x, stride_h, 0, ROWS, BLOCK_K) + eps1
        )
    r2 = 1.0 / tl.sqrt(_mean_sq(X, H, W1, r1, rows, rmask, K, stride_x, stride_h, MODE, ROWS, BLOCK_K) + eps2)
    s = _act_scale(X, H, W1, r1, W2, r2, rows, rmask, K, stride_x, stride_h, MODE, ROWS, BLOCK_K)
    for i0 in range(0, Kq, BLOCK_Q):
        ii = i0 + rq
        for j in tl.static_range(4):
            v, k, km = _quarter(X, H, W1, r1, rows, rmask, j, ii, Kq, K, stride_x, stride_h, MODE)
            acc, qsum = _proj(acc, qsum, p, v, W2, r2, s, k, km, X, j, PATH, ASM)
        p = _tile(P, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, PATH)
    _linear_out(_y(acc, qsum, tl.load(G), s, X, PATH), Y, rows, rmask, rn, nmask, stride_y, RESIDUAL)


@triton.jit
def _glu_in_kernel(
    X, WM, W2, G, P, U,
    B, D, I, Kq, stride_x, stride_u, eps1, eps2,
    PATH: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr,
    ROWS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    rows, rmask, rn, nmask = _block(B, I, ROWS, BLOCK_N)
    p_a = _tile(P, rn, nmask, 0, Kq, BLOCK_Q, PATH)
    p_b = _tile(P, rn + I, nmask, 0, Kq, BLOCK_Q, PATH)  # the up rows I..2I-1
    _wait_inputs(PDL)
    one = tl.zeros([ROWS], dtype=tl.float32) + 1.0
    rq = tl.arange(0, BLOCK_Q)
    acc_a = _acc0(ROWS, BLOCK_N, BLOCK_Q, PATH)
    acc_b = _acc0(ROWS, BLOCK_N, BLOCK_Q, PATH)
    qsum = tl.zeros([ROWS], dtype=tl.int32)
    r1 = 1.0 / tl.sqrt(_mean_sq(X, X, WM, one, rows, rmask, D, stride_x, 0, 0, ROWS, BLOCK_K) + eps1)
    r2 = 1.0 / tl.sqrt(_mean_sq(X, X, WM, r1, rows, rmask, D, stride_x, 0, 1, ROWS, BLOCK_K) + eps2)
    s = _act_scale(X, X, WM, r1, W2, r2, rows, rmask, D, stride_x, 0, 1, ROWS, BLOCK_K)
    for i0 in range(0, Kq, BLOCK_Q):
        ii = i0 + rq
        for j in tl.static_range(4):
            v, k, km = _quarter(X, X, WM, r1, rows, rmask, j, ii, Kq, D, stride_x, 0, 1)
            acc_a, acc_b, qsum = _proj2(acc_a, acc_b, qsum, p_a, p_b, v, W2, r2, s, k, km, X, j, PATH, ASM)
        p_a = _tile(P, rn, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, PATH)
        p_b = _tile(P, rn + I, nmask, i0 + BLOCK_Q, Kq, BLOCK_Q, PATH)
    g = tl.load(G)
    _glu_out(
        _y(acc_a, qsum, g, s, X, PATH),
        _y(acc_b, qsum, g, s, X, PATH),
        U,
        X,
        rows,
        rmask,
        rn,
        nmask,
        stride_u,
    )


class TernaryProj(NamedTuple):
    """One packed BitLinear as the fused kernels read it (no bias).

    packed `[N, ceil(K/4)]` uint8 (2-bit layout), norm_weight `[K]` (its input RMSNorm), eps (that norm's
    epsilon), scale 0-d fp32 tensor (the per-tensor weight scale g; read on the device, never synced).
    """

    packed: torch.Tensor
    norm_weight: torch.Tensor
    eps: float
    scale: torch.Tensor


# Batch size from which the kernels multiply on the int8 tensor cores (`tl.dot`) instead of the CUDA-core
# GEMV; batch 1 keeps the GEMV. Both paths accumulate the same int32 sums, so they agree bit for bit.
DOT_MIN_BATCH = 2

# Tiles of the tensor-core path on CUDA, (max N, BLOCK_N, BLOCK_Q, num_warps, num_stages): the first row with
# N <= max N. UNTUNED GUESSES pending an H200 run (benchmarks/decode.py at batch 2..16), chosen from sm_90
# register counts of offline compiles (triton 3.9): ROWS is the batch padded to a power of two in [16, 64]
# (16 is tl.dot's smallest M), the prologue tile is [ROWS, 1024 // ROWS] and BLOCK_Q = 32 codes per dot (one
# k-step of the int8 MMA); BLOCK_Q = 64 or a wide prologue tile made the three-projection MLGRU kernel spill.
# BLOCK_N stays small so that a 1024-wide layer still spreads over 64 programs (every program repeats the
# norm/quant prologue, whose cost does not depend on BLOCK_N).
DOT_TILES: tuple[tuple[int, int, int, int, int], ...] = (
    (4096, 16, 32, 4, 2),
    (2**62, 32, 32, 4, 2),
)

# Tiles of the batch-1 GEMV on CUDA, (max N, BLOCK_N, largest BLOCK_Q in bytes, num_warps): the first row with
# N <= max N. GEMV_TILES (the byte path) ran the 370M rows of BENCHMARKS.md' fused decode step; larger N is a
# guess. WORDS_TILES (the dp4a path) are the fastest whole steps of an H200 sweep (`benchmarks/
# decode_kernels.py --options dp4a --tiles ...`, 2026-11-28): 8 rows / 4 warps at 370M (0.68 ms per token;
# 16x4 0.72, 32x8 0.79, 64x8 0.90), 16 rows / 4 warps from 1.3B (1.11 ms; 8x4 1.12, 32x8 1.23) to 13B
# (5.41 ms; 32x8 5.58, 64x8 5.82, 8x4 6.73, 128x8 7.00). Wider tiles amortize the per-program norm/quant
# prologue (static SASS, `benchmarks/sass_counts.py`) but leave fewer programs to keep loads in flight.
GEMV_TILES: tuple[tuple[int, int, int, int], ...] = (
    (4096, 8, 256, 4),
    (2**62, 16, 256, 4),
)
WORDS_TILES: tuple[tuple[int, int, int, int], ...] = (
    (1024, 8, 256, 4),
    (2**62, 16, 256, 4),
)
# Tiles of the "prequant" GEMVs (same columns), chosen apart from WORDS_TILES (no prologue to amortize).
# H200, 2026-11-29, `benchmarks/decode_kernels.py --options dp4a+prequant+pdl --tiles ...`, whole step: 8x4
# / 16x4 beat 32x4, 16x8, 16x2, 8x2 and 16x4x512 at 1.3B (0.59 ms) and 13B (2.12 ms); at 370M 16x4x512 was
# 3% faster, within the run-to-run spread.
# The fifth field: the GEMV loads its epilogue operands after the K loop ("late"), not before its wait. H200,
# 2026-11-29 (session 9), `decode_kernels.py --options dp4a+prequant+pdl,dp4a+prequant+pdl+late`, whole
# step: early 0.411 / late 0.453 ms at 370M; early 0.654 / late 0.562 at 1.3B; early 2.331 / late 2.020 at 13B.
# The third row (session 18): over 8192 outputs (the 13B GLU input, 13824) 128-byte tiles, ten passes of the
# K loop instead of five. H200, parts `s18_glu13` / `s18_noq`, `decode_kernels.py --presets 13b --tiles
# default,8192:16x4x256+16x4x128`: 13B step 1553.6 -> 1519.2 and 1532.6 -> 1514.0 µs (GLU input 13.9-14.1 ->
# 13.5-13.6 µs); 8 rows at 256 bytes gave 1518.5. Session 15 had timed 16x4x128 for every width, where it
# made the MLGRU input slower.
PREQUANT_TILES: tuple[tuple[int, int, int, int, bool], ...] = (
    (1024, 8, 256, 4, False),
    (8192, 16, 256, 4, True),
    (2**62, 16, 128, 4, True),
)
# The "whole" option's tiles for the prequant BitLinear GEMV (o_proj, down_proj), (largest packed row in bytes
# as a power of two, BLOCK_N, num_warps): the first row that holds the call's row takes it whole in one tile
# (no K loop; the warps lie along K, so each thread's activation words serve all BLOCK_N rows); longer rows
# keep PREQUANT_TILES. H200, 2026-11-29 (session 13), `decode_kernels.py
# --presets 13b,2.7b --tiles default,4x4x4096,8x4x4096,8x8x4096,16x8x4096` (every kernel): 8 x 4 took the
# 13B down_proj from 13.4 to 10.0 µs and o_proj from 8.0 to 6.3, but the MLGRU input (three projections,
# three sets of activation words) from 12.6 to 15.0 and the GLU input from 14.5 to 16.9; so BitLinear only.
# Session 14, `decode_kernels.py --presets 13b --whole-tiles default,2048:8x4+4096:4x4`: rows over 2048 bytes
# (the 13B down_proj, 3456) at 4 x 4 (96 registers against 168, one wave) took the step from 1779.7 to 1750.7 µs.
# Session 15, `--whole-tiles default,512:16x4+2048:8x4+4096:4x4`: rows of up to 512 bytes (at 370M and 1.3B
# only the head's, 32000 outputs, which 8 x 4 spreads over 4000 programs) at 16 x 4: head 7.0 -> 4.6 µs at
# 370M, 7.3 -> 5.7-6.1 at 1.3B (the whole step moved within its run-to-run spread of a few µs).
WHOLE_TILES: tuple[tuple[int, int, int], ...] = ((512, 16, 4), (2048, 8, 4), (4096, 4, 4))

# Options of the batch-1 kernels (`MMFREE_FUSED_OPTIONS=dp4a,pdl`, "" or "none" for none, or this set;
# default "dp4a,prequant,pdl,fold,whole,pieces,silu,wsplit,wvec,wmac", the fastest measured on an H200). Each
# option's measurements are in docs/inference.md and BENCHMARKS.md:
# - "dp4a": the GEMV multiplies 32-bit words of 16 codes, four codes per `dp4a` (the packed row length,
#   K / 4 bytes, must be a multiple of 4);
# - "pdl": programmatic dependent launch (sm_90+; elsewhere dropped with one log line): each kernel loads
#   its first weight tiles while the previous one runs, then waits (griddepcontrol) for its activations;
# - "prequant": on the dp4a path, one kernel per call normalizes and quantizes each row once into int8 codes
#   (+ scale, code sum) and the GEMVs stream weight words against them (`prequant.py`; another sum order);
# - "early" / "late" (with "prequant"): every GEMV loads its epilogue operands before its wait / after its K
#   loop, instead of as PREQUANT_TILES' row says;
# - "qnext" (with "prequant"; a default until session 18): the GEMV loop loads each next tile's activation
#   words with its weight tile. Only the looped prequant GEMVs read it (at batch 1: the 2.7B and 13B MLGRU
#   and GLU inputs); with the 128-byte GLU tiles it was no faster (part `s18_noq`, without / with, whole
#   step µs: 13B 1507.9 / 1511.0 and 1494.5 / 1509.5, 2.7B 662.2 / 669.0 and 665.9 / 667.1), so off;
# - "fold" (with "prequant"): a call whose packed row fits `fold.FOLD_TILES` quantizes its input inside the
#   GEMV (one launch instead of two; `fold.py`; its row sums run in another order than prequant's);
# - "whole" (with "prequant"): the batch-1 BitLinear GEMVs that stay prequant pairs take each packed row in
#   one tile (WHOLE_TILES; 13B step 1.97 -> 1.80 ms, 2.7B 0.85 -> 0.76 ms);
# - "pieces" (with "prequant"): the quantization kernel holds a row whose width splits into two power-of-two
#   pieces of whole columns per thread (`prequant.quant_pieces`: 5120 = 512 x (8 + 2)) that way, instead of
#   padded to a power of two (another sum order; 13B step 1598 -> 1572 µs, 2.7B 683 -> 673 µs);
# - "wsplit" (with "whole"): a whole-row GEMV tile whose row is not a power of two words long is two
#   power-of-two tiles (`prequant.whole_split`: 320 words = 256 + 64 at 13B, where one tile pads to 512),
#   so no thread multiplies padded words after the wait (head 15.2 -> 13.1 µs at 13B, 10.0 -> 8.4 µs at
#   2.7B; o_proj within 0.2 µs);
# - "wvec" (with "whole"; session 18): a whole-row tile of 2-3 words a thread per row (13B o_proj and head:
#   256 + 64 words) loads them as consecutive words (`prequant._whole_tile`), so all warps lie along K and
#   the four activation vectors need no shared-memory conversion after the wait (static sm_90 SASS after
#   the wait: 13 -> 5 barriers; H200, part `s18_wvec13`: 13B step 1540.9 / 1541.2 -> 1534.8 / 1537.8 µs,
#   head 12.9 -> 12.1-12.3 µs);
# - "wmac" (with "fold"; session 18): the fold kernels' four dp4a of a weight word (and its shifts and
#   masks) as one inline-asm block a word (`fused_parts._MAC4_ASM`), so each word's accumulator takes the
#   register of the word it consumes: fewer registers, the same instructions and sums. H200, part
#   `s18_mac_small`: 1.3B step 355.0 / 355.3 -> 348.7 / 349.0 µs, 370M 252.1 / 251.7 -> 249.9 / 250.8; on
#   the 13B prequant kernels (part `s18_mac13`) it was slower (GLU input 13.7 -> 15.0 µs), so only fold;
# - "silu" (with "prequant", official gate form): the MLGRU kernel also stores SiLU(h) (fp32, one value per
#   output, computed once), which the output gate's quantization (MODE 3) reads instead of computing a
#   sigmoid of the whole row on one SM (or in every fold program); the same values, the same bits (13B
#   step 1566 -> 1542-1546 µs, output gate + o_proj 5.5-5.9 -> 5.0 µs; 1.3B and 370M within their spread).
# Only "prequant", "fold" and "pieces" change the bits (a code can flip at a rounding tie); the rest change
# speed.
# Removed after H200 runs found them slower or no faster (docs/inference.md, BENCHMARKS.md): "single",
# "splitk", "qtrigger", "l2fill", "csum", "pieces3", "wsplit3".
KNOWN_OPTIONS = frozenset(
    {
        "dp4a",
        "pdl",
        "prequant",
        "early",
        "late",
        "qnext",
        "fold",
        "whole",
        "pieces",
        "silu",
        "wsplit",
        "wvec",
        "wmac",
    }
)


def parse_options(text: str) -> frozenset[str]:
    """`"dp4a,pdl"` -> {"dp4a", "pdl"}; "" or "none" is no option; unknown names are an error."""
    names = frozenset(t.strip() for t in text.split(",") if t.strip() and t.strip() != "none")
    unknown = sorted(names - KNOWN_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown fused-kernel option(s) {unknown} in MMFREE_FUSED_OPTIONS; known: {sorted(KNOWN_OPTIONS)}"
        )
    if {"early", "late"} <= names:
        raise ValueError("fused-kernel options 'early' and 'late' exclude each other; give at most one")
    return names


OPTIONS: frozenset[str] = parse_options(
    os.environ.get("MMFREE_FUSED_OPTIONS", "dp4a,prequant,pdl,fold,whole,pieces,silu,wsplit,wvec,wmac")
)


class _Launch(NamedTuple):
    """One kernel launch's path and tiles."""

    path: int  # 0: byte broadcast on the CUDA cores, 1: dp4a on 32-bit words, 2: int8 tensor cores
    rows: int
    block_n: int
    block_q: int
    block_k: int
    warps: int
    stages: int = 3  # Triton's default on CUDA (what the GEMV path has always run with)
    asm: int = 0  # dp4a spelled out (0: interpreter), one instruction (1), an asm block a word (2: "wmac")
    pdl: bool = False  # programmatic dependent launch
    prequant: bool = False  # the codes from one quantization launch, then a pure GEMV (`prequant.py`)
    late: bool = False  # prequant GEMVs load their epilogue operands after the K loop (PREQUANT_TILES)
    qnext: bool = False  # prequant GEMVs load the next tile's activation words one tile ahead ("qnext")
    fold_tile: tuple[int, int, int] | None = None  # "fold" takes this call: (BLOCK_N, warps, BW), `fold.py`
    pieces: bool = False  # the quantization kernel's two-piece rows ("pieces", `prequant.quant_pieces`)
    wsplit: bool = False  # a whole-row BitLinear GEMV tile as two power-of-two tiles ("wsplit")
    wvec: bool = False  # whole-row tiles loaded so that their warps lie along K ("wvec")

    @property
    def dot(self) -> bool:
        return self.path == 2

    def launch_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"num_warps": self.warps, "num_stages": self.stages}
        if self.pdl:
            kw["launch_pdl"] = True
        return kw


def _pdl_ok(device: torch.device) -> bool:
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 9:
        return True
    log_once("fused-pdl", f"fused decode: option 'pdl' needs an sm_90+ GPU; running without it on {device}")
    return False


def _words_ok(packed: torch.Tensor) -> bool:
    # the dp4a path reads a `[N, K / 4]` byte layout as int32 words: whole words per row, aligned storage
    return packed.shape[1] % 4 == 0 and packed.storage_offset() % 4 == 0 and packed.data_ptr() % 4 == 0


def _config(B: int, N: int, K: int, packed: tuple[torch.Tensor, ...], kind: str = "") -> _Launch:
    """The path (tensor cores from DOT_MIN_BATCH rows; at batch 1 dp4a when OPTIONS has it and the layout
    allows) and tiles of a launch whose projections have N outputs each, K inputs and `packed` layouts.
    kind ("mlgru", "bitlinear" or "glu": `fold.FOLD_TILES`' keys) names the call, for the "fold" decision
    and the "whole" tile; without it neither applies."""
    device = packed[0].device
    cuda = device.type == "cuda"
    pdl = cuda and "pdl" in OPTIONS and _pdl_ok(device)
    if B >= DOT_MIN_BATCH:
        rows = min(64, max(16, triton.next_power_of_2(B)))
        if not cuda:
            return _Launch(2, rows, 32, 16, 64, 1)  # the interpreter: few programs, small dots
        bn, bq, warps, stages = next(t[1:] for t in DOT_TILES if t[0] >= N)
        return _Launch(2, rows, bn, bq, max(16, 1024 // rows), warps, stages, pdl=pdl)
    rows = min(16, triton.next_power_of_2(max(B, 1)))
    path = 1 if "dp4a" in OPTIONS and all(_words_ok(p) for p in packed) else 0
    kq = (K + 3) // 4
    pre = path == 1 and "prequant" in OPTIONS
    folds = pre and "fold" in OPTIONS and B == 1 and kind in fold.FOLD_TILES
    ftile = fold.fold_tile(kind, N, kq, cuda) if folds else None
    if not cuda:  # the interpreter: few programs
        return _Launch(
            path,
            rows,
            64,
            16,
            64,
            1,
            prequant=pre,
            late=pre and "late" in OPTIONS,
            qnext=pre and "qnext" in OPTIONS,
            fold_tile=ftile,
            pieces=pre and "pieces" in OPTIONS,
            wsplit=pre and "wsplit" in OPTIONS,
            wvec=pre and "wvec" in OPTIONS,
        )
    tiles = (PREQUANT_TILES if pre else WORDS_TILES) if path == 1 else GEMV_TILES
    bn, bq_max, warps, *late_row = next(t[1:] for t in tiles if t[0] >= N)
    whole = pre and "whole" in OPTIONS and kind == "bitlinear" and B == 1 and ftile is None  # a prequant pair
    wrow = next((t for t in WHOLE_TILES if triton.next_power_of_2(kq) <= t[0]), None) if whole else None
    if wrow is not None:  # the row in one tile, operands early
        bq_max, bn, warps = wrow
        late_row = [False]
    late = pre and ("late" in OPTIONS or (bool(late_row and late_row[0]) and "early" not in OPTIONS))
    bq = max(32, min(bq_max, triton.next_power_of_2(kq)) // rows)
    bk = max(64, min(triton.next_power_of_2(K), 4096 // rows))
    qnext = pre and "qnext" in OPTIONS
    return _Launch(
        path,
        rows,
        bn,
        bq,
        bk,
        warps,
        pdl=pdl,
        prequant=pre,
        late=late,
        qnext=qnext,
        fold_tile=ftile,
        asm=2 if "wmac" in OPTIONS and ftile is not None else 1,
        pieces=pre and "pieces" in OPTIONS,
        wsplit=pre and "wsplit" in OPTIONS,
        wvec=pre and "wvec" in OPTIONS,
    )


def silu_ready(B: int, mlgru: tuple[torch.Tensor, ...], o_proj: torch.Tensor) -> bool:
    """Whether a step of B rows can pass SiLU(h) from the MLGRU input call to the output gate's call ("silu"
    option): both run on the prequant path (their packed layouts `mlgru` (i, f, g) and `o_proj`)."""
    if "silu" not in OPTIONS or B == 0:
        return False
    width, hidden = mlgru[0].shape[0], o_proj.shape[0]  # d' (the gate's width), d
    gru = _config(B, width, hidden, mlgru, "mlgru")
    return gru.prequant and _config(B, hidden, width, (o_proj,), "bitlinear").prequant


def _packed_arg(packed: torch.Tensor, cfg: _Launch) -> torch.Tensor:
    # the dp4a path reads the `[N, K / 4]` byte layout as `[N, K / 16]` int32 words
    return packed.view(torch.int32) if cfg.path == 1 else packed


def _check_rows(name: str, t: torch.Tensor, B: int, width: int, dtype: torch.dtype | None, dev: torch.device):
    if t.ndim != 2 or t.shape[0] != B or t.shape[1] != width:
        raise ValueError(f"{name} must be [{B}, {width}]; got {tuple(t.shape)}")
    if dtype is not None and t.dtype != dtype:
        raise ValueError(f"{name} must be {dtype}; got {t.dtype}")
    if t.device != dev or t.stride(1) != 1:
        raise ValueError(
            f"{name} must be a row-contiguous tensor on {dev}; got {t.device}, strides {t.stride()}"
        )


def _check_proj(name: str, p: TernaryProj, K: int, dev: torch.device) -> int:
    """Validates a projection reading K features; returns its output count (packed rows)."""
    if p.packed.ndim != 2 or p.packed.dtype != torch.uint8 or p.packed.shape[1] != (K + 3) // 4:
        raise ValueError(
            f"{name}: packed weight must be [N, {(K + 3) // 4}] uint8 for {K} inputs; "
            f"got {tuple(p.packed.shape)} {p.packed.dtype}"
        )
    if p.norm_weight.shape != (K,) or p.scale.numel() != 1 or p.scale.dtype != torch.float32:
        raise ValueError(
            f"{name}: norm weight must be [{K}] and scale a one-element fp32 tensor; got "
            f"{tuple(p.norm_weight.shape)}, {tuple(p.scale.shape)} {p.scale.dtype}"
        )
    for t in (p.packed, p.norm_weight, p.scale):
        if t.device != dev or not t.is_contiguous():
            raise ValueError(f"{name}: every tensor must be contiguous on {dev}; got one on {t.device}")
    return p.packed.shape[0]


def mlgru_input_step(
    x: torch.Tensor,
    attn_norm: tuple[torch.Tensor, float],
    i_proj: TernaryProj,
    f_proj: TernaryProj,
    g_proj: TernaryProj,
    lower_bound: torch.Tensor | None,
    state: torch.Tensor,
    out: torch.Tensor,
    official: bool,
    scratch: dict[str, torch.Tensor] | None = None,
    silu_out: torch.Tensor | None = None,
) -> None:
    """One MLGRU input step for B rows in one launch: `a = RMSNorm(x)`, i/f/g = BitLinear(a), recurrence.

    Args:
        x: `[B, d]` residual stream (model dtype); attn_norm: (weight `[d]`, eps) of the block's norm.
        i_proj, f_proj, g_proj: the three projections d -> d'.
        lower_bound: `[d']` fp32 forget-gate lower bound or None.
        state: `[B, d']` fp32, updated in place to `h = f h + SiLU(i) (1 - f)`.
        out: `[B, d']` model dtype; receives g ("official") or sigmoid(g) * h ("paper").
        scratch: a dict the caller keeps across calls (`FusedDecodeStep`'s workspace): the "prequant" path
            keeps its code buffers there instead of allocating them at every call.
        silu_out: `[B, d']` fp32 or None: also receives SiLU(h) (h rounded to x's dtype), which
            `bitlinear_step(..., gate_silu=True)` takes in place of the state ("prequant" path only:
            `silu_ready`).
    """
    B, D = x.shape if x.ndim == 2 else (-1, -1)
    _check_rows("x", x, B, D, None, x.device)
    N = _check_proj("i_proj", i_proj, D, x.device)
    for name, p in (("f_proj", f_proj), ("g_proj", g_proj)):
        if _check_proj(name, p, D, x.device) != N:
            raise ValueError(f"{name} has {p.packed.shape[0]} outputs; i_proj has {N}")
    _check_rows("state", state, B, N, torch.float32, x.device)
    _check_rows("out", out, B, N, x.dtype, x.device)
    if attn_norm[0].shape != (D,):
        raise ValueError(f"attn_norm weight must be [{D}]; got {tuple(attn_norm[0].shape)}")
    if lower_bound is not None and (lower_bound.shape != (N,) or lower_bound.dtype != torch.float32):
        raise ValueError(
            f"lower_bound must be [{N}] fp32; got {tuple(lower_bound.shape)} {lower_bound.dtype}"
        )
    if silu_out is not None:
        _check_rows("silu_out", silu_out, B, N, torch.float32, x.device)
    if B == 0:
        return
    cfg = _config(B, N, D, (i_proj.packed, f_proj.packed, g_proj.packed), "mlgru")
    if silu_out is not None and not cfg.prequant:
        raise ValueError("mlgru_input_step: silu_out needs the prequant path (see silu_ready)")
    if cfg.prequant:
        prequant.mlgru_input_step(
            x, attn_norm, (i_proj, f_proj, g_proj), lower_bound, state, out, official, cfg, scratch, silu_out
        )
        return
    grid = (triton.cdiv(N, cfg.block_n), triton.cdiv(B, cfg.rows))
    _mlgru_in_kernel[grid](
        x, attn_norm[0], _packed_arg(i_proj.packed, cfg), _packed_arg(f_proj.packed, cfg),
        _packed_arg(g_proj.packed, cfg),
        i_proj.norm_weight, f_proj.norm_weight, g_proj.norm_weight, i_proj.scale, f_proj.scale, g_proj.scale,
        lower_bound if lower_bound is not None else state, state, out,
        B, D, N, i_proj.packed.shape[1], x.stride(0), state.stride(0), out.stride(0),
        float(attn_norm[1]), float(i_proj.eps), float(f_proj.eps), float(g_proj.eps),
        HAS_LB=lower_bound is not None, OFFICIAL=official, PATH=cfg.path, ASM=cfg.asm, PDL=cfg.pdl,
        ROWS=cfg.rows, BLOCK_N=cfg.block_n, BLOCK_Q=cfg.block_q, BLOCK_K=cfg.block_k, **cfg.launch_kwargs(),
    )  # fmt: skip


def bitlinear_step(
    x: torch.Tensor,
    proj: TernaryProj,
    out: torch.Tensor,
    residual: bool = False,
    pre_norm: tuple[torch.Tensor, float] | None = None,
    gate: tuple[torch.Tensor, float, torch.Tensor] | None = None,
    scratch: dict[str, torch.Tensor] | None = None,
    gate_silu: bool = False,
) -> None:
    """One packed BitLinear on B rows with its input transform and epilogue fused (one launch).

    Args:
        x: `[B, K]` model dtype: the layer input, or (with pre_norm) the input of an RMSNorm in front of
            it, or (with gate) the MLGRU gate g.
        proj: the projection K -> N.
        out: `[B, N]`: receives the product (rounded to x's dtype), or with residual=True has it added in
            place (the residual stream).
        pre_norm: (weight `[K]`, eps) of an RMSNorm applied first (the final norm before the head).
        gate: (g_norm weight `[K]`, eps, state `[B, K]` fp32): the input becomes the official output gate
            `RMSNorm(x) * SiLU(h)` with h the state rounded to x's dtype.
        scratch: a dict the caller keeps across calls (`FusedDecodeStep`'s workspace): the "prequant" path
            keeps its code buffers there instead of allocating them at every call.
        gate_silu: gate's third tensor is already SiLU(h) (`mlgru_input_step`'s silu_out), not the state.
    """
    if pre_norm is not None and gate is not None:
        raise ValueError("bitlinear_step: give pre_norm or gate, not both")
    B, K = x.shape if x.ndim == 2 else (-1, -1)
    _check_rows("x", x, B, K, None, x.device)
    N = _check_proj("proj", proj, K, x.device)
    _check_rows("out", out, B, N, x.dtype if residual else None, x.device)
    mode, w1, eps1, h = 0, proj.norm_weight, 0.0, x
    if pre_norm is not None:
        mode, w1, eps1 = 1, pre_norm[0], float(pre_norm[1])
    if gate is not None:
        mode, w1, eps1, h = 3 if gate_silu else 2, gate[0], float(gate[1]), gate[2]
        _check_rows("gate state", h, B, K, torch.float32, x.device)
    elif gate_silu:
        raise ValueError("bitlinear_step: gate_silu without a gate")
    if w1.shape != (K,):
        raise ValueError(f"bitlinear_step: the norm weight in front must be [{K}]; got {tuple(w1.shape)}")
    if B == 0:
        return
    cfg = _config(B, N, K, (proj.packed,), "bitlinear")
    if mode == 3 and not cfg.prequant:
        raise ValueError("bitlinear_step: gate_silu needs the prequant path (see silu_ready)")
    if cfg.prequant:
        prequant.bitlinear_step(x, h, w1, eps1, mode, proj, out, residual, cfg, scratch)
        return
    grid = (triton.cdiv(N, cfg.block_n), triton.cdiv(B, cfg.rows))
    _bitlinear_kernel[grid](
        x, w1, h, proj.norm_weight, proj.scale, _packed_arg(proj.packed, cfg), out,
        B, K, N, proj.packed.shape[1], x.stride(0), h.stride(0), out.stride(0), eps1, float(proj.eps),
        MODE=mode, RESIDUAL=residual, PATH=cfg.path, ASM=cfg.asm, PDL=cfg.pdl,
        ROWS=cfg.rows, BLOCK_N=cfg.block_n, BLOCK_Q=cfg.block_q, BLOCK_K=cfg.block_k, **cfg.launch_kwargs(),
    )  # fmt: skip


def glu_input_step(
    x: torch.Tensor,
    mlp_norm: tuple[torch.Tensor, float],
    gate_proj: TernaryProj,
    out: torch.Tensor,
    scratch: dict[str, torch.Tensor] | None = None,
) -> None:
    """GLU gate/up step for B rows in one launch: `m = RMSNorm(x)`, `[gate, up] = BitLinear(m)`.

    Args:
        x: `[B, d]` residual stream (model dtype); mlp_norm: (weight `[d]`, eps) of the block's norm.
        gate_proj: the fused projection d -> 2I (rows 0..I-1 gate, I..2I-1 up).
        out: `[B, I]` model dtype; receives `SiLU(gate) * up`.
        scratch: a dict the caller keeps across calls (`FusedDecodeStep`'s workspace): the "prequant" path
            keeps its code buffers there instead of allocating them at every call.
    """
    B, D = x.shape if x.ndim == 2 else (-1, -1)
    _check_rows("x", x, B, D, None, x.device)
    N2 = _check_proj("gate_proj", gate_proj, D, x.device)
    if N2 % 2:
        raise ValueError(f"gate_proj must have an even output count (gate and up); got {N2}")
    _check_rows("out", out, B, N2 // 2, x.dtype, x.device)
    if mlp_norm[0].shape != (D,):
        raise ValueError(f"mlp_norm weight must be [{D}]; got {tuple(mlp_norm[0].shape)}")
    if B == 0:
        return
    inter = N2 // 2
    cfg = _config(B, inter, D, (gate_proj.packed,), "glu")
    if cfg.prequant:
        prequant.glu_input_step(x, mlp_norm, gate_proj, out, cfg, scratch)
        return
    grid = (triton.cdiv(inter, cfg.block_n), triton.cdiv(B, cfg.rows))
    _glu_in_kernel[grid](
        x, mlp_norm[0], gate_proj.norm_weight, gate_proj.scale, _packed_arg(gate_proj.packed, cfg), out,
        B, D, inter, gate_proj.packed.shape[1], x.stride(0), out.stride(0),
        float(mlp_norm[1]), float(gate_proj.eps), PATH=cfg.path, ASM=cfg.asm, PDL=cfg.pdl,
        ROWS=cfg.rows, BLOCK_N=cfg.block_n, BLOCK_Q=cfg.block_q, BLOCK_K=cfg.block_k, **cfg.launch_kwargs(),
    )  # fmt: skip
