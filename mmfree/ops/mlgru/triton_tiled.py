"""Single-pass tiled MLGRU kernels (training form): one program per (batch row, D-block) strip.

Each program walks the time axis in tiles of `[CT, BD]` (BD adjacent columns of a row; the layout within a
tile is set by `V`, see `FWD_TILES`), computes the gates of the whole tile, solves the affine recurrence
inside the tile with `tl.associative_scan` along time (maps `x -> a x + b` compose as `(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)`),
applies the carry from the previous tile and stores the tile; the carry is the tile's last row. The next
tile's loads are issued before the current tile is computed, so two tiles are in flight. When whole tiles
cover the input (`EVEN`), no access carries a mask.
Inputs are read once: forward reads f_raw, c_raw and writes h; backward reads f_raw, c_raw, dh and the saved
h (the rows shifted by one step, `a_{t+1}` and `h_{t-1}`, come from the same lines, mostly from cache) and
writes df_raw, dc_raw. The backward walks the tiles from the end with a reverse scan of
`dh_t = dout_t + a_{t+1} dh_{t+1}`. Gate math matches `mmfree.ops.mlgru.triton._gates`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

# (most (batch row, 32-column) strips, (CT steps, BD columns, num_warps, V)): the first entry covering the
# call's strips is its tile. A tile is `[CT, BD / V, V]`. The fastest of `benchmarks/kernels.py --sweep
# [--sweep-shapes 8x2048,16x2048]` on an H200 (T=2048; B=8 and 32 at D=1024, B=8 and 16 at D=2048;
# 2026-11-29; BENCHMARKS.md) all have V = 1. Despite the name, V = 1 does not keep a column in one thread:
# the columns are contiguous and aligned, so the compiler gives each thread 16-byte runs of a row and
# spreads a tile's rows over lanes (the scan shuffles between them). Wider V (whole columns of 2-4 per
# thread) measured slower. One-warp programs at 1024 strips run the forward at half the copy bandwidth,
# bound by instruction issue (`benchmarks/sass_counts.py --scan`: 60 SASS instructions per element forward
# and 178 backward with triton 3.6, against about 69 and 137 for 70% of the copy bandwidth). V = 0 is the
# layout that was meant: one column per thread, 2-byte accesses, the scan inside the thread (26 and 83
# per element with `FAST_SIGMOID`). It compiles for sm_90 with triton 3.6 and 3.9 but is not yet timed,
# so no table entry uses it.
FWD_TILES: tuple[tuple[int, tuple[int, int, int, int]], ...] = (
    (256, (64, 16, 4, 1)),  # 370M at batch 8
    (512, (64, 32, 4, 1)),  # 1.3B at batch 8
    (2**62, (32, 32, 1, 1)),  # 370M at 32, 1.3B at 16
)
BWD_TILES: tuple[tuple[int, tuple[int, int, int, int]], ...] = (
    (256, (64, 16, 4, 1)),
    (512, (32, 16, 2, 1)),
    (2**62, (16, 32, 2, 1)),
)
# the gates' sigmoids as two bare MUFU instructions on CUDA (`_sigmoid`). Off until timed on the H200: it
# compiles for sm_90 and cuts the SASS per element (`benchmarks/sass_counts.py --scan`), but has not run on
# a GPU yet (`benchmarks/kernels.py --sweep` times both; `-m gpu` tests check both)
FAST_SIGMOID = False
# a tile for every call instead of the tables (tests and sweeps set these)
FWD_CONFIG: tuple[int, int, int, int] | None = None
BWD_CONFIG: tuple[int, int, int, int] | None = None


def parse_tiles(spec: str) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """The forward and backward tiles of 'CT,BD,W,V;CT,BD,W,V' (as `benchmarks/kernels.py --save-best` writes)."""
    try:
        fwd, bwd = (tuple(int(v) for v in part.split(",")) for part in spec.split(";"))
        if len(fwd) != 4 or len(bwd) != 4:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"MLGRU tiles {spec!r}: give 'CT,BD,W,V;CT,BD,W,V' (forward;backward), e.g. '32,32,1,0;16,32,2,1'"
        ) from None
    return fwd, bwd  # type: ignore[return-value]


def fwd_config(B: int, D: int) -> tuple[int, int, int, int]:
    """The forward tile (CT, BD, num_warps, V) of a `[B, T, D]` call."""
    return FWD_CONFIG or _from_table(FWD_TILES, B, D)


def bwd_config(B: int, D: int) -> tuple[int, int, int, int]:
    """The backward tile (CT, BD, num_warps, V) of a `[B, T, D]` call."""
    return BWD_CONFIG or _from_table(BWD_TILES, B, D)


def _from_table(table: tuple[tuple[int, tuple[int, ...]], ...], B: int, D: int) -> Any:
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
    # fp32 [CT, BD] pre-activations -> (a, i, sig_f, f, silu_c, sig_c); keep, m broadcast [CT, 1] or scalars
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
def _strip(pid_d, Z, D: tl.constexpr, BD: tl.constexpr, V: tl.constexpr, SCALAR: tl.constexpr):
    # a strip's BD columns as `[BD / V, V]` and their mask. Contiguous, aligned columns let the compiler give
    # each thread 16-byte runs of one row, so a tile's rows spread over lanes and the scan along time
    # shuffles between them (8 shuffles per element). SCALAR (V = 1) adds Z, a runtime 0 the compiler knows
    # nothing of (not specialized): the columns stay contiguous, so threads still run along them, but no
    # access is provably aligned beyond one element. So each thread holds one column, with 2-byte accesses,
    # and with BD = 32 * num_warps all CT rows of it: the scan runs inside the thread (about half the
    # instructions per element: `benchmarks/sass_counts.py --scan`).
    cols = pid_d * BD + (tl.arange(0, BD // V) * V)[:, None] + tl.arange(0, V)[None, :]
    if SCALAR:
        cols = cols + Z
    return cols, cols < D


@triton.jit
def _ahead(
    P, roff, t0, K: tl.constexpr, T, rows, dmask, CT: tl.constexpr, D: tl.constexpr, EVEN: tl.constexpr
):
    # the `[CT, BD / V, V]` tile K tiles after the one at step t0 (P points at that tile's first row); when
    # EVEN a tile past the end re-reads the one at t0 instead (in bounds, never used)
    if EVEN:
        return tl.load(P + tl.where(t0 + K * CT < T, K * CT * D, 0) + roff)
    return tl.load(
        P + K * CT * D + roff, mask=((t0 + K * CT + rows) < T)[:, None, None] & dmask[None, :, :], other=0.0
    )


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
    V: tl.constexpr,
    SCALAR: tl.constexpr,
    EVEN: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
    FAST: tl.constexpr,
):
    # EVEN: T % CT == 0 and D % BD == 0, so no access needs a mask
    pid_d, b = tl.program_id(0), tl.program_id(1)
    cols, dmask = _strip(pid_d, Z, D, BD, V, SCALAR)  # [BD / V, V]
    rows = tl.arange(0, CT)
    roff = rows[:, None, None] * D  # [CT, 1, 1] row offsets inside a tile (compile-time)
    base = b.to(tl.int64) * T * D
    fp = F + base + cols[None, :, :]  # [1, BD / V, V] pointers to the current tile's first row
    cp = C + base + cols[None, :, :]
    hp = H + base + cols[None, :, :]
    lb = 0.0
    if HAS_LB:
        lb = tl.load(LB + cols, mask=dmask, other=0.0).to(tl.float32)[None, :, :]
    if HAS_H0:
        h = tl.load(H0 + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BD // V, V], dtype=tl.float32)
    # [CT, BD / V, V] tiles: the next one loads while this one is solved
    f_nx = _ahead(fp, roff, 0, 0, T, rows, dmask, CT, D, EVEN)
    c_nx = _ahead(cp, roff, 0, 0, T, rows, dmask, CT, D, EVEN)
    for t0 in range(0, T, CT):
        t = t0 + rows
        tmask = t < T
        f_cur, c_cur = f_nx, c_nx
        f_nx = _ahead(fp, roff, t0, 1, T, rows, dmask, CT, D, EVEN)
        c_nx = _ahead(cp, roff, t0, 1, T, rows, dmask, CT, D, EVEN)
        keep = 1.0
        if HAS_RESET:
            keep = 1.0 - tl.load(RESET + b * T + t, mask=tmask, other=0).to(tl.float32)[:, None, None]
        m = 1.0
        if HAS_MASK:
            m = tl.load(MASK + b * T + t, mask=tmask, other=1.0).to(tl.float32)[:, None, None]
        a, i, _, _, _, _ = _tile_gates(f_cur.to(tl.float32), c_cur.to(tl.float32), lb, keep, m, HAS_LB, FAST)
        if not EVEN:
            # steps past T are identity maps, so the last row carries the state at T - 1
            a = tl.where(tmask[:, None, None], a, 1.0)
            i = tl.where(tmask[:, None, None], i, 0.0)
        pa, pb = tl.associative_scan((a, i), 0, _compose)
        hh = pa * h[None, :, :] + pb  # [CT, BD / V, V]
        smask = None if EVEN else tmask[:, None, None] & dmask[None, :, :]
        tl.store(hp + roff, hh.to(H.dtype.element_ty), mask=smask)
        h = tl.sum(tl.where(rows[:, None, None] == CT - 1, hh, 0.0), axis=0)
        fp += CT * D
        cp += CT * D
        hp += CT * D
    tl.store(FINAL + b * D + cols, h, mask=dmask)


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
    V: tl.constexpr,
    SCALAR: tl.constexpr,
    EVEN: tl.constexpr,
    HAS_DFINAL: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
    FAST: tl.constexpr,
):
    pid_d, b = tl.program_id(0), tl.program_id(1)
    cols, dmask = _strip(pid_d, Z, D, BD, V, SCALAR)  # [BD / V, V]
    rows = tl.arange(0, CT)
    roff = rows[:, None, None] * D  # [CT, 1, 1]
    base = b.to(tl.int64) * T * D
    n_tiles = tl.cdiv(T, CT)
    last = (n_tiles - 1) * CT * D
    c3 = cols[None, :, :]
    fp = F + base + last + c3  # [1, BD / V, V] pointers to the last tile's first row (walked backwards)
    cp = C + base + last + c3
    hp = H + base + last + c3
    dop = DO + base + last + c3
    dfp = DF + base + last + c3
    dcp = DC + base + last + c3
    lb = 0.0
    lb_row = 0.0
    if HAS_LB:
        lb_row = tl.load(LB + cols, mask=dmask, other=0.0).to(tl.float32)
        lb = lb_row[None, :, :]
    h0 = 0.0
    if HAS_H0:
        h0 = tl.load(H0 + b * D + cols, mask=dmask, other=0.0).to(tl.float32)[None, :, :]
    # carry = dh at the first step after the tile ("dh_T" is dfinal, entering through a_T := 1)
    if HAS_DFINAL:
        carry = tl.load(DFINAL + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        carry = tl.zeros([BD // V, V], dtype=tl.float32)
    dlb = tl.zeros([CT, BD // V, V], dtype=tl.float32)
    for k in range(0, n_tiles):
        t0 = (n_tiles - 1 - k) * CT
        t = t0 + rows
        tmask = t < T
        nmask = ((t + 1) < T)[:, None, None] & dmask[None, :, :]
        pmask = ((t >= 1) & tmask)[:, None, None] & dmask[None, :, :]
        lmask = None if EVEN else tmask[:, None, None] & dmask[None, :, :]
        zero = None if EVEN else 0.0
        fr = tl.load(fp + roff, mask=lmask, other=zero).to(tl.float32)
        c = tl.load(cp + roff, mask=lmask, other=zero).to(tl.float32)
        do = tl.load(dop + roff, mask=lmask, other=zero).to(tl.float32)
        fr_next = tl.load(fp + D + roff, mask=nmask, other=0.0).to(tl.float32)
        h_prev = tl.load(hp - D + roff, mask=pmask, other=0.0).to(tl.float32)
        if HAS_H0:
            h_prev = tl.where((t == 0)[:, None, None], h0, h_prev)
        keep = 1.0
        keep_next = 1.0
        if HAS_RESET:
            keep = 1.0 - tl.load(RESET + b * T + t, mask=tmask, other=0).to(tl.float32)[:, None, None]
            keep_next = (
                1.0 - tl.load(RESET + b * T + t + 1, mask=(t + 1) < T, other=0).to(tl.float32)[:, None, None]
            )
        m = 1.0
        if HAS_MASK:
            m = tl.load(MASK + b * T + t, mask=tmask, other=1.0).to(tl.float32)[:, None, None]
        _, _, sig, f, silu, sig_c = _tile_gates(fr, c, lb, keep, m, HAS_LB, FAST)
        sig_n = _sigmoid(fr_next, FAST)
        if HAS_LB:
            a_next = (lb + (1.0 - lb) * sig_n) * keep_next
        else:
            a_next = sig_n * keep_next
        # x_t = a_{t+1} (1 past the end: the carry is dfinal), y_t = dout_t; rows past T pass the carry on
        x = tl.where(((t + 1) < T)[:, None, None], a_next, 1.0)
        y = do
        if not EVEN:
            y = tl.where(tmask[:, None, None], do, 0.0)
        px, py = tl.associative_scan((x, y), 0, _compose, reverse=True)
        dh = px * carry[None, :, :] + py  # [CT, BD / V, V]
        df, dfr, dc = _gate_grads(dh, h_prev, keep, m, lb, c, sig, f, silu, sig_c, HAS_LB)
        if HAS_LB:
            if EVEN:
                dlb += df * (1.0 - sig)
            else:
                dlb += tl.where(tmask[:, None, None], df * (1.0 - sig), 0.0)
        tl.store(dfp + roff, dfr.to(DF.dtype.element_ty), mask=lmask)
        tl.store(dcp + roff, dc.to(DC.dtype.element_ty), mask=lmask)
        carry = tl.sum(tl.where(rows[:, None, None] == 0, dh, 0.0), axis=0)
        fp -= CT * D
        cp -= CT * D
        hp -= CT * D
        dop -= CT * D
        dfp -= CT * D
        dcp -= CT * D
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


def _tile_args(x: torch.Tensor, config: tuple[int, int, int, int]) -> dict[str, Any]:
    """Both kernels' layout arguments for a `[B, T, D]` x and a tile (CT, BD, num_warps, V; V=0: one column
    per thread, see `_strip`)."""
    _, T, D = x.shape
    ct, bd, warps, v = config
    return dict(
        Z=0, D=D, CT=ct, BD=bd, V=max(v, 1), SCALAR=v == 0, EVEN=_even(T, D, ct, bd),
        FAST=inline_asm(x) and FAST_SIGMOID, num_warps=warps,
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
    config: tuple[int, int, int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-pass forward: h `[B, T, D]` (c_raw's dtype) and the final state `[B, D]` fp32.

    config: (CT, BD, num_warps, V), default `fwd_config(B, D)`.
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
        **_tile_args(f_raw, config),
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
    config: tuple[int, int, int, int] | None = None,
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
        **_tile_args(f_raw, config),
        **_flags(lower_bound, reset, mask),
    )
    return df, dc, (dlb.sum(0) if dlb is not None else None), dh0
