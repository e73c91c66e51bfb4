"""The greedy token pick (argmax over each row of the logits), with one dispatch point
(`MMFREE_BACKEND=auto|triton|torch`)."""

from __future__ import annotations

import torch

from mmfree.ops.argmax import naive
from mmfree.ops.backend import use_triton


def argmax_rows(
    logits: torch.Tensor, out: torch.Tensor | None = None, pdl: bool = False, backend: str | None = None
) -> torch.Tensor:
    """logits `[B, V]` -> `[B]` int64 (into `out` when given): the first index of each row's largest value.

    `pdl` (Triton on sm_90+) lets the launch overlap the kernel before it, as the fused decode step's do."""
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"argmax_rows: logits must be [B, V] with V >= 1; got {tuple(logits.shape)}")
    if out is not None and (
        out.shape != (logits.shape[0],) or out.dtype != torch.long or out.device != logits.device
    ):
        raise ValueError(
            f"argmax_rows: out must be a [{logits.shape[0]}] int64 tensor on {logits.device}; "
            f"got {tuple(out.shape)} {out.dtype} on {out.device}"
        )
    if use_triton("argmax_rows", logits, backend=backend):
        from mmfree.ops.argmax.triton import argmax_rows_triton

        return argmax_rows_triton(logits, out, pdl=pdl and logits.is_cuda)
    return naive.argmax_rows(logits, out)


__all__ = ["argmax_rows"]
