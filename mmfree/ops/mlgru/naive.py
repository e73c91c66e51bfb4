"""Reference MLGRU recurrence `h_t = f_t * h_{t-1} + i_t` (element-wise, fp32 state).

Two forms that agree: a sequential loop (the spec) and a parallel prefix scan (Hillis-Steele doubling
over affine maps, O(T log T) work, no division or logarithm, so gates of exactly 0 are fine).
`reset[b, t] = True` drops the carried state before step t (a new document starts there), so packed
pretraining sequences never leak state across documents. `mlgru_gated_naive` adds the gate math the
fused kernel folds in: `f = lb + (1 - lb) * sigmoid(f_raw)`, `i = SiLU(c_raw) * (1 - f)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _carry(f: torch.Tensor, reset: torch.Tensor | None) -> torch.Tensor:
    """The fp32 decay that multiplies h_{t-1}: f, zeroed where a document starts."""
    a = f.float()  # [B, T, D]
    if reset is not None:
        a = a.masked_fill(reset.unsqueeze(-1), 0.0)
    return a


def mlgru_scan_sequential(
    f: torch.Tensor,
    i: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step-by-step recurrence. f, i `[B, T, D]`; initial_state `[B, D]`; reset `[B, T]` bool.

    Returns h `[B, T, D]` in i's dtype and the final state `[B, D]` in fp32.
    """
    a = _carry(f, reset)
    b = i.float()
    h = (
        f.new_zeros(f.shape[0], f.shape[2], dtype=torch.float32)
        if initial_state is None
        else initial_state.float()
    )
    out = []
    for t in range(f.shape[1]):
        h = a[:, t] * h + b[:, t]  # [B, D]
        out.append(h)
    hs = torch.stack(out, dim=1) if out else b.new_zeros(b.shape)  # [B, T, D]
    return hs.to(i.dtype), h


def mlgru_scan_parallel(
    f: torch.Tensor,
    i: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `mlgru_scan_sequential`, computed as a log-depth prefix scan."""
    a = _carry(f, reset)  # [B, T, D]
    b = i.float()  # [B, T, D]
    if initial_state is not None:
        b = torch.cat([(a[:, :1] * initial_state.float().unsqueeze(1) + b[:, :1]), b[:, 1:]], dim=1)
        a = torch.cat([torch.zeros_like(a[:, :1]), a[:, 1:]], dim=1)
    T = a.shape[1]
    shift = 1
    while shift < T:
        # compose each map with the one `shift` steps earlier: (a, b) o (a', b') = (a a', a b' + b)
        a_prev = F.pad(a[:, :-shift], (0, 0, shift, 0), value=1.0)  # [B, T, D]
        b_prev = F.pad(b[:, :-shift], (0, 0, shift, 0), value=0.0)  # [B, T, D]
        b = a * b_prev + b
        a = a * a_prev
        shift *= 2
    final = (
        b[:, -1]
        if T > 0
        else (initial_state.float() if initial_state is not None else b.new_zeros(b.shape[0], b.shape[2]))
    )
    return b.to(i.dtype), final


def mlgru_gates(
    f_raw: torch.Tensor, c_raw: torch.Tensor, lower_bound: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate math of MLGRU: `f = lb + (1 - lb) * sigmoid(f_raw)`, `i = SiLU(c_raw) * (1 - f)`.

    f_raw, c_raw `[B, T, D]`; lower_bound `[D]` or None. Returns f, i `[B, T, D]` in fp32.
    """
    f = torch.sigmoid(f_raw.float())
    if lower_bound is not None:
        lb = lower_bound.float()
        f = lb + (1.0 - lb) * f
    i = F.silu(c_raw.float()) * (1.0 - f)
    return f, i


def mlgru_gated_naive(
    f_raw: torch.Tensor,
    c_raw: torch.Tensor,
    lower_bound: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    parallel: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gates plus recurrence. `mask [B, T]` (1 keep, 0 pad) zeroes the input of padded steps.

    Returns h `[B, T, D]` in c_raw's dtype and the final state `[B, D]` fp32.
    """
    f, i = mlgru_gates(f_raw, c_raw, lower_bound)
    if mask is not None:
        i = i * mask.unsqueeze(-1).to(i.dtype)
    scan = mlgru_scan_parallel if parallel else mlgru_scan_sequential
    h, final = scan(f, i, initial_state, reset)
    return h.to(c_raw.dtype), final
