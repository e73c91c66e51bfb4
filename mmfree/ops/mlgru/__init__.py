"""MLGRU recurrence op with one dispatch point, plus helpers for document resets."""

from __future__ import annotations

import torch

from mmfree.ops.backend import use_triton
from mmfree.ops.mlgru.naive import (
    mlgru_gated_naive,
    mlgru_gates,
    mlgru_scan_parallel,
    mlgru_scan_sequential,
)


def reset_from_cu_seqlens(cu_seqlens: torch.Tensor, total: int) -> torch.Tensor:
    """`[1, total]` bool reset mask from cumulative document lengths `[N + 1]` (varlen packing)."""
    if cu_seqlens.ndim != 1 or int(cu_seqlens[0]) != 0 or int(cu_seqlens[-1]) != total:
        raise ValueError(
            f"cu_seqlens must be 1-D, start at 0 and end at the packed length {total}; got {cu_seqlens.tolist()}"
        )
    reset = torch.zeros(1, total, dtype=torch.bool, device=cu_seqlens.device)
    starts = cu_seqlens[1:-1].long()
    reset[0, starts[starts < total]] = True
    return reset


def reset_from_eos(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """`[B, T]` bool: True at every position right after an EOS token (a new document starts there)."""
    reset = torch.zeros_like(input_ids, dtype=torch.bool)
    reset[:, 1:] = input_ids[:, :-1] == eos_token_id
    return reset


def mlgru(
    f_raw: torch.Tensor,
    c_raw: torch.Tensor,
    lower_bound: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused MLGRU gates and recurrence.

    Args:
        f_raw: `[B, T, D]` forget-gate pre-activation; c_raw: `[B, T, D]` candidate pre-activation.
        lower_bound: `[D]` forget-gate lower bound or None.
        initial_state: `[B, D]` (fp32 recommended) or None for zeros.
        reset: `[B, T]` bool, True where a document starts (state dropped before that step).
        mask: `[B, T]` 1 for real tokens, 0 for (left) padding.
    Returns:
        h `[B, T, D]` in c_raw's dtype, final state `[B, D]` fp32.
    """
    if f_raw.shape != c_raw.shape or f_raw.ndim != 3:
        raise ValueError(
            f"mlgru: f_raw and c_raw must both be [B, T, D]; got {tuple(f_raw.shape)}, {tuple(c_raw.shape)}"
        )
    B, T, D = f_raw.shape
    if initial_state is not None and tuple(initial_state.shape) != (B, D):
        raise ValueError(f"mlgru: initial_state must be [{B}, {D}]; got {tuple(initial_state.shape)}")
    for name, m in (("reset", reset), ("mask", mask)):
        if m is not None and tuple(m.shape) != (B, T):
            raise ValueError(f"mlgru: {name} must be [{B}, {T}]; got {tuple(m.shape)}")
    if use_triton("mlgru", f_raw, c_raw, backend=backend):
        from mmfree.ops.mlgru.triton import mlgru_triton

        return mlgru_triton(f_raw, c_raw, lower_bound, initial_state, reset, mask)
    return mlgru_gated_naive(f_raw, c_raw, lower_bound, initial_state, reset, mask, parallel=T > 1)


__all__ = [
    "mlgru",
    "mlgru_gated_naive",
    "mlgru_gates",
    "mlgru_scan_parallel",
    "mlgru_scan_sequential",
    "reset_from_cu_seqlens",
    "reset_from_eos",
]
