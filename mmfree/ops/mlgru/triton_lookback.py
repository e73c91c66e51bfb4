"""Single-pass MLGRU kernels with a decoupled look-back across time chunks (training form).

The grid covers (time chunk, batch row, D-block), so even B=8, D=1024 gives thousands of programs. Each
program takes a ticket from an atomic counter (its virtual id: chunks are handed out in scan order, so a
program only ever waits on programs that have already started, and nothing can deadlock), loads its
`[CT, BD]` tile once, computes the gates and the local affine scan of the tile from a zero state, and then:
  1. publishes its chunk aggregate (the map `x -> A x + B`: A = prod a, B = local end value) to a scratch
     buffer and raises its flag to 1;
  2. looks back over the preceding chunks: a flag of 2 gives that chunk's inclusive prefix (the true state
     at its end) and ends the walk, a flag of 1 composes its aggregate and walks on, 0 spins; the walk also
     ends once the composed decay is exactly zero in every column (a reset or an underflowed product);
  3. publishes its own inclusive prefix (flag 2), applies the carry to its tile and stores h.
The backward pass does the same in reverse time on `dh_t = dout_t + a_{t+1} dh_{t+1}` (aggregate
`(prod a_{t+1}, local dh at the chunk start)`, inclusive = the true dh at the chunk start), then writes
df_raw, dc_raw, per-chunk partials of dlower_bound, and dh0 = a_0 dh_0 from chunk 0.

Publication order: scratch stores, a CTA barrier, then a release atomic on the flag; readers acquire the
flag and read the scratch with volatile loads. Flags and the ticket counter live in one int32 buffer zeroed
per call. Two tile walks (`ROWWISE`): a `[CT, BD]` tile solved with `tl.associative_scan` along time
(in-thread when `BD` is `32 * num_warps` times the vector width), or a row loop over `CT` steps of `[BD]`
vectors (each thread owns its columns; a first pass forms the aggregate, the second re-reads the tile
from cache and writes the outputs). Gate math matches `mmfree.ops.mlgru.triton._gates`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mmfree.ops.mlgru.triton_tiled import _compose, _flags, _gate_grads, _tile_gates

# (CT steps, BD columns, num_warps, rowwise): the fastest of `benchmarks/kernels.py --sweep-lookback` on an
# H200 (2026-11-28, summed over B=8 and 32 at T=2048, D=1024; BENCHMARKS.md)
FWD_CONFIG: tuple[int, int, int, bool] = (8, 512, 2, False)
BWD_CONFIG: tuple[int, int, int, bool] = (4, 256, 1, False)
# programs publish inclusive prefixes (decoupled look-back); False forces every look-back through the
# aggregates back to the initial state, which the interpreter tests use to exercise that path
PUBLISH_INCLUSIVE: bool = True


@triton.jit
def _chunk(FLAGS, LB, T, D, NC, NPC, ND, REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr,
           HAS_LB: tl.constexpr):  # fmt: skip
    # this program's chunk, from a virtual program id taken off the counter in FLAGS[0] (chunks in scan
    # order): (chunk k, batch row b, D-block, its columns and mask, first step, row offset, lower bound)
    vid = tl.atomic_add(FLAGS, 1)
    k = vid // NPC
    if REVERSE:
        k = NC - 1 - k
    rem = vid % NPC
    b, pid_d = rem // ND, rem % ND
    cols = pid_d * BD + tl.arange(0, BD)
    dmask = cols < D
    lb = 0.0
    if HAS_LB:
        lb = tl.load(LB + cols, mask=dmask, other=0.0).to(tl.float32)
    return k, b, pid_d, cols, dmask, k * CT, b.to(tl.int64) * T * D, lb


@triton.jit
def _publish(FLAGS, fidx, BUF, off, val, dmask, state):
    # scratch store, barrier (every thread's store precedes the flag), release the flag
    tl.store(BUF + off, val, mask=dmask)
    tl.debug_barrier()
    tl.atomic_xchg(FLAGS + fidx, state, sem="release", scope="gpu")


@triton.jit
def _look_back(FLAGS, AGG, INC, b, k, step, stop, NC, ND, pid_d, D, cols, dmask, start, BD: tl.constexpr):
    # carry into chunk k: walk j = k + step, k + 2 step, ... != stop composing aggregates until an inclusive
    # prefix; the composed map (m_a, m_b) of the chunks between j and k applies to the walk's end value
    m_a = tl.full([BD], 1.0, dtype=tl.float32)
    m_b = tl.zeros([BD], dtype=tl.float32)
    j = k + step
    go = j != stop
    while go:
        fptr = FLAGS + 1 + (b * NC + j) * ND + pid_d
        state = tl.atomic_add(fptr, 0, sem="acquire", scope="gpu")
        while state == 0:
            state = tl.atomic_add(fptr, 0, sem="acquire", scope="gpu")
        row = (b * NC + j).to(tl.int64)
        if state == 2:
            inc = tl.load(INC + row * D + cols, mask=dmask, other=0.0, volatile=True)
            m_b = m_a * inc + m_b
            m_a = tl.zeros([BD], dtype=tl.float32)
        else:
            agg_a = tl.load(AGG + 2 * row * D + cols, mask=dmask, other=0.0, volatile=True)
            agg_b = tl.load(AGG + (2 * row + 1) * D + cols, mask=dmask, other=0.0, volatile=True)
            m_b = m_a * agg_b + m_b
            m_a = m_a * agg_a
        j += step
        go = (j != stop) & (tl.max(tl.abs(m_a), axis=0) > 0.0)
    return m_a * start + m_b


@triton.jit
def _row_gates(F, C, RESET, MASK, b, t, T, D, base, cols, dmask, lb, HAS_LB: tl.constexpr,
               HAS_RESET: tl.constexpr, HAS_MASK: tl.constexpr):  # fmt: skip
    # a rowwise step t: (a, i) of `_tile_gates` for the D-block `cols`, t < T, the load mask
    ok = t < T
    lm = dmask & ((cols * 0 + t) < T)  # vector form (the interpreter mis-types scalar & vector)
    fr = tl.load(F + base + t * D + cols, mask=lm, other=0.0).to(tl.float32)
    c = tl.load(C + base + t * D + cols, mask=lm, other=0.0).to(tl.float32)
    keep = 1.0
    if HAS_RESET:
        keep = 1.0 - tl.load(RESET + b * T + t, mask=ok, other=0).to(tl.float32)
    m = 1.0
    if HAS_MASK:
        m = tl.load(MASK + b * T + t, mask=ok, other=1.0).to(tl.float32)
    a, i, _, _, _, _ = _tile_gates(fr, c, lb, keep, m, HAS_LB, False)
    return a, i, ok, lm


@triton.jit
def _fwd_kernel(
    F,
    C,
    LB,
    H0,
    RESET,
    MASK,
    H,
    FINAL,
    FLAGS,
    AGG,
    INC,
    T,
    D,
    NC,
    ND,
    NPC,
    CT: tl.constexpr,
    BD: tl.constexpr,
    ROWWISE: tl.constexpr,
    PUBLISH_INC: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    k, b, pid_d, cols, dmask, t0, base, lb = _chunk(FLAGS, LB, T, D, NC, NPC, ND, False, CT, BD, HAS_LB)
    if ROWWISE:
        agg_a = tl.full([BD], 1.0, dtype=tl.float32)
        agg_b = tl.zeros([BD], dtype=tl.float32)
        for r in tl.static_range(CT):
            t = t0 + r
            a, i, ok, lm = _row_gates(
                F, C, RESET, MASK, b, t, T, D, base, cols, dmask, lb, HAS_LB, HAS_RESET, HAS_MASK
            )
            a = tl.where(ok, a, 1.0)  # steps past T are identity maps
            i = tl.where(ok, i, 0.0)
            agg_b = a * agg_b + i
            agg_a = agg_a * a
    else:
        rows = tl.arange(0, CT)
        t = t0 + rows
        tmask = t < T
        lmask = tmask[:, None] & dmask[None, :]
        ptr = base + t[:, None] * D + cols[None, :]  # [CT, BD]
        fr = tl.load(F + ptr, mask=lmask, other=0.0).to(tl.float32)
        c = tl.load(C + ptr, mask=lmask, other=0.0).to(tl.float32)
        keep = 1.0
        if HAS_RESET:
            keep = 1.0 - tl.load(RESET + b * T + t, mask=tmask, other=0).to(tl.float32)[:, None]
        m = 1.0
        if HAS_MASK:
            m = tl.load(MASK + b * T + t, mask=tmask, other=1.0).to(tl.float32)[:, None]
        lb2 = lb
        if HAS_LB:
            lb2 = lb[None, :]
        a, i, _, _, _, _ = _tile_gates(fr, c, lb2, keep, m, HAS_LB, False)
        a = tl.where(tmask[:, None], a, 1.0)
        i = tl.where(tmask[:, None], i, 0.0)
        pa, pb = tl.associative_scan((a, i), 0, _compose)  # [CT, BD] local scan from a zero state
        last = rows[:, None] == CT - 1
        agg_a = tl.sum(tl.where(last, pa, 0.0), axis=0)
        agg_b = tl.sum(tl.where(last, pb, 0.0), axis=0)
    row = (b * NC + k).to(tl.int64)
    fidx = 1 + (b * NC + k) * ND + pid_d
    if k < NC - 1:
        if PUBLISH_INC:
            if k > 0:
                tl.store(AGG + 2 * row * D + cols, agg_a, mask=dmask)
                _publish(FLAGS, fidx, AGG, (2 * row + 1) * D + cols, agg_b, dmask, 1)
        else:
            tl.store(AGG + 2 * row * D + cols, agg_a, mask=dmask)
            _publish(FLAGS, fidx, AGG, (2 * row + 1) * D + cols, agg_b, dmask, 1)
    if HAS_H0:
        start = tl.load(H0 + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        start = tl.zeros([BD], dtype=tl.float32)
    carry = _look_back(FLAGS, AGG, INC, b, k, -1, -1, NC, ND, pid_d, D, cols, dmask, start, BD)
    h_end = agg_a * carry + agg_b
    if k < NC - 1:
        if PUBLISH_INC:
            _publish(FLAGS, fidx, INC, row * D + cols, h_end, dmask, 2)
    else:
        tl.store(FINAL + b * D + cols, h_end, mask=dmask)
    if ROWWISE:
        h = carry
        for r in tl.static_range(CT):
            t = t0 + r
            a, i, ok, lm = _row_gates(
                F, C, RESET, MASK, b, t, T, D, base, cols, dmask, lb, HAS_LB, HAS_RESET, HAS_MASK
            )
            h = a * h + i
            tl.store(H + base + t * D + cols, h.to(H.dtype.element_ty), mask=lm)
    else:
        hh = pa * carry[None, :] + pb  # [CT, BD]
        tl.store(H + ptr, hh.to(H.dtype.element_ty), mask=lmask)


@triton.jit
def _bwd_row(
    F,
    C,
    LB,
    H0,
    RESET,
    MASK,
    H,
    DO,
    DF,
    DC,
    b,
    t,
    T,
    D,
    base,
    cols,
    dmask,
    lb,
    dh,
    a_next,
    HAS_H0: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    # one step of the reverse walk: dh_t = dout_t + a_{t+1} dh_{t+1}, then the gate gradients at t
    ok = t < T
    tv = cols * 0 + t  # [BD] (the interpreter mis-types scalar & vector masks)
    lm = dmask & (tv < T)
    off = base + t * D + cols
    fr = tl.load(F + off, mask=lm, other=0.0).to(tl.float32)
    c = tl.load(C + off, mask=lm, other=0.0).to(tl.float32)
    do = tl.load(DO + off, mask=lm, other=0.0).to(tl.float32)
    h_prev = tl.load(H + off - D, mask=lm & (tv > 0), other=0.0).to(tl.float32)
    if HAS_H0:
        h0 = tl.load(H0 + b * D + cols, mask=dmask & (tv == 0), other=0.0).to(tl.float32)
        h_prev = tl.where(t == 0, h0, h_prev)
    keep = 1.0
    if HAS_RESET:
        keep = 1.0 - tl.load(RESET + b * T + t, mask=ok, other=0).to(tl.float32)
    m = 1.0
    if HAS_MASK:
        m = tl.load(MASK + b * T + t, mask=ok, other=1.0).to(tl.float32)
    a, _, sig, f, silu, sig_c = _tile_gates(fr, c, lb, keep, m, HAS_LB, False)
    dh = a_next * dh + do
    df, dfr, dc = _gate_grads(dh, h_prev, keep, m, lb, c, sig, f, silu, sig_c, HAS_LB)
    tl.store(DF + off, dfr.to(DF.dtype.element_ty), mask=lm)
    tl.store(DC + off, dc.to(DC.dtype.element_ty), mask=lm)
    return dh, tl.where(ok, a, 1.0), tl.where(lm, df * (1.0 - sig), 0.0)


@triton.jit
def _bwd_kernel(
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
    FLAGS,
    AGG,
    INC,
    T,
    D,
    NC,
    ND,
    NPC,
    CT: tl.constexpr,
    BD: tl.constexpr,
    ROWWISE: tl.constexpr,
    PUBLISH_INC: tl.constexpr,
    HAS_DFINAL: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    k, b, pid_d, cols, dmask, t0, base, lb = _chunk(FLAGS, LB, T, D, NC, NPC, ND, True, CT, BD, HAS_LB)
    # a at the first step after the chunk (1 past T: dfinal enters through a_T := 1)
    tn = t0 + CT
    a_after = tl.full([BD], 1.0, dtype=tl.float32)
    if tn < T:
        fr_n = tl.load(F + base + tn * D + cols, mask=dmask, other=0.0).to(tl.float32)
        keep_n = 1.0
        if HAS_RESET:
            keep_n = 1.0 - tl.load(RESET + b * T + tn).to(tl.float32)
        a_after, _, _, _, _, _ = _tile_gates(fr_n, fr_n, lb, keep_n, 1.0, HAS_LB, False)
    if ROWWISE:
        # aggregate: dh_{t0} = agg_a * dh_{t0 + CT} + agg_b
        agg_a = tl.full([BD], 1.0, dtype=tl.float32)
        agg_b = tl.zeros([BD], dtype=tl.float32)
        a_next = a_after
        for r in tl.static_range(CT):
            t = t0 + CT - 1 - r
            # a_t only (C := F: the unused i is dropped by the compiler; no mask: it does not enter a)
            a, _, ok, lm = _row_gates(
                F, F, RESET, RESET, b, t, T, D, base, cols, dmask, lb, HAS_LB, HAS_RESET, False
            )
            do = tl.load(DO + base + t * D + cols, mask=lm, other=0.0).to(tl.float32)
            agg_b = a_next * agg_b + do
            agg_a = agg_a * a_next
            a_next = tl.where(ok, a, 1.0)
    else:
        rows = tl.arange(0, CT)
        t = t0 + rows
        tmask = t < T
        nmask = (t + 1) < T
        lmask = tmask[:, None] & dmask[None, :]
        ptr = base + t[:, None] * D + cols[None, :]  # [CT, BD]
        lb2 = lb
        if HAS_LB:
            lb2 = lb[None, :]
        fr = tl.load(F + ptr, mask=lmask, other=0.0).to(tl.float32)
        c = tl.load(C + ptr, mask=lmask, other=0.0).to(tl.float32)
        do = tl.load(DO + ptr, mask=lmask, other=0.0).to(tl.float32)
        fr_next = tl.load(F + ptr + D, mask=nmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
        keep = 1.0
        keep_next = 1.0
        if HAS_RESET:
            keep = 1.0 - tl.load(RESET + b * T + t, mask=tmask, other=0).to(tl.float32)[:, None]
            keep_next = 1.0 - tl.load(RESET + b * T + t + 1, mask=nmask, other=0).to(tl.float32)[:, None]
        m = 1.0
        if HAS_MASK:
            m = tl.load(MASK + b * T + t, mask=tmask, other=1.0).to(tl.float32)[:, None]
        _, _, sig, f, silu, sig_c = _tile_gates(fr, c, lb2, keep, m, HAS_LB, False)
        a_nx, _, _, _, _, _ = _tile_gates(fr_next, fr_next, lb2, keep_next, 1.0, HAS_LB, False)
        x = tl.where(nmask[:, None], a_nx, 1.0)
        y = tl.where(tmask[:, None], do, 0.0)
        px, py = tl.associative_scan((x, y), 0, _compose, reverse=True)  # [CT, BD] from a zero carry
        first = rows[:, None] == 0
        agg_a = tl.sum(tl.where(first, px, 0.0), axis=0)
        agg_b = tl.sum(tl.where(first, py, 0.0), axis=0)
    row = (b * NC + k).to(tl.int64)
    fidx = 1 + (b * NC + k) * ND + pid_d
    if k > 0:
        if PUBLISH_INC:
            if k < NC - 1:
                tl.store(AGG + 2 * row * D + cols, agg_a, mask=dmask)
                _publish(FLAGS, fidx, AGG, (2 * row + 1) * D + cols, agg_b, dmask, 1)
        else:
            tl.store(AGG + 2 * row * D + cols, agg_a, mask=dmask)
            _publish(FLAGS, fidx, AGG, (2 * row + 1) * D + cols, agg_b, dmask, 1)
    if HAS_DFINAL:
        start = tl.load(DFINAL + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        start = tl.zeros([BD], dtype=tl.float32)
    carry = _look_back(FLAGS, AGG, INC, b, k, 1, NC, NC, ND, pid_d, D, cols, dmask, start, BD)
    dh_start = agg_a * carry + agg_b
    if (k > 0) & PUBLISH_INC:
        _publish(FLAGS, fidx, INC, row * D + cols, dh_start, dmask, 2)
    if ROWWISE:
        dh = carry
        a_next = a_after
        dlb = tl.zeros([BD], dtype=tl.float32)
        for r in tl.static_range(CT):
            dh, a_next, dlb_t = _bwd_row(
                F,
                C,
                LB,
                H0,
                RESET,
                MASK,
                H,
                DO,
                DF,
                DC,
                b,
                t0 + CT - 1 - r,
                T,
                D,
                base,
                cols,
                dmask,
                lb,
                dh,
                a_next,
                HAS_H0,
                HAS_LB,
                HAS_RESET,
                HAS_MASK,
            )
            dlb += dlb_t
        a_first = a_next
    else:
        dh2 = px * carry[None, :] + py  # [CT, BD]
        h_prev = tl.load(H + ptr - D, mask=(lmask & (t >= 1)[:, None]), other=0.0).to(tl.float32)
        if HAS_H0:
            h0 = tl.load(H0 + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
            h_prev = tl.where((t == 0)[:, None], h0[None, :], h_prev)
        df, dfr, dc = _gate_grads(dh2, h_prev, keep, m, lb2, c, sig, f, silu, sig_c, HAS_LB)
        tl.store(DF + ptr, dfr.to(DF.dtype.element_ty), mask=lmask)
        tl.store(DC + ptr, dc.to(DC.dtype.element_ty), mask=lmask)
        dlb = tl.sum(tl.where(lmask, df * (1.0 - sig), 0.0), axis=0)
        a_first = tl.sum(tl.where(first, f * keep, 0.0), axis=0)
    if HAS_LB:
        tl.store(DLB + row * D + cols, dlb, mask=dmask)
    if k == 0:
        tl.store(DH0 + b * D + cols, a_first * dh_start, mask=dmask)


def _check_config(config: tuple[int, int, int, bool]) -> tuple[int, int, int, bool]:
    ct, bd, warps, rowwise = config
    for name, v in (("CT", ct), ("BD", bd), ("num_warps", warps)):
        if v < 1 or v & (v - 1):
            raise ValueError(f"mlgru (lookback): {name} must be a power of two >= 1; got {v} in {config}")
    return ct, bd, warps, bool(rowwise)


def _scratch(B: int, nc: int, nd: int, D: int, dev: torch.device) -> tuple[torch.Tensor, ...]:
    """(flags + ticket counter, zeroed; aggregates `[B * NC, 2, D]`; inclusive prefixes `[B * NC, D]`)."""
    flags = torch.zeros(1 + B * nc * nd, dtype=torch.int32, device=dev)  # [1 + B * NC * ND]
    agg = torch.empty(B * nc, 2, D, dtype=torch.float32, device=dev)  # [B * NC, 2, D]
    inc = torch.empty(B * nc, D, dtype=torch.float32, device=dev)  # [B * NC, D]
    return flags, agg, inc


def mlgru_fwd_lookback(
    f_raw: torch.Tensor,
    c_raw: torch.Tensor,
    lower_bound: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    reset: torch.Tensor | None,
    mask: torch.Tensor | None,
    config: tuple[int, int, int, bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Look-back forward: h `[B, T, D]` (c_raw's dtype) and the final state `[B, D]` fp32.

    Inputs contiguous; reset int8 `[B, T]`, mask fp32 `[B, T]`. config: (CT, BD, num_warps, rowwise),
    default `FWD_CONFIG`.
    """
    B, T, D = f_raw.shape
    ct, bd, warps, rowwise = _check_config(config or FWD_CONFIG)
    h = torch.empty_like(c_raw)  # [B, T, D]
    if T == 0:
        final = initial_state.float().clone() if initial_state is not None else f_raw.new_zeros(B, D).float()
        return h, final
    final = torch.empty(B, D, dtype=torch.float32, device=f_raw.device)  # [B, D]
    nc, nd = triton.cdiv(T, ct), triton.cdiv(D, bd)
    flags, agg, inc = _scratch(B, nc, nd, D, f_raw.device)
    _fwd_kernel[(nc * B * nd,)](
        f_raw,
        c_raw,
        lower_bound if lower_bound is not None else f_raw,
        initial_state if initial_state is not None else final,
        reset if reset is not None else f_raw,
        mask if mask is not None else f_raw,
        h,
        final,
        flags,
        agg,
        inc,
        T,
        D,
        nc,
        nd,
        B * nd,
        CT=ct,
        BD=bd,
        ROWWISE=rowwise,
        PUBLISH_INC=PUBLISH_INCLUSIVE,
        HAS_H0=initial_state is not None,
        num_warps=warps,
        **_flags(lower_bound, reset, mask),
    )
    return h, final


