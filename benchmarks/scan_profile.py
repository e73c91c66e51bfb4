"""Runs each MLGRU scan kernel a few times at the training shapes, for a hardware profile under Nsight Compute.

The tiled forward and backward (`triton_tiled`, default tiles) and the look-back forward (`triton_lookback`),
bf16, T=2048, at the 370M width D=1024 with B=8 and B=32 and the 1.3B width D=2048 with B=8: one forward
per shape for the backward's h, two warm-up rounds, then one call each that `ncu` captures. Run as

    ncu --clock-control none -k regex:"_fwd_tiled_kernel|_bwd_tiled_kernel|^_fwd_kernel$" \\
        --launch-skip 21 --launch-count 9 --section SpeedOfLight --section Occupancy \\
        --section WarpStateStats --section MemoryWorkloadAnalysis python3 benchmarks/scan_profile.py

(the filter leaves out the look-back's zero-fill; the skip covers 3 + 2 x 9 launches). Alone, it prints the
time of each captured call (one call, not a median: the timings of record come from `kernels.py`).
"""

from __future__ import annotations

import torch

from mmfree.ops.mlgru import triton_lookback as lk
from mmfree.ops.mlgru import triton_tiled as tt


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("scan_profile.py needs a CUDA GPU")
    T = 2048
    cases = []
    for B, D in ((8, 1024), (32, 1024), (8, 2048)):
        f = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)  # [B, T, D]
        c = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)  # [B, T, D]
        lb = torch.rand(D, device="cuda")  # [D]
        dh = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)  # [B, T, D]
        h, _ = tt.mlgru_fwd_tiled(f, c, lb, None, None, None)  # [B, T, D]
        cases += [
            (
                f"tiled fwd B={B} D={D}",
                lambda f=f, c=c, lb=lb: tt.mlgru_fwd_tiled(f, c, lb, None, None, None),
            ),
            (
                f"tiled bwd B={B} D={D}",
                lambda f=f, c=c, lb=lb, dh=dh, h=h: tt.mlgru_bwd_tiled(
                    dh, None, f, c, lb, None, None, None, h
                ),
            ),
            (
                f"look-back fwd B={B} D={D}",
                lambda f=f, c=c, lb=lb: lk.mlgru_fwd_lookback(f, c, lb, None, None, None),
            ),
        ]
    for _ in range(2):
        for _, fn in cases:
            fn()
    torch.cuda.synchronize()
    for label, fn in cases:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        print(f"{label:<27} {start.elapsed_time(end):.3f} ms (one call; under ncu, replayed per section)")


if __name__ == "__main__":
    main()
