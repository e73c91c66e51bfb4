"""Single-pass tiled MLGRU kernels (training form): one program per (batch row, D-block) strip.

Each program walks the time axis in tiles of CT steps by BD adjacent columns, held as `[S, CT / S, BD]`:
S segments of consecutive steps, each on its own warps (`_steps`). It computes the gates of the whole
tile, solves the affine recurrence inside each segment with `tl.associative_scan` along time (maps
`x -> a x + b` compose as `(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)`), composes the segments' maps across
warps (`_solve`), applies the carry from the previous tile and stores the tile; the carry is the state at
the tile's end. The loads of the next A tiles are issued before the current tile is solved (`AHEAD`, 0-2;
by default 1, and 0 in a backward of several segments). When whole tiles cover the input (`EVEN`), no
access carries a mask.
Inputs are read once: forward reads f_raw, c_raw and writes h; backward reads f_raw, c_raw, dh and the saved
h (the rows shifted by one step, `a_{t+1}` and `h_{t-1}`, come from the same lines, mostly from cache) and
writes df_raw, dc_raw. The backward walks the tiles from the end, scanning
`dh_t = dout_t + a_{t+1} dh_{t+1}` back in time. Gate math matches `mmfree.ops.mlgru.triton._gates`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

# (most (batch row, 32-column) strips, (CT steps, BD columns, num_warps, V, S)): the first entry covering
# the call's strips is its tile. V sets the columns a thread holds (`_strip`): 1 leaves them to the compiler
# (16-byte runs of a row, a tile's rows spread over lanes, the scan shuffling between them: 60 SASS
# instructions per element forward and 178 backward with triton 3.6, bound by instruction issue); 0 one
# column, 2 two adjacent columns per thread, the scan inside the thread. S segments put a tile's steps on S
# warps at once (S times the warps in flight for the same strips), at one exchange through shared memory
# per tile. A is the tiles whose loads are in flight ahead of the one being scanned (`tile_constexprs`). The
# fastest of `benchmarks/kernels.py --sweep --sweep-fast-only --sweep-shapes 8x1024,32x1024,8x2048,16x2048` on
# an H200 (T=2048, bf16; 2026-11-29 session 9, BENCHMARKS.md), as a share of the copy bandwidth (forward,
# backward): 370M at batch 8 0.56x, 0.55x; 1.3B at batch 8 0.73x, 0.62x; 370M at batch 32 0.77x, 0.83x; 1.3B
# at batch 16 0.78x, 0.84x. At batch 8 a strip's 16 tiles run one after another on too few warps to hide
# the loads' latency (256 strips of 32 columns for 132 SMs).
Tile = tuple[int, ...]  # (CT, BD, num_warps, V[, S[, A]])
FWD_TILES: tuple[tuple[int, Tile], ...] = (
    (256, (128, 32, 8, 0, 8)),  # 370M at batch 8
    (2**62, (128, 64, 4, 2, 4)),  # 1.3B at batch 8, 370M at 32, 1.3B at 16
)
BWD_TILES: tuple[tuple[int, Tile], ...] = (
    (256, (64, 32, 4, 0, 4, 2)),
    (512, (64, 64, 4, 2, 4)),
    (2**62, (32, 128, 4, 2, 2, 1)),
)
# the gates' sigmoids as two bare MUFU instructions on CUDA (`_sigmoid`): 4 instructions instead of about
# 11; the fastest tiles of the sweep all use it (the backward 1.5-4x faster: without it, registers spill)
FAST_SIGMOID = True
# a tile for every call instead of the tables (tests and sweeps set these)
FWD_CONFIG: Tile | None = None
BWD_CONFIG: Tile | None = None


def parse_tiles(spec: str) -> tuple[Tile, Tile]:
    """The forward and backward tiles of 'CT,BD,W,V[,S[,A]];CT,BD,W,V[,S[,A]]' (as `benchmarks/kernels.py
    --save-best` writes; S, the segments per tile, defaults to 1, A, the tiles loaded ahead, as in
    `tile_constexprs`)."""
    try:
        fwd, bwd = (tuple(int(v) for v in part.split(",")) for part in spec.split(";"))
        for tile in (fwd, bwd):
            bad_s = len(tile) > 4 and (tile[4] < 1 or tile[0] % tile[4])
            if not 4 <= len(tile) <= 6 or min(tile) < 0 or bad_s or (len(tile) == 6 and tile[5] > 2):
                raise ValueError
    except ValueError:
        raise ValueError(
            f"MLGRU tiles {spec!r}: give 'CT,BD,W,V[,S[,A]];CT,BD,W,V[,S[,A]]' (forward;backward, S dividing CT, "
            "A in 0-2), e.g. '32,32,1,0;32,32,4,0,4'"
        ) from None
    return fwd, bwd


def fwd_config(B: int, D: int) -> Tile:
    """The forward tile (CT, BD, num_warps, V[, S[, A]]) of a `[B, T, D]` call."""
    return FWD_CONFIG or _from_table(FWD_TILES, B, D)


def bwd_config(B: int, D: int) -> Tile:
    """The backward tile (CT, BD, num_warps, V[, S[, A]]) of a `[B, T, D]` call."""
    return BWD_CONFIG or _from_table(BWD_TILES, B, D)


def _from_table(table: tuple[tuple[int, Tile], ...], B: int, D: int) -> Tile:
    strips = B * triton.cdiv(D, 32)
    return next(cfg for most, cfg in table if strips <= most)


@triton.jit
def _compose(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _sigmoid(x, FAST: tl.constexpr):
    # 1 / (1 + exp(-x)) in fp32. FAST (CUDA only): the two MUFU instructions alone, `ex2.approx.ftz` and
    # `rcp.approx.ftz`, 4 instructions instead of about 11: `tl.exp` and `/` lower to the non-ftz `ex2` and
    # `div.full`, which wrap each MUFU in range checks and rescaling for subnormals, and the scans are bound
    # by instruction issue (`benchmarks/sass_counts.py --scan`). Results differ only where a subnormal
    # enters or leaves (flushed to 0; sigmoid itself never is one). Elsewhere (the interpreter has no
    # inline assembly) the plain formula.
    if FAST:
        e = tl.inline_asm_elementwise(
            "ex2.approx.ftz.f32 $0, $1;",
            "=f,f",
            [x * -1.4426950408889634],
            dtype=tl.float32,
            is_pure=True,
            pack=1,
        )
        return tl.inline_asm_elementwise(
            "rcp.approx.ftz.f32 $0, $1;", "=f,f", [1.0 + e], dtype=tl.float32, is_pure=True, pack=1
        )
    else:
        return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tile_gates(fr, c, lb, keep, m, HAS_LB: tl.constexpr, FAST: tl.constexpr):
    # fp32 [S, R, BD] pre-activations -> (a, i, sig_f, f, silu_c, sig_c); keep, m broadcast [S, R, 1] or scalars
    sig = _sigmoid(fr, FAST)
    if HAS_LB:
        f = lb + (1.0 - lb) * sig
    else:
        f = sig
    sig_c = _sigmoid(c, FAST)
    silu = c * sig_c
    i = silu * (1.0 - f) * m
    return f * keep, i, sig, f, silu, sig_c


@triton.jit
def _gate_grads(dh, h_prev, keep, m, lb, c, sig, f, silu, sig_c, HAS_LB: tl.constexpr):
    # a step's gradients from dh (and the gates of `_tile_gates`): df (through f; the lower bound's
    # gradient is df (1 - sig)), df_raw (through the sigmoid and the bound) and dc_raw (through SiLU)
    df = dh * (h_prev * keep - silu * m)
    dc = dh * (1.0 - f) * m * sig_c * (1.0 + c * (1.0 - sig_c))
    ds = sig * (1.0 - sig)
    if HAS_LB:
        dfr = df * (1.0 - lb) * ds
    else:
        dfr = df * ds
    return df, dfr, dc


@triton.jit
def _strip(pid_d, Z, D: tl.constexpr, BD: tl.constexpr, VEC: tl.constexpr):
    # a strip's BD columns `[BD]` and their mask. Contiguous, aligned columns let the compiler give each
    # thread 16-byte runs of one row (VEC = 0), so a tile's rows spread over lanes and the scan along time
    # shuffles between them (8 shuffles per element). VEC > 0 adds VEC * Z, Z a runtime 0 the compiler knows
    # nothing of (not specialized): the columns stay contiguous, so threads still run along them, but no
    # access is provably aligned beyond VEC elements. So each thread holds VEC adjacent columns (2 VEC-byte
    # accesses) and the steps of its segment: the scan runs inside the thread (about half the instructions
    # per element: `benchmarks/sass_counts.py --scan`).
    cols = pid_d * BD + tl.arange(0, BD)
    if VEC > 0:
        cols = cols + Z * VEC
    return cols, cols < D


@triton.jit
def _steps(CT: tl.constexpr, S: tl.constexpr, D: tl.constexpr, BACK: tl.constexpr):
    # A tile's steps as `[S, CT / S]`: segment s holds steps s * CT / S + r (BACK: CT - 1 - that, so the scans
    # run forward along the tile's axes and back in time). The compiler orders a tile's axes by contiguity,
    # ties by index: after the columns come the segments, so with VEC columns per thread (`_strip`) and
    # num_warps = S * BD / (32 VEC), the segments run on different warps and each thread holds the CT / S
    # steps of its segment: a strip's time axis on S warps at once, one exchange per tile.
    # -> (steps `[S, R]`, the segments' first rows' offsets `[S, 1, 1]`, the row offsets inside a segment
    # `[1, R, 1]`, constants, so that a load takes them as immediates: a thread adds its segment's offset
    # to its pointers once, not per row)
    R: tl.constexpr = CT // S
    seg = tl.arange(0, S) * R
    r = tl.arange(0, R)
    if BACK:
        seg = (CT - 1) - seg
        r = -r
    return seg[:, None] + r[None, :], (seg * D)[:, None, None], (r * D)[None, :, None]


@triton.jit
def _fwd_loads(F, C, t0, T, rows, roff, dmask, CT: tl.constexpr, D: tl.constexpr, EVEN: tl.constexpr):
    # f_raw and c_raw `[S, R, BD]` of the tile at step t0 (F, C point at a batch row's step 0, each thread's
    # segment and columns; the step offset is added to the pointers first, so the row offsets stay
    # immediates). Past the end: when EVEN the last tile again (in bounds, never used), else masked.
    if EVEN:
        t0 = tl.minimum(t0, T - CT)
        return tl.load((F + t0 * D) + roff), tl.load((C + t0 * D) + roff)
    m = ((t0 + rows) < T)[:, :, None] & dmask[None, None, :]
    return tl.load((F + t0 * D) + roff, mask=m, other=0.0), tl.load((C + t0 * D) + roff, mask=m, other=0.0)


@triton.jit
def _at(x, AXIS: tl.constexpr, AT):
    # x's entries at index AT of AXIS (1 of a 3-d tile, 0 of a 2-d one; a select and a sum, inside a thread
    # as that axis is), the axis dropped
    if AXIS == 1:
        idx = tl.arange(0, x.shape[1])[None, :, None]
    else:
        idx = tl.arange(0, x.shape[0])[:, None]
    return tl.sum(tl.where(idx == AT, x, 0.0), axis=AXIS)


@triton.jit
def _solve(pa, pb, h, S: tl.constexpr):
    # pa, pb `[S, R, BD]`: each step's map from the state at its segment's start (in scan order);
    # h `[BD]`: the state at the tile's start. -> every step's state `[S, R, BD]` and the
    # state at the tile's end `[BD]`.
    R: tl.constexpr = pa.shape[1]
    if S == 1:
        hh = pa * h[None, None, :] + pb
        return hh, _at(_at(hh, 1, R - 1), 0, 0)
    # the segments' own maps, composed across segments (warps) into maps from the tile's start
    qa, qb = tl.associative_scan((_at(pa, 1, R - 1), _at(pb, 1, R - 1)), 0, _compose)
    hs = qa * h[None, :] + qb  # [S, BD] the state at each segment's end
    s = tl.arange(0, S)
    # the state at segment s's start: h for the first, else the end of segment s - 1
    shifted = tl.sum(tl.where((s[None, :] == s[:, None] - 1)[:, :, None], hs[None, :, :], 0.0), axis=1)
    hin = tl.where((s == 0)[:, None], h[None, :], shifted)  # [S, BD]
    return pa * hin[:, None, :] + pb, _at(hs, 0, S - 1)


@triton.jit(do_not_specialize=["Z"])
def _fwd_tiled_kernel(
    F,
    C,
    LB,
    H0,
    RESET,
    MASK,
    H,
    FINAL,
    T,
    Z,
    D: tl.constexpr,
    CT: tl.constexpr,
    BD: tl.constexpr,
    VEC: tl.constexpr,
    S: tl.constexpr,
    AHEAD: tl.constexpr,
    EVEN: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
    FAST: tl.constexpr,
):
    # EVEN: T % CT == 0 and D % BD == 0, so no access needs a mask
    pid_d, b = tl.program_id(0), tl.program_id(1)
    cols, dmask = _strip(pid_d, Z, D, BD, VEC)  # [BD]
    rows, soff, roff = _steps(CT, S, D, False)  # [S, R], [S, 1, 1], [1, R, 1]
    base = b.to(tl.int64) * T * D
    c3 = soff + cols[None, None, :]  # [S, 1, BD]
    fp = F + base + c3  # [S, 1, BD] pointers to the segments' first rows at step 0
    cp = C + base + c3
    hp = H + base + c3
    lb = 0.0
    if HAS_LB:
        lb = tl.load(LB + cols, mask=dmask, other=0.0).to(tl.float32)[None, None, :]
    if HAS_H0:
        h = tl.load(H0 + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BD], dtype=tl.float32)
    # [S, R, BD] tiles: the next AHEAD ones load while this one is solved
    if AHEAD > 0:
        n1 = _fwd_loads(fp, cp, 0, T, rows, roff, dmask, CT, D, EVEN)
    if AHEAD > 1:
        n2 = _fwd_loads(fp, cp, CT, T, rows, roff, dmask, CT, D, EVEN)
    for t0 in range(0, T, CT):
        t = t0 + rows  # [S, R]
        tmask = t < T
        if AHEAD == 0:
            f_cur, c_cur = _fwd_loads(fp, cp, t0, T, rows, roff, dmask, CT, D, EVEN)
        elif AHEAD == 1:
            f_cur, c_cur = n1
            n1 = _fwd_loads(fp, cp, t0 + CT, T, rows, roff, dmask, CT, D, EVEN)
        else:
            f_cur, c_cur = n1
            n1 = n2
            n2 = _fwd_loads(fp, cp, t0 + 2 * CT, T, rows, roff, dmask, CT, D, EVEN)
        keep = 1.0
        if HAS_RESET:
            keep = 1.0 - tl.load(RESET + b * T + t, mask=tmask, other=0).to(tl.float32)[:, :, None]
        m = 1.0
        if HAS_MASK:
            m = tl.load(MASK + b * T + t, mask=tmask, other=1.0).to(tl.float32)[:, :, None]
        a, i, _, _, _, _ = _tile_gates(f_cur.to(tl.float32), c_cur.to(tl.float32), lb, keep, m, HAS_LB, FAST)
        if not EVEN:
            # steps past T are identity maps, so the last row carries the state at T - 1
            a = tl.where(tmask[:, :, None], a, 1.0)
            i = tl.where(tmask[:, :, None], i, 0.0)
        pa, pb = tl.associative_scan((a, i), 1, _compose)  # inside each segment
        hh, h = _solve(pa, pb, h, S)  # [S, R, BD], [BD]
        smask = None if EVEN else tmask[:, :, None] & dmask[None, None, :]
        tl.store((hp + t0 * D) + roff, hh.to(H.dtype.element_ty), mask=smask)
    tl.store(FINAL + b * D + cols, h, mask=dmask)


@triton.jit
def _bwd_loads(F, C, DO, H, t0, T, rows, roff, dmask, D: tl.constexpr, EVEN: tl.constexpr):
    # the backward's inputs of the tile at step t0 (pointers at a batch row's step 0; the step offset is
    # added to them first, so the row offsets stay immediates): f_raw, c_raw and dh at its steps t, f_raw at
    # t + 1 and h at t - 1, each `[S, R, BD]`; what lies outside [0, T) reads 0 (when EVEN only the shifted
    # rows can)
    t = (t0 + rows)[:, :, None]  # [S, R, 1]
    inside = None if EVEN else (t >= 0) & (t < T) & dmask[None, None, :]
    zero = None if EVEN else 0.0
    off = t0 * D
    fr = tl.load((F + off) + roff, mask=inside, other=zero)
    c = tl.load((C + off) + roff, mask=inside, other=zero)
    do = tl.load((DO + off) + roff, mask=inside, other=zero)
    fr_next = tl.load((F + (off + D)) + roff, mask=(t >= -1) & (t + 1 < T) & dmask[None, None, :], other=0.0)
    h_prev = tl.load((H + (off - D)) + roff, mask=(t >= 1) & (t < T) & dmask[None, None, :], other=0.0)
    return fr, c, do, fr_next, h_prev


@triton.jit
def _before(t0, EVEN: tl.constexpr):
    # the step of a backward prefetch K tiles before the current one (t0 = current - K CT): when EVEN, step
    # 0's tile again once past the start (in bounds, never used); else t0, whose rows the masks drop
    if EVEN:
        return tl.maximum(t0, 0)
    return t0


@triton.jit(do_not_specialize=["Z"])
def _bwd_tiled_kernel(
    F,
    C,
    LB,
    H0,
    RESET,
    MASK,
    H,
    DO,
    DFINAL,
    DF,
    DC,
    DH0,
    DLB,
    T,
    Z,
    D: tl.constexpr,
    CT: tl.constexpr,
    BD: tl.constexpr,
    VEC: tl.constexpr,
    S: tl.constexpr,
    AHEAD: tl.constexpr,
    EVEN: tl.constexpr,
    HAS_DFINAL: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
    FAST: tl.constexpr,
):
    pid_d, b = tl.program_id(0), tl.program_id(1)
    cols, dmask = _strip(pid_d, Z, D, BD, VEC)  # [BD]
    # the tile's steps in reverse: the scans run forward along the tile's axes, back in time (triton 3.6
    # lowers a reverse scan inside a thread with 20 lane shuffles per element)
    rows, soff, roff = _steps(CT, S, D, True)  # [S, R], [S, 1, 1], [1, R, 1]
    base = b.to(tl.int64) * T * D
    n_tiles = tl.cdiv(T, CT)
    c3 = soff + cols[None, None, :]  # [S, 1, BD]
    # [S, 1, BD] pointers to the segments' first rows at step 0 (tiles are walked backwards)
    fp = F + base + c3
    cp = C + base + c3
    hp = H + base + c3
    dop = DO + base + c3
    dfp = DF + base + c3
    dcp = DC + base + c3
    lb = 0.0
    lb_row = 0.0
    if HAS_LB:
        lb_row = tl.load(LB + cols, mask=dmask, other=0.0).to(tl.float32)
        lb = lb_row[None, None, :]
    h0 = 0.0
    if HAS_H0:
        h0 = tl.load(H0 + b * D + cols, mask=dmask, other=0.0).to(tl.float32)[None, None, :]
    # carry = dh at the first step after the tile ("dh_T" is dfinal, entering through a_T := 1)
    if HAS_DFINAL:
        carry = tl.load(DFINAL + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        carry = tl.zeros([BD], dtype=tl.float32)
    dlb = tl.zeros([S, BD], dtype=tl.float32)  # the lower bound's gradient, summed over each tile's segments
    # the AHEAD tiles before in time load while this one is solved
    t_last = (n_tiles - 1) * CT
    if AHEAD > 0:
        n1 = _bwd_loads(fp, cp, dop, hp, t_last, T, rows, roff, dmask, D, EVEN)
    if AHEAD > 1:
        n2 = _bwd_loads(fp, cp, dop, hp, _before(t_last - CT, EVEN), T, rows, roff, dmask, D, EVEN)
    for k in range(0, n_tiles):
        t0 = t_last - k * CT
        t = t0 + rows  # [S, R]
        t3 = t[:, :, None]
        tmask = t < T
        if AHEAD == 0:
            fr, c, do, fr_next, h_prev = _bwd_loads(fp, cp, dop, hp, t0, T, rows, roff, dmask, D, EVEN)
        elif AHEAD == 1:
            fr, c, do, fr_next, h_prev = n1
            n1 = _bwd_loads(fp, cp, dop, hp, _before(t0 - CT, EVEN), T, rows, roff, dmask, D, EVEN)
        else:
            fr, c, do, fr_next, h_prev = n1
            n1 = n2
            n2 = _bwd_loads(fp, cp, dop, hp, _before(t0 - 2 * CT, EVEN), T, rows, roff, dmask, D, EVEN)
        fr, c, do = fr.to(tl.float32), c.to(tl.float32), do.to(tl.float32)
        h_prev = h_prev.to(tl.float32)
        if HAS_H0:
            h_prev = tl.where(t3 == 0, h0, h_prev)
        keep = 1.0
        keep_next = 1.0
        if HAS_RESET:
            keep = 1.0 - tl.load(RESET + b * T + t, mask=tmask, other=0).to(tl.float32)[:, :, None]
            keep_next = (
                1.0 - tl.load(RESET + b * T + t + 1, mask=(t + 1) < T, other=0).to(tl.float32)[:, :, None]
            )
        m = 1.0
        if HAS_MASK:
            m = tl.load(MASK + b * T + t, mask=tmask, other=1.0).to(tl.float32)[:, :, None]
        _, _, sig, f, silu, sig_c = _tile_gates(fr, c, lb, keep, m, HAS_LB, FAST)
        sig_n = _sigmoid(fr_next.to(tl.float32), FAST)
        if HAS_LB:
            a_next = (lb + (1.0 - lb) * sig_n) * keep_next
        else:
            a_next = sig_n * keep_next
        # x_t = a_{t+1} (1 past the end: the carry is dfinal), y_t = dout_t; rows past T pass the carry on
        x = tl.where(t3 + 1 < T, a_next, 1.0)
        y = do
        if not EVEN:
            y = tl.where(t3 < T, do, 0.0)
        px, py = tl.associative_scan((x, y), 1, _compose)  # inside each segment, back in time
        dh, carry = _solve(px, py, carry, S)  # [S, R, BD], [BD]
        df, dfr, dc = _gate_grads(dh, h_prev, keep, m, lb, c, sig, f, silu, sig_c, HAS_LB)
        if HAS_LB:
            if EVEN:
                dlb += tl.sum(df * (1.0 - sig), axis=1)
            else:
                dlb += tl.sum(tl.where(t3 < T, df * (1.0 - sig), 0.0), axis=1)
        smask = None if EVEN else (t3 < T) & dmask[None, None, :]
        tl.store((dfp + t0 * D) + roff, dfr.to(DF.dtype.element_ty), mask=smask)
        tl.store((dcp + t0 * D) + roff, dc.to(DC.dtype.element_ty), mask=smask)
    # dh0 = a_0 dh_0
    fr0 = tl.load(F + base + cols, mask=dmask, other=0.0).to(tl.float32)
    sig0 = _sigmoid(fr0, FAST)
    a0 = sig0
    if HAS_LB:
        a0 = lb_row + (1.0 - lb_row) * sig0
    if HAS_RESET:
        a0 = a0 * (1.0 - tl.load(RESET + b * T).to(tl.float32))
    tl.store(DH0 + b * D + cols, a0 * carry, mask=dmask)
    if HAS_LB:
        tl.store(DLB + b * D + cols, tl.sum(dlb, axis=0), mask=dmask)


def inline_asm(x: torch.Tensor) -> bool:
    """Whether kernels on x may use inline PTX (`FAST_SIGMOID`): CUDA tensors, not the interpreter."""
    return x.is_cuda and torch.version.hip is None and os.environ.get("TRITON_INTERPRET") != "1"


def _even(T: int, D: int, ct: int, bd: int) -> bool:
    """Whether whole tiles cover a non-empty [T, D] exactly, so the kernels drop every mask."""
    return T > 0 and T % ct == 0 and D % bd == 0


def tile_constexprs(config: Tile, backward: bool) -> dict[str, int]:
    """A tile's layout constants as the kernels take them: (CT, BD, num_warps, V[, S[, A]]) -> CT, BD, VEC
    (`_strip`), S (`_steps`) and AHEAD, the tiles loaded ahead (A; by default 1, except 0 for a backward
    of several segments, whose registers do not hold both)."""
    ct, bd, _, v, *rest = config
    s = rest[0] if rest else 1
    ahead = rest[1] if len(rest) > 1 else (0 if backward and s > 1 else 1)
    return dict(CT=ct, BD=bd, VEC=1 if v == 0 else 0 if v == 1 else v, S=s, AHEAD=ahead)


def _tile_args(x: torch.Tensor, config: Tile, backward: bool) -> dict[str, Any]:
    """Both kernels' launch arguments for a `[B, T, D]` x and a tile (see `tile_constexprs`)."""
    _, T, D = x.shape
    return dict(
        Z=0, D=D, EVEN=_even(T, D, config[0], config[1]), FAST=inline_asm(x) and FAST_SIGMOID,
        num_warps=config[2], **tile_constexprs(config, backward),
    )  # fmt: skip


