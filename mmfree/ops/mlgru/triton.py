"""Triton MLGRU: gates fused with the recurrence `h_t = a_t h_{t-1} + i_t`, forward and backward, fp32 state.

Gates (as `mlgru_gated_naive`): `f = lb + (1 - lb) sigmoid(f_raw)`, `i = SiLU(c_raw) (1 - f) mask`,
`a = f`, zeroed where `reset` starts a new document.

Three forms. Tiled single-pass (training, the default when `B * D` fills the GPU): see `triton_tiled`,
each input read once. Fused-recurrent (short T, decoding): one program per (batch, D-block)
walks all T steps. Chunked (training): the time axis is cut into chunks of `CHUNK_SIZE` steps and
  1. every (batch, chunk, D-block) program scans its chunk from a zero state and keeps only the summary
     `(A = prod a, H = local h at the chunk end)`;
  2. one cheap pass per (batch, D-block) propagates the carries `h_in[c+1] = A_c h_in[c] + H_c`;
  3. every chunk re-scans from its true carry and writes h (inputs re-read instead of storing fp32 h).
The chunked backward pass mirrors this in reverse time: `dh_t = dout_t + a_{t+1} dh_{t+1}` with chunk summaries
`(M = prod a, N = a_start * local dh_start)` and right-carries `g_{c-1} = N_c + M_c g_c`, then the gate
gradients use the saved output h for `h_{t-1}`; lower_bound's gradient is reduced from per-program partials.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mmfree.ops.mlgru import triton_lookback, triton_tiled
from mmfree.ops.mlgru.triton_tiled import _gate_grads

CHUNK_SIZE: int = 64
RECURRENT_MAX_T: int = 256  # T up to this runs the fused-recurrent form (one chunk)
BLOCK_D_CHUNKED: int = 64
BLOCK_D_RECURRENT: int = 32
TILED_MIN_T: int = 16  # shorter sequences (decoding) keep the fused-recurrent form
TILED_MIN_PROGRAMS: int = 64  # fewer (batch, D-block) strips than this split T across programs instead
_FORMS = ("auto", "tiled", "chunked", "lookback")


@triton.jit
def _gates(
    F,
    C,
    LB,
    RESET,
    MASK,
    b,
    t,
    T,
    offs,
    cols,
    dmask,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    # returns (a, i, sig_f, f, silu_c, sig_c, c, keep, m) at step t for the D-block `cols`
    fr = tl.load(F + offs, mask=dmask, other=0.0).to(tl.float32)
    c = tl.load(C + offs, mask=dmask, other=0.0).to(tl.float32)
    sig = tl.sigmoid(fr)
    if HAS_LB:
        lb = tl.load(LB + cols, mask=dmask, other=0.0).to(tl.float32)
        f = lb + (1.0 - lb) * sig
    else:
        f = sig
    sig_c = tl.sigmoid(c)
    silu = c * sig_c
    i = silu * (1.0 - f)
    m = 1.0
    if HAS_MASK:
        m = tl.load(MASK + b * T + t).to(tl.float32)
        i = i * m
    keep = 1.0
    if HAS_RESET:
        keep = 1.0 - tl.load(RESET + b * T + t).to(tl.float32)
    a = f * keep
    return a, i, sig, f, silu, sig_c, c, keep, m


@triton.jit
def _fwd_summary_kernel(
    F,
    C,
    LB,
    RESET,
    MASK,
    SA,
    SH,
    T,
    D,
    NC,
    BT,
    BD: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    pid_d, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    cols = pid_d * BD + tl.arange(0, BD)
    dmask = cols < D
    prod = tl.full([BD], 1.0, dtype=tl.float32)
    h = tl.zeros([BD], dtype=tl.float32)
    for s in range(0, BT):
        t = pid_c * BT + s
        if t < T:
            a, i, _, _, _, _, _, _, _ = _gates(
                F,
                C,
                LB,
                RESET,
                MASK,
                b,
                t,
                T,
                (b * T + t) * D + cols,
                cols,
                dmask,
                HAS_LB,
                HAS_RESET,
                HAS_MASK,
            )
            h = a * h + i
            prod = prod * a
    out = (b * NC + pid_c) * D + cols
    tl.store(SA + out, prod, mask=dmask)
    tl.store(SH + out, h, mask=dmask)


@triton.jit
def _carry_kernel(
    SA, SH, START, CARRY, D, NC, BD: tl.constexpr, HAS_START: tl.constexpr, REVERSE: tl.constexpr
):
    # forward: CARRY[c] = state entering chunk c; reverse: CARRY[c] = gradient entering chunk c from the right
    pid_d, b = tl.program_id(0), tl.program_id(1)
    cols = pid_d * BD + tl.arange(0, BD)
    dmask = cols < D
    if HAS_START:
        v = tl.load(START + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        v = tl.zeros([BD], dtype=tl.float32)
    for k in range(0, NC):
        c = k
        if REVERSE:
            c = NC - 1 - k
        off = (b * NC + c) * D + cols
        tl.store(CARRY + off, v, mask=dmask)
        v = tl.load(SA + off, mask=dmask, other=1.0) * v + tl.load(SH + off, mask=dmask, other=0.0)


@triton.jit
def _fwd_kernel(
    F,
    C,
    LB,
    RESET,
    MASK,
    CARRY,
    H,
    FINAL,
    T,
    D,
    NC,
    BT,
    BD: tl.constexpr,
    HAS_CARRY: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    pid_d, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    cols = pid_d * BD + tl.arange(0, BD)
    dmask = cols < D
    if HAS_CARRY:
        h = tl.load(CARRY + (b * NC + pid_c) * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BD], dtype=tl.float32)
    for s in range(0, BT):
        t = pid_c * BT + s
        if t < T:
            offs = (b * T + t) * D + cols
            a, i, _, _, _, _, _, _, _ = _gates(
                F, C, LB, RESET, MASK, b, t, T, offs, cols, dmask, HAS_LB, HAS_RESET, HAS_MASK
            )
            h = a * h + i
            tl.store(H + offs, h.to(H.dtype.element_ty), mask=dmask)
    if pid_c == NC - 1:
        tl.store(FINAL + b * D + cols, h, mask=dmask)


@triton.jit
def _bwd_summary_kernel(
    F,
    LB,
    RESET,
    DO,
    SM,
    SN,
    T,
    D,
    NC,
    BT,
    BD: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
):
    pid_d, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    cols = pid_d * BD + tl.arange(0, BD)
    dmask = cols < D
    prod = tl.full([BD], 1.0, dtype=tl.float32)
    carry = tl.zeros([BD], dtype=tl.float32)
    for s in range(0, BT):
        t = pid_c * BT + BT - 1 - s
        if t < T:
            offs = (b * T + t) * D + cols
            a, _, _, _, _, _, _, _, _ = _gates(
                F, F, LB, RESET, RESET, b, t, T, offs, cols, dmask, HAS_LB, HAS_RESET, False
            )
            dh = tl.load(DO + offs, mask=dmask, other=0.0).to(tl.float32) + carry
            carry = a * dh
            prod = prod * a
    out = (b * NC + pid_c) * D + cols
    tl.store(SM + out, prod, mask=dmask)
    tl.store(SN + out, carry, mask=dmask)


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
    CARRY,
    DF,
    DC,
    DH0,
    DLB,
    T,
    D,
    NC,
    BT,
    BD: tl.constexpr,
    HAS_CARRY: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LB: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    pid_d, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    cols = pid_d * BD + tl.arange(0, BD)
    dmask = cols < D
    if HAS_CARRY:
        carry = tl.load(CARRY + (b * NC + pid_c) * D + cols, mask=dmask, other=0.0).to(tl.float32)
    else:
        carry = tl.zeros([BD], dtype=tl.float32)
    dlb = tl.zeros([BD], dtype=tl.float32)
    lb = 0.0
    if HAS_LB:
        lb = tl.load(LB + cols, mask=dmask, other=0.0).to(tl.float32)
    for s in range(0, BT):
        t = pid_c * BT + BT - 1 - s
        if t < T:
            offs = (b * T + t) * D + cols
            a, _, sig, f, silu, sig_c, c, keep, m = _gates(
                F, C, LB, RESET, MASK, b, t, T, offs, cols, dmask, HAS_LB, HAS_RESET, HAS_MASK
            )
            dh = tl.load(DO + offs, mask=dmask, other=0.0).to(tl.float32) + carry
            if t > 0:
                h_prev = tl.load(H + offs - D, mask=dmask, other=0.0).to(tl.float32)
            elif HAS_H0:
                h_prev = tl.load(H0 + b * D + cols, mask=dmask, other=0.0).to(tl.float32)
            else:
                h_prev = tl.zeros([BD], dtype=tl.float32)
            df, dfr, dc = _gate_grads(dh, h_prev, keep, m, lb, c, sig, f, silu, sig_c, HAS_LB)
            if HAS_LB:
                dlb += df * (1.0 - sig)
            tl.store(DF + offs, dfr.to(DF.dtype.element_ty), mask=dmask)
            tl.store(DC + offs, dc.to(DC.dtype.element_ty), mask=dmask)
            carry = a * dh
    if pid_c == 0:
        tl.store(DH0 + b * D + cols, carry, mask=dmask)
    if HAS_LB:
        tl.store(DLB + (b * NC + pid_c) * D + cols, dlb, mask=dmask)


def _plan(T: int, chunk_size: int | None) -> tuple[int, int, int]:
    """(chunk length BT, number of chunks NC, D block) for a sequence of T steps."""
    if chunk_size is None:
        chunk_size = CHUNK_SIZE if T > RECURRENT_MAX_T else max(T, 1)
    if chunk_size < 1:
        raise ValueError(f"mlgru (triton): chunk_size must be >= 1; got {chunk_size}")
    bt = min(chunk_size, max(T, 1))
    nc = triton.cdiv(max(T, 1), bt)
    return bt, nc, BLOCK_D_RECURRENT if nc == 1 else BLOCK_D_CHUNKED


def _opt(t: torch.Tensor | None, fallback: torch.Tensor) -> torch.Tensor:
    return t if t is not None else fallback


def mlgru_fwd(f_raw, c_raw, lower_bound, initial_state, reset, mask, chunk_size=None):
    """Forward launcher: returns h `[B, T, D]` (c_raw's dtype) and the final state `[B, D]` fp32."""
    B, T, D = f_raw.shape
    bt, nc, bd = _plan(T, chunk_size)
    h = torch.empty_like(c_raw)  # [B, T, D]
    final = torch.empty(B, D, dtype=torch.float32, device=f_raw.device)  # [B, D]
    flags = dict(HAS_LB=lower_bound is not None, HAS_RESET=reset is not None, HAS_MASK=mask is not None)
    lb, rs, mk = _opt(lower_bound, f_raw), _opt(reset, f_raw), _opt(mask, f_raw)
    carry = initial_state
    if nc > 1:
        sa = torch.empty(B, nc, D, dtype=torch.float32, device=f_raw.device)  # [B, NC, D]
        sh = torch.empty_like(sa)  # [B, NC, D]
        _fwd_summary_kernel[(triton.cdiv(D, bd), nc, B)](
            f_raw, c_raw, lb, rs, mk, sa, sh, T, D, nc, bt, BD=bd, **flags
        )
        carry = torch.empty_like(sa)  # [B, NC, D]
        _carry_kernel[(triton.cdiv(D, bd), B)](
            sa,
            sh,
            _opt(initial_state, sa),
            carry,
            D,
            nc,
            BD=bd,
            HAS_START=initial_state is not None,
            REVERSE=False,
        )
    _fwd_kernel[(triton.cdiv(D, bd), nc, B)](
        f_raw,
        c_raw,
        lb,
        rs,
        mk,
        _opt(carry, final),
        h,
        final,
        T,
        D,
        nc,
        bt,
        BD=bd,
        HAS_CARRY=carry is not None,
        **flags,
    )
    return h, final


def mlgru_bwd(dh, dfinal, f_raw, c_raw, lower_bound, initial_state, reset, mask, h, chunk_size=None):
    """Backward launcher: returns df_raw, dc_raw (input dtypes), dlower_bound `[D]` fp32 | None, dh0 `[B, D]` fp32."""
    B, T, D = f_raw.shape
    bt, nc, bd = _plan(T, chunk_size)
    lb, rs, mk = _opt(lower_bound, f_raw), _opt(reset, f_raw), _opt(mask, f_raw)
    dev = f_raw.device
    carry = dfinal
    if nc > 1:
        sm = torch.empty(B, nc, D, dtype=torch.float32, device=dev)  # [B, NC, D]
        sn = torch.empty_like(sm)  # [B, NC, D]
        _bwd_summary_kernel[(triton.cdiv(D, bd), nc, B)](
            f_raw,
            lb,
            rs,
            dh,
            sm,
            sn,
            T,
            D,
            nc,
            bt,
            BD=bd,
            HAS_LB=lower_bound is not None,
            HAS_RESET=reset is not None,
        )
        carry = torch.empty_like(sm)  # [B, NC, D]
        _carry_kernel[(triton.cdiv(D, bd), B)](
            sm, sn, _opt(dfinal, sm), carry, D, nc, BD=bd, HAS_START=dfinal is not None, REVERSE=True
        )
    df = torch.empty_like(f_raw)  # [B, T, D]
    dc = torch.empty_like(c_raw)  # [B, T, D]
    dh0 = torch.empty(B, D, dtype=torch.float32, device=dev)  # [B, D]
    dlb = (
        torch.empty(B, nc, D, dtype=torch.float32, device=dev) if lower_bound is not None else None
    )  # [B, NC, D]
    _bwd_kernel[(triton.cdiv(D, bd), nc, B)](
        f_raw,
        c_raw,
        lb,
        _opt(initial_state, dh0),
        rs,
        mk,
        h,
        dh,
        _opt(carry, dh0),
        df,
        dc,
        dh0,
        _opt(dlb, dh0),
        T,
        D,
        nc,
        bt,
        BD=bd,
        HAS_CARRY=carry is not None,
        HAS_H0=initial_state is not None,
        HAS_LB=lower_bound is not None,
        HAS_RESET=reset is not None,
        HAS_MASK=mask is not None,
    )
    return df, dc, (dlb.sum((0, 1)) if dlb is not None else None), dh0


def _pick_form(B: int, T: int, D: int, chunk_size: int | None, form: str) -> str:
    """The kernel family that runs: "tiled", "lookback" or "chunked" (chunked / fused-recurrent by T)."""
    if form not in _FORMS:
        raise ValueError(f"mlgru (triton): form must be one of {_FORMS}; got {form!r}")
    if form != "auto":
        return form
    strips = B * triton.cdiv(D, triton_tiled.fwd_config(B, D)[1])
    tiled = chunk_size is None and T >= TILED_MIN_T and strips >= TILED_MIN_PROGRAMS
    return "tiled" if tiled else "chunked"


class MLGRUFunction(torch.autograd.Function):
    """Autograd wrapper: (f_raw, c_raw, lower_bound, initial_state, reset, mask) -> (h, final_state)."""

    @staticmethod
    def forward(ctx, f_raw, c_raw, lower_bound, initial_state, reset, mask, chunk_size, form):
        if form == "tiled":
            h, final = triton_tiled.mlgru_fwd_tiled(f_raw, c_raw, lower_bound, initial_state, reset, mask)
        elif form == "lookback":
            h, final = triton_lookback.mlgru_fwd_lookback(
                f_raw, c_raw, lower_bound, initial_state, reset, mask
            )
        else:
            h, final = mlgru_fwd(f_raw, c_raw, lower_bound, initial_state, reset, mask, chunk_size)
        ctx.save_for_backward(f_raw, c_raw, lower_bound, initial_state, reset, mask, h)
        ctx.chunk_size = chunk_size
        ctx.form = form
        return h, final

    @staticmethod
    def backward(ctx, dh, dfinal):
        f_raw, c_raw, lower_bound, initial_state, reset, mask, h = ctx.saved_tensors
        dh = torch.zeros_like(h) if dh is None else dh.contiguous()
        dfinal = dfinal.contiguous() if dfinal is not None else None
        args = (dh, dfinal, f_raw, c_raw, lower_bound, initial_state, reset, mask, h)
        if ctx.form == "tiled":
            df, dc, dlb, dh0 = triton_tiled.mlgru_bwd_tiled(*args)
        elif ctx.form == "lookback":
            df, dc, dlb, dh0 = triton_lookback.mlgru_bwd_lookback(*args)
        else:
            df, dc, dlb, dh0 = mlgru_bwd(*args, ctx.chunk_size)
        dlb = dlb.to(lower_bound.dtype) if dlb is not None and ctx.needs_input_grad[2] else None
        dh0 = dh0.to(initial_state.dtype) if initial_state is not None and ctx.needs_input_grad[3] else None
        return df, dc, dlb, dh0, None, None, None, None


def mlgru_triton(
    f_raw: torch.Tensor,
    c_raw: torch.Tensor,
    lower_bound: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
    form: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused MLGRU gates + recurrence (forward and backward in Triton).

    Args:
        f_raw, c_raw: `[B, T, D]` forget / candidate pre-activations; lower_bound: `[D]` or None;
        initial_state: `[B, D]` or None; reset: `[B, T]` bool (True where a document starts);
        mask: `[B, T]` (1 real token, 0 padding); chunk_size: steps per chunk, None to choose by T
        (fused-recurrent up to `RECURRENT_MAX_T`, chunks of `CHUNK_SIZE` beyond); form: "tiled" (single
        pass), "lookback" (single pass over time chunks with a decoupled look-back, `triton_lookback`),
        "chunked" (the chunked / fused-recurrent forms, by chunk_size) or "auto" (tiled when no chunk_size is given, T >= `TILED_MIN_T` and there are >= `TILED_MIN_PROGRAMS` (batch, D-block) strips).
    Returns:
        h `[B, T, D]` in c_raw's dtype and the final state `[B, D]` fp32.
    """
    if f_raw.ndim != 3 or f_raw.shape != c_raw.shape:
        raise ValueError(
            f"mlgru: f_raw and c_raw must both be [B, T, D]; got {tuple(f_raw.shape)}, {tuple(c_raw.shape)}"
        )
    B, T, D = f_raw.shape
    if lower_bound is not None and tuple(lower_bound.shape) != (D,):
        raise ValueError(f"mlgru: lower_bound must be [{D}]; got {tuple(lower_bound.shape)}")
    if initial_state is not None and tuple(initial_state.shape) != (B, D):
        raise ValueError(f"mlgru: initial_state must be [{B}, {D}]; got {tuple(initial_state.shape)}")
    for name, m in (("reset", reset), ("mask", mask)):
        if m is not None and tuple(m.shape) != (B, T):
            raise ValueError(f"mlgru: {name} must be [{B}, {T}]; got {tuple(m.shape)}")
    picked = _pick_form(B, T, D, chunk_size, form)
    reset = reset.to(torch.int8).contiguous() if reset is not None else None
    mask = mask.to(torch.float32).contiguous() if mask is not None else None
    return MLGRUFunction.apply(
        f_raw.contiguous(),
        c_raw.contiguous(),
        lower_bound,
        initial_state.contiguous() if initial_state is not None else None,
        reset,
        mask,
        chunk_size,
        picked,
    )
