"""What a grid-wide barrier costs inside one persistent kernel, against a kernel boundary (decode design probe).

A batch-1 decode step is a chain of dependent phases (eight kernels per layer today, `fused.py` /
`prequant.py`), and BENCHMARKS.md finds the fixed cost per kernel, not the weight bytes, is what keeps the
1.3B and 13B steps above their targets. A persistent step kernel would replace each kernel boundary by a
grid barrier (an atomic counter every program adds to, then spins on) and could keep streaming weights
across it. This measures, on the GPU at hand:
- `barrier`: one program per SM, 4 warps, a loop of phases that only pass the barrier;
- `barrier + row`: each phase also reads a 5120-wide bf16 row written by the previous phase (L2, bypassing
  L1) and reduces it, as a redundant per-program RMSNorm would;
- `kernel boundary`: the same number of tiny dependent kernels (one program, one load and store each),
  replayed from a CUDA graph, which is how the decode step runs today.
Per phase, median of repeats (CUDA events).

    python benchmarks/grid_barrier.py [--phases 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime
import statistics

import torch
import triton
import triton.language as tl


@triton.jit
def _grid_sync(BAR, target):
    # every thread's stores of this phase precede the arrival; the spin reads with acquire at GPU scope
    tl.debug_barrier()
    tl.atomic_add(BAR, 1, sem="release", scope="gpu")
    seen = tl.atomic_add(BAR, 0, sem="acquire", scope="gpu")
    while seen < target:
        seen = tl.atomic_add(BAR, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit
def _persistent_kernel(BAR, X, OUT, P, PHASES, K: tl.constexpr, READ: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    k = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for ph in range(PHASES):
        if READ:
            # the row the previous phase wrote (two buffers alternate), read past L1
            v = tl.load(X + (ph % 2) * K + k, mask=k < K, other=0.0, cache_modifier=".cg").to(tl.float32)
            acc += v * (1.0 / tl.sqrt(tl.sum(v * v, axis=0) / K + 1e-6))
            if pid == 0:
                tl.store(X + ((ph + 1) % 2) * K + k, v.to(X.dtype.element_ty), mask=k < K)
        _grid_sync(BAR, (ph + 1) * P)
    tl.store(OUT + pid * BLOCK + k, acc)


@triton.jit
def _step_kernel(X, Y, K: tl.constexpr, BLOCK: tl.constexpr):
    k = tl.arange(0, BLOCK)
    v = tl.load(X + k, mask=k < K, other=0.0)
    tl.store(Y + k, v, mask=k < K)


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phases", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("grid_barrier.py needs a CUDA GPU")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    K, BLOCK = 5120, 8192
    x = torch.randn(2 * K, device="cuda", dtype=torch.bfloat16)  # [2 K]: the two alternating rows
    rows = []
    for programs in (sms, 2 * sms):
        out = torch.empty(programs * BLOCK, device="cuda")  # [P, BLOCK]
        for read in (False, True):
            bar = torch.zeros(1, dtype=torch.int32, device="cuda")

            def run(bar=bar, out=out, programs=programs, read=read) -> None:
                bar.zero_()
                _persistent_kernel[(programs,)](
                    bar, x, out, programs, args.phases, K=K, READ=read, BLOCK=BLOCK, num_warps=4
                )

            run()
            torch.cuda.synchronize()
            ms = _time(run, args.repeats)
            label = f"barrier{' + row' if read else ''}, {programs} programs"
            rows.append((label, ms * 1e3 / args.phases))
    ys = [torch.empty(K, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
    _step_kernel[(1,)](x, ys[0], K=K, BLOCK=BLOCK, num_warps=4)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(args.phases):
            _step_kernel[(1,)](ys[i % 2], ys[(i + 1) % 2], K=K, BLOCK=BLOCK, num_warps=4)
    graph.replay()
    torch.cuda.synchronize()
    rows.append(
        ("kernel boundary (CUDA graph, 1 program)", _time(graph.replay, args.repeats) * 1e3 / args.phases)
    )
    tag = (
        f"{torch.cuda.get_device_name()[:22]} {datetime.date.today().isoformat()} triton {triton.__version__}"
    )
    print(f"{'run':<44} {'phase':<44} {'us/phase':>9}")
    for label, us in rows:
        print(f"{tag:<44} {label:<44} {us:>9.2f}")


if __name__ == "__main__":
    main()
