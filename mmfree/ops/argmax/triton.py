"""The greedy token pick as one Triton launch in the decode step's programmatic-dependent-launch chain.

`torch.argmax` after the fused decode step is a separate launch that cannot start before the head's GEMV has
finished; this kernel launches while the head runs (PDL, sm_90+), waits for it, then reduces each row of the
logits held in registers: a `[T, E]` tile of up to `MAX_BLOCK` values per pass, first index on ties.
NaN counts as +inf (torch returns a NaN's index; here a +inf before it would win instead).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mmfree.ops.ternary.fused_parts import _wait_inputs

MAX_BLOCK = 32768  # values of one pass: 32 a thread at 32 warps
WARPS = 32


@triton.jit
def _argmax_kernel(X, OUT, V, stride_x, stride_v, PDL: tl.constexpr, BLOCK: tl.constexpr):
    # program `row`: OUT[row] = the first index of the largest X[row, :V] (NaN as +inf)
    row = tl.program_id(0)
    _wait_inputs(PDL)
    k = tl.arange(0, BLOCK)
    best_v = -float("inf")
    best_i = 0
    for start in range(0, V, BLOCK):
        kk = start + k  # [BLOCK]
        v = tl.load(X + row * stride_x + kk * stride_v, mask=kk < V, other=-float("inf")).to(tl.float32)
        v = tl.where(v != v, float("inf"), v)
        m, i = tl.max(v, axis=0, return_indices=True, return_indices_tie_break_left=True)
        take = (m > best_v) | (start == 0)  # a later pass wins only with a strictly larger value
        best_i = tl.where(take, start + i, best_i)
        best_v = tl.where(take, m, best_v)
    tl.store(OUT + row, best_i.to(tl.int64))


def argmax_rows_triton(
    logits: torch.Tensor, out: torch.Tensor | None = None, pdl: bool = False
) -> torch.Tensor:
    """logits `[B, V]` (any strides) -> out `[B]` int64, the first index of each row's
    largest value; `pdl` launches it as a programmatic dependent of the kernel before (sm_90+)."""
    B, V = logits.shape
    if out is None:
        out = torch.empty(B, dtype=torch.long, device=logits.device)
    block = min(MAX_BLOCK, triton.next_power_of_2(V))
    kw = {"launch_pdl": True} if pdl else {}
    _argmax_kernel[(B,)](
        logits, out, V, logits.stride(0), logits.stride(1), PDL=pdl, BLOCK=block, num_warps=WARPS, **kw
    )
    return out