def _flags(lower_bound, reset, mask) -> dict[str, bool]:
    return dict(HAS_LB=lower_bound is not None, HAS_RESET=reset is not None, HAS_MASK=mask is not None)


def mlgru_fwd_tiled(
    f_raw: torch.Tensor,
    c_raw: torch.Tensor,
    lower_bound: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    reset: torch.Tensor | None,
    mask: torch.Tensor | None,
    config: Tile | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-pass forward: h `[B, T, D]` (c_raw's dtype) and the final state `[B, D]` fp32.

    config: (CT, BD, num_warps, V[, S]), default `fwd_config(B, D)`.
    """
    B, T, D = f_raw.shape
    config = config or fwd_config(B, D)
    h = torch.empty_like(c_raw)  # [B, T, D]
    final = torch.empty(B, D, dtype=torch.float32, device=f_raw.device)  # [B, D]
    _fwd_tiled_kernel[(triton.cdiv(D, config[1]), B)](
        f_raw,
        c_raw,
        lower_bound if lower_bound is not None else f_raw,
        initial_state if initial_state is not None else final,
        reset if reset is not None else f_raw,
        mask if mask is not None else f_raw,
        h,
        final,
        T,
        HAS_H0=initial_state is not None,
        **_tile_args(f_raw, config, False),
        **_flags(lower_bound, reset, mask),
    )
    return h, final


def mlgru_bwd_tiled(
    dh: torch.Tensor,
    dfinal: torch.Tensor | None,
    f_raw: torch.Tensor,
    c_raw: torch.Tensor,
    lower_bound: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    reset: torch.Tensor | None,
    mask: torch.Tensor | None,
    h: torch.Tensor,
    config: Tile | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Single-pass backward: df_raw, dc_raw (input dtypes), dlower_bound `[D]` fp32 | None, dh0 `[B, D]` fp32."""
    B, T, D = f_raw.shape
    config = config or bwd_config(B, D)
    df = torch.empty_like(f_raw)  # [B, T, D]
    dc = torch.empty_like(c_raw)  # [B, T, D]
    dh0 = torch.empty(B, D, dtype=torch.float32, device=f_raw.device)  # [B, D]
    dlb = torch.empty(B, D, dtype=torch.float32, device=f_raw.device) if lower_bound is not None else None
    _bwd_tiled_kernel[(triton.cdiv(D, config[1]), B)](
        f_raw,
        c_raw,
        lower_bound if lower_bound is not None else f_raw,
        initial_state if initial_state is not None else dh0,
        reset if reset is not None else f_raw,
        mask if mask is not None else f_raw,
        h,
        dh,
        dfinal if dfinal is not None else dh0,
        df,
        dc,
        dh0,
        dlb if dlb is not None else dh0,
        T,
        HAS_DFINAL=dfinal is not None,
        HAS_H0=initial_state is not None,
        **_tile_args(f_raw, config, True),
        **_flags(lower_bound, reset, mask),
    )
    return df, dc, (dlb.sum(0) if dlb is not None else None), dh0