def mlgru_bwd_lookback(
    dh: torch.Tensor,
    dfinal: torch.Tensor | None,
    f_raw: torch.Tensor,
    c_raw: torch.Tensor,
    lower_bound: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    reset: torch.Tensor | None,
    mask: torch.Tensor | None,
    h: torch.Tensor,
    config: tuple[int, int, int, bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Look-back backward: df_raw, dc_raw (input dtypes), dlower_bound `[D]` fp32 | None, dh0 `[B, D]` fp32."""
    B, T, D = f_raw.shape
    ct, bd, warps, rowwise = _check_config(config or BWD_CONFIG)
    dev = f_raw.device
    df = torch.empty_like(f_raw)  # [B, T, D]
    dc = torch.empty_like(c_raw)  # [B, T, D]
    if T == 0:
        dh0 = dfinal.float().clone() if dfinal is not None else torch.zeros(B, D, device=dev)  # [B, D]
        return df, dc, (torch.zeros(D, device=dev) if lower_bound is not None else None), dh0
    dh0 = torch.empty(B, D, dtype=torch.float32, device=dev)  # [B, D]
    nc, nd = triton.cdiv(T, ct), triton.cdiv(D, bd)
    dlb = torch.empty(B * nc, D, dtype=torch.float32, device=dev) if lower_bound is not None else None
    flags, agg, inc = _scratch(B, nc, nd, D, dev)
    _bwd_kernel[(nc * B * nd,)](
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
        flags,
        agg,
        inc,
        T,
        D,
        nc,
        nd,
        B * nd,
        CT=ct,
        BD=bd,
        ROWWISE=rowwise,
        PUBLISH_INC=PUBLISH_INCLUSIVE,
        HAS_DFINAL=dfinal is not None,
        HAS_H0=initial_state is not None,
        num_warps=warps,
        **_flags(lower_bound, reset, mask),
    )
    return df, dc, (dlb.sum(0) if dlb is not None else None), dh0
