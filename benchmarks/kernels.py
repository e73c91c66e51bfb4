"""Kernel microbenchmarks: fused BitLinear and the MLGRU scan against the GPU's own ceilings, one table.

- BitLinear forward and forward+backward at the 370M / 1.3B projection shapes (M = 8 x 2048 tokens), for
  each GEMM path of the fused op (Triton int8 with fused epilogue, torch._int_mm + scale pass, bf16), the
  plain-PyTorch reference, and a bare bf16 `x @ W^T` (the peer: what an unquantized linear costs).
- MLGRU forward and backward (B=8 and B=32 at T=2048, D=1024; B=8, D=2048; bf16), each form (tiled, look-back,
  chunked, fused-recurrent), in GB/s of the minimum traffic
  (forward: read f, c, write h; backward: read f, c, h, dh, write df, dc), against the device-to-device copy
  bandwidth measured in the same run (peer), plus flash-linear-attention's HGRN ops when `fla` imports.
  Each is timed per call of `BACK_TO_BACK` calls in a row (a call's CPU time overlaps the GPU, as in a
  training step).
- The bf16 matmul rate (8192^3) measured in the same run, for scale.
- `--sweep-int8`: the fused BitLinear's int8 GEMM (`_int8_matmul_kernel`, scales in the epilogue) at each
  `(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)` of INT8_SWEEP on the 370M / 1.3B training shapes
  (M = 16384), against torch._int_mm and a bf16 `x @ W^T` of the same shape (peer); every config must give
  the current config's bits (int32 sums are exact).
- `--sweep`: the tiled MLGRU kernels alone at each `(CT, BD, num_warps, V, S[, A])` tile config (plain and MUFU
  sigmoid, or MUFU only with `--sweep-fast-only`) at each `--sweep-shapes`, and
  `--sweep-lookback` the look-back kernels at each `(CT, BD, num_warps, rowwise)` config, at B=8 and B=32
  (the best installed).

Medians of `triton.testing.do_bench`. Every row names device, date and versions.

    python benchmarks/kernels.py [--quick] [--sweep] [--sweep-lookback] [--only mlgru|bitlinear|none]
"""

from __future__ import annotations

import argparse
import datetime
import importlib
from collections.abc import Callable

import torch
import triton
from triton.testing import do_bench

ROWS: list[tuple[str, str, str, float, str, str]] = []  # (group, case, impl, ms, rate, ratio)


def bench(fn: Callable[[], object], quick: bool) -> float:
    """Median milliseconds of fn."""
    return do_bench(fn, warmup=10 if quick else 25, rep=30 if quick else 100, return_mode="median")


def add(group: str, case: str, impl: str, ms: float, rate: str, ratio: str = "-") -> None:
    ROWS.append((group, case, impl, ms, rate, ratio))


def ceilings(quick: bool) -> tuple[float, float]:
    """(copy GB/s, bf16 matmul TFLOP/s) measured now."""
    n = 1 << 28  # 512 MiB of bf16
    src = torch.empty(n, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src), quick)
    copy_gbs = 2 * src.numel() * 2 / ms / 1e6
    add("ceiling", "copy 512MiB d2d", "torch copy_", ms, f"{copy_gbs:.0f} GB/s")
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = bench(lambda: a @ a, quick)
    tflops = 2 * 8192**3 / ms / 1e9
    add("ceiling", "matmul 8192^3 bf16", "torch @", ms, f"{tflops:.0f} TFLOP/s")
    return copy_gbs, tflops


def bench_bitlinear(quick: bool) -> None:
    from mmfree.ops.bitlinear import bitlinear_naive

    mod = importlib.import_module("mmfree.ops.bitlinear.triton")
    M = 8 * 2048
    shapes = [
        ("370m qkv/o", 1024, 1024),
        ("370m gate", 1024, 5632),
        ("370m down", 2816, 1024),
        ("1.3b qkv/o", 2048, 2048),
        ("1.3b gate", 2048, 11264),
        ("1.3b down", 5632, 2048),
    ]
    if quick:
        shapes = shapes[:3]
    for name, K, N in shapes:
        _bitlinear_case(mod, bitlinear_naive, name, M, K, N, quick)


def _bitlinear_case(mod, bitlinear_naive, name: str, M: int, K: int, N: int, quick: bool) -> None:
    x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16, requires_grad=True)  # [M, K]
    nw = torch.ones(K, device="cuda", dtype=torch.bfloat16, requires_grad=True)  # [K]
    w = (torch.randn(N, K, device="cuda") * 0.02).to(torch.bfloat16).requires_grad_(True)  # [N, K]
    dy = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)  # [M, N]
    flops = 2 * M * N * K
    case = f"{name} M={M} K={K} N={N}"
    peer_fwd = bench(lambda: x @ w.t(), quick)
    peer_all = bench(lambda: torch.autograd.grad(x @ w.t(), (x, w), dy), quick)
    add(
        "bitlinear fwd",
        case,
        "bf16 x@W^T (peer)",
        peer_fwd,
        f"{flops / peer_fwd / 1e9:.0f} TFLOP/s",
        "1.00x",
    )
    add(
        "bitlinear fwd+bwd",
        case,
        "bf16 x@W^T (peer)",
        peer_all,
        f"{3 * flops / peer_all / 1e9:.0f} TFLOP/s",
        "1.00x",
    )
    impls: list[tuple[str, Callable[..., torch.Tensor]]] = [("naive reference", bitlinear_naive)]
    for mode in ("triton", "torch", "bf16"):
        impls.append((f"fused int8={mode}", lambda a, b, c, _m=mode: _with_mode(mod, _m, a, b, c)))
    for label, fn in impls:
        fwd = bench(lambda fn=fn: fn(x, nw, w), quick)
        both = bench(lambda fn=fn: torch.autograd.grad(fn(x, nw, w), (x, nw, w), dy), quick)
        add(
            "bitlinear fwd",
            case,
            label,
            fwd,
            f"{flops / fwd / 1e9:.0f} TFLOP/s",
            f"{peer_fwd / fwd:.2f}x",
        )
        add(
            "bitlinear fwd+bwd",
            case,
            label,
            both,
            f"{3 * flops / both / 1e9:.0f} TFLOP/s",
            f"{peer_all / both:.2f}x",
        )


def _with_mode(mod, mode: str, x: torch.Tensor, nw: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    old = mod.INT8_GEMM
    mod.INT8_GEMM = mode
    try:
        return mod.bitlinear_triton(x, nw, w)
    finally:
        mod.INT8_GEMM = old


BACK_TO_BACK = 10  # calls per timed run of the MLGRU microbenchmarks


def bench_mlgru(quick: bool, copy_gbs: float) -> None:
    from mmfree.ops.mlgru.triton import mlgru_triton

    try:
        from fla.ops.hgrn import chunk_hgrn, fused_recurrent_hgrn
    except ImportError:
        chunk_hgrn = fused_recurrent_hgrn = None
    T = 2048
    for B, D in ((8, 1024), (32, 1024)) if quick else ((8, 1024), (32, 1024), (8, 2048)):
        _mlgru_case(mlgru_triton, chunk_hgrn, fused_recurrent_hgrn, B, T, D, quick, copy_gbs)


def _mlgru_case(
    mlgru_triton, chunk_hgrn, fused_recurrent_hgrn, B: int, T: int, D: int, quick: bool, copy_gbs: float
) -> None:
    f = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)  # [B, T, D]
    c = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)  # [B, T, D]
    lb = torch.rand(D, device="cuda", requires_grad=True)  # [D]
    dh = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)  # [B, T, D]
    unit = B * T * D * 2  # bytes of one bf16 [B, T, D] tensor
    case = f"B={B} T={T} D={D}"
    impls: list[tuple[str, Callable[[], torch.Tensor]]] = [
        ("mmfree auto (tiled)", lambda: mlgru_triton(f, c, lb)[0]),
        ("mmfree lookback", lambda: mlgru_triton(f, c, lb, form="lookback")[0]),
        ("mmfree chunked", lambda: mlgru_triton(f, c, lb, form="chunked")[0]),
        ("mmfree recurrent", lambda: mlgru_triton(f, c, lb, chunk_size=T)[0]),
    ]
    if chunk_hgrn is not None:
        g = torch.randn(B, T, D, device="cuda").sigmoid().log().to(torch.bfloat16).requires_grad_(True)
        impls += [
            ("fla chunk_hgrn", lambda: chunk_hgrn(f, g)[0]),
            ("fla fused_recurrent_hgrn", lambda: fused_recurrent_hgrn(f, g)[0]),
        ]
    else:
        add("mlgru fwd", case, "fla hgrn", float("nan"), "not installed")
    for label, fn in impls:
        # per call of BACK_TO_BACK calls in a row: the GPU time of a call, as in a training step, where
        # launches queue ahead (one call alone would add its CPU time, about 0.1 ms for an autograd backward)
        fwd = bench(lambda fn=fn: [fn() for _ in range(BACK_TO_BACK)], quick) / BACK_TO_BACK
        out = fn()
        grad = lambda out=out: torch.autograd.grad(out, (f,), dh, retain_graph=True)  # noqa: E731
        bwd = bench(lambda grad=grad: [grad() for _ in range(BACK_TO_BACK)], quick) / BACK_TO_BACK
        gbs_f, gbs_b = 3 * unit / fwd / 1e6, 6 * unit / bwd / 1e6
        add("mlgru fwd", case, label, fwd, f"{gbs_f:.0f} GB/s", f"{gbs_f / copy_gbs:.2f}x copy")
        add("mlgru bwd", case, label, bwd, f"{gbs_b:.0f} GB/s", f"{gbs_b / copy_gbs:.2f}x copy")


# (CT, BD, num_warps, V, S[, A]) of the tiled kernels (the layouts: `mmfree.ops.mlgru.triton_tiled.FWD_TILES`)
SWEEP: list[tuple[int, ...]] = [
    (64, 64, 4, 2, 4),  # the tables' tiles (A: forward 1, backward 1 with one segment, else 0)
    (128, 64, 4, 2, 4),
    (128, 32, 8, 0, 8),
    (64, 32, 4, 0, 4),
    (32, 128, 4, 2, 2),
    (32, 64, 4, 2, 4),
    (128, 32, 8, 0, 8, 2),  # A: tiles loaded ahead (latency-bound batch 8: 16 tiles per strip in a row)
    (64, 32, 8, 0, 8, 2),
    (128, 32, 8, 0, 8, 1),
    (64, 32, 8, 0, 8, 1),
    (64, 64, 4, 2, 4, 2),
    (32, 64, 2, 2, 2, 2),
    (32, 128, 4, 2, 2, 1),
    (32, 64, 4, 2, 4, 1),
    (64, 32, 4, 0, 4, 1),
    (64, 32, 4, 0, 4, 2),
]
# session 8's sweeps also timed (CT, BD, W, V, S) = (16-128, 16|32, 1-4, 1, 1), (16-64, 32|64, 1|2, 0, 1),
# (32, 64, 1, 2, 1), (16-64, 32|64, 2|4, 0, 2), (32-256, 32, 4-16, 0, 4-16), (16-256, 64|128, 2-16, 2, 2-16):
# the fastest at each shape are in the tables (BENCHMARKS.md). Static sm_90 SASS (triton 3.6) of this list:
# no forward spills; the backward spills at 128x64x4x2x4 and, with A=2, 64x64x4x2x4 and 32x64x2x2x2 (kept:
# the timing decides)


def _sweep_inputs(B: int, T: int, D: int) -> tuple[torch.Tensor, ...]:
    """Random bf16 MLGRU inputs on the GPU and the tiled kernels' outputs on them (the sweeps' reference):
    (f_raw, c_raw, lower_bound, dh, h, df, dc)."""
    from mmfree.ops.mlgru import triton_tiled as tt

    f = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)  # [B, T, D]
    c = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)  # [B, T, D]
    lb = torch.rand(D, device="cuda")  # [D]
    dh = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)  # [B, T, D]
    h, _ = tt.mlgru_fwd_tiled(f, c, lb, None, None, None)  # [B, T, D]
    df, dc, _, _ = tt.mlgru_bwd_tiled(dh, None, f, c, lb, None, None, None, h)  # [B, T, D] each
    return f, c, lb, dh, h, df, dc


def err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max absolute error of `a` relative to the largest magnitude of `b`."""
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def sweep_mlgru(
    quick: bool,
    copy_gbs: float,
    save: str | None,
    shapes: tuple[tuple[int, int], ...] = ((8, 1024), (32, 1024)),
    fast_only: bool = False,
) -> None:
    """Tiled MLGRU kernels alone (no autograd) at each tile config, at each (B, D) of `shapes`, T=2048.

    Each config runs with the plain sigmoid and with `FAST_SIGMOID` (only the latter if `fast_only`). Its h,
    df and dc are checked against the default tiles' (max error / max value < 1e-2); the fastest matching
    config per batch is printed (the tables `FWD_TILES` / `BWD_TILES` are chosen from these), and the
    fastest summed over the shapes is written to `save`.
    """
    from mmfree.ops.mlgru import triton_tiled as tt

    # (direction, B, D, (config, MUFU sigmoid)) -> ms, inf if wrong
    times: dict[tuple[str, int, int, tuple[tuple[int, ...], bool]], float] = {}
    variants: list[tuple[tuple[int, ...], bool]] = [
        (cfg, fast) for cfg in SWEEP for fast in ((True,) if fast_only else (False, True))
    ]
    fast_before = tt.FAST_SIGMOID
    for B, D in shapes:
        f, c, lb, dh, h_ref, df_ref, dc_ref = _sweep_inputs(B, 2048, D)
        unit = f.numel() * 2
        for direction in ("fwd", "bwd"):
            for cfg, fast in variants:
                tt.FAST_SIGMOID = fast
                case = f"B={B} D={D} {'x'.join(map(str, cfg))}{' fast' if fast else ''}"
                times[(direction, B, D, (cfg, fast))] = float("inf")
                try:
                    if direction == "fwd":
                        args = (f, c, lb, None, None, None, cfg)
                        ok = err(tt.mlgru_fwd_tiled(*args)[0], h_ref) < 1e-2
                        ms = bench(lambda args=args: tt.mlgru_fwd_tiled(*args), quick)
                    else:
                        args = (dh, None, f, c, lb, None, None, None, h_ref, cfg)
                        df, dc, _, _ = tt.mlgru_bwd_tiled(*args)
                        ok = max(err(df, df_ref), err(dc, dc_ref)) < 1e-2
                        ms = bench(lambda args=args: tt.mlgru_bwd_tiled(*args), quick)
                except Exception as e:  # a config the compiler rejects (e.g. out of resources) is reported
                    add(f"mlgru sweep {direction}", case, "error", float("nan"), type(e).__name__[:14])
                    continue
                finally:
                    tt.FAST_SIGMOID = fast_before
                gbs = (3 if direction == "fwd" else 6) * unit / ms / 1e6
                tag = "tiled kernel" if ok else "MISMATCH"
                add(
                    f"mlgru sweep {direction}",
                    case,
                    tag,
                    ms,
                    f"{gbs:.0f} GB/s",
                    f"{gbs / copy_gbs:.2f}x copy",
                )
                if ok:
                    times[(direction, B, D, (cfg, fast))] = ms
    best = {}
    for direction in ("fwd", "bwd"):
        for B, D in shapes:
            k = min(variants, key=lambda k, d=direction, B=B, D=D: times[(d, B, D, k)])
            print(
                f"best {direction} tile at B={B} D={D}: {k[0]} fast={k[1]} ({times[(direction, B, D, k)]:.3f} ms)"
            )
        best[direction] = min(variants, key=lambda k, d=direction: sum(times[(d, *bd, k)] for bd in shapes))
    line = ";".join(",".join(str(v) for v in best[d][0]) for d in ("fwd", "bwd"))
    fast = {d: best[d][1] for d in ("fwd", "bwd")}
    print(
        f"best tiles fwd;bwd (summed over the shapes) = {line}; FAST_SIGMOID fwd={fast['fwd']} bwd={fast['bwd']}"
    )
    if save:
        with open(save, "w") as fh:
            fh.write(line)


# (CT, BD, num_warps, rowwise) of the look-back kernels: BD = 32 * num_warps * (columns per thread) keeps the
# time scan inside each thread; rowwise walks CT rows of [BD] (two passes, tiny registers)
LOOKBACK_SWEEP: list[tuple[int, int, int, bool]] = [
    (8, 256, 1, False),
    (4, 256, 1, False),
    (16, 128, 1, False),
    (32, 64, 1, False),
    (8, 512, 2, False),
    (16, 256, 2, False),
    (64, 32, 1, False),
    (64, 64, 2, False),
    (32, 64, 4, False),
    (128, 64, 4, False),
    (16, 256, 1, True),
    (32, 256, 1, True),
    (32, 128, 1, True),
    (32, 512, 2, True),
]


def sweep_lookback(quick: bool, copy_gbs: float) -> None:
    """Look-back MLGRU kernels alone (no autograd) per config at B=8 and B=32 (T=2048, D=1024).

    h, df and dc are checked against the tiled kernels (max error / max value < 1e-2); the config with the
    lowest summed time over both batch sizes is installed for forward and for backward, and printed.
    """
    from mmfree.ops.mlgru import triton_lookback as lk

    totals: dict[tuple[int, int, int, bool], list[float]] = {cfg: [0.0, 0.0] for cfg in LOOKBACK_SWEEP}
    for B in (8, 32):
        _lookback_batch(B, 2048, 1024, quick, copy_gbs, totals)
    best_f = min(totals, key=lambda cfg: totals[cfg][0])
    best_b = min(totals, key=lambda cfg: totals[cfg][1])
    if totals[best_f][0] < float("inf") and totals[best_b][1] < float("inf"):
        lk.FWD_CONFIG, lk.BWD_CONFIG = best_f, best_b
        print(f"best lookback fwd={best_f} bwd={best_b}")


def _lookback_batch(
    B: int,
    T: int,
    D: int,
    quick: bool,
    copy_gbs: float,
    totals: dict[tuple[int, int, int, bool], list[float]],
) -> None:
    """One batch size of `sweep_lookback`: rows per config, times added to `totals` (inf on a mismatch)."""
    from mmfree.ops.mlgru import triton_lookback as lk

    f, c, lb, dh, h_ref, df_ref, dc_ref = _sweep_inputs(B, T, D)
    unit = f.numel() * 2

    for cfg in LOOKBACK_SWEEP:
        case = f"B={B} CT={cfg[0]} BD={cfg[1]} w={cfg[2]} row={int(cfg[3])}"
        try:
            h, _ = lk.mlgru_fwd_lookback(f, c, lb, None, None, None, cfg)
            df, dc, _, _ = lk.mlgru_bwd_lookback(dh, None, f, c, lb, None, None, None, h_ref, cfg)
            ok_f = err(h, h_ref) < 1e-2
            ok_b = max(err(df, df_ref), err(dc, dc_ref)) < 1e-2
            fwd = bench(lambda cfg=cfg: lk.mlgru_fwd_lookback(f, c, lb, None, None, None, cfg), quick)
            bwd = bench(
                lambda cfg=cfg: lk.mlgru_bwd_lookback(dh, None, f, c, lb, None, None, None, h_ref, cfg), quick
            )
        except Exception as e:  # a config the compiler rejects (e.g. out of resources) is reported
            add("mlgru lookback", case, "error", float("nan"), type(e).__name__[:14])
            totals[cfg] = [float("inf"), float("inf")]
            continue
        gbs_f, gbs_b = 3 * unit / fwd / 1e6, 6 * unit / bwd / 1e6
        tag_f, tag_b = ("lookback" if ok else "MISMATCH" for ok in (ok_f, ok_b))
        add("lookback sweep fwd", case, tag_f, fwd, f"{gbs_f:.0f} GB/s", f"{gbs_f / copy_gbs:.2f}x copy")
        add("lookback sweep bwd", case, tag_b, bwd, f"{gbs_b:.0f} GB/s", f"{gbs_b / copy_gbs:.2f}x copy")
        totals[cfg][0] += fwd if ok_f else float("inf")
        totals[cfg][1] += bwd if ok_b else float("inf")


# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) of the int8 GEMM sweep; the first is `_gemm_config`'s
INT8_SWEEP = (
    (128, 128, 128, 8, 4),
    (128, 256, 128, 8, 3),
    (256, 128, 128, 8, 3),
    (128, 256, 64, 8, 4),
    (256, 128, 64, 8, 4),
    (128, 128, 64, 4, 4),
    (128, 128, 128, 4, 4),
    (64, 256, 128, 4, 4),
    (128, 256, 128, 8, 4),
)


def sweep_int8(quick: bool) -> None:
    mod = importlib.import_module("mmfree.ops.bitlinear.triton")
    shapes = [("370m qkv/o", 1024, 1024), ("370m gate", 1024, 5632), ("370m down", 2816, 1024),
              ("1.3b qkv/o", 2048, 2048), ("1.3b gate", 2048, 11264), ("1.3b down", 5632, 2048)]  # fmt: skip
    original = mod._gemm_config
    totals: dict[tuple[int, int, int, int, int], float] = {}
    try:
        for name, K, N in shapes:
            _int8_case(mod, name, 8 * 2048, K, N, quick, totals)
    finally:
        mod._gemm_config = original
    for cfg, total in sorted(totals.items(), key=lambda kv: kv[1]):
        add("int8 sweep", "sum over shapes", "x".join(str(v) for v in cfg), total, "-")


def _int8_case(mod, name: str, M: int, K: int, N: int, quick: bool, totals: dict) -> None:
    """One shape of `sweep_int8`: the peers, then every INT8_SWEEP config (its time added to totals)."""
    q = torch.randint(-128, 128, (M, K), dtype=torch.int8, device="cuda")  # [M, K]
    codes = torch.randint(-1, 2, (N, K), dtype=torch.int8, device="cuda")  # [N, K]
    s = torch.rand(M, device="cuda") + 0.5  # [M]
    g = torch.tensor(0.02, device="cuda")
    xb = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)  # [M, K]
    wb = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)  # [N, K]

    def rate(ms: float) -> str:
        return f"{2 * M * N * K / ms / 1e9:.0f} TOP/s"

    def run() -> torch.Tensor:
        return mod.int8_linear(q, s, codes, g, None, torch.bfloat16)  # [M, N]

    peer = bench(lambda: xb @ wb.t(), quick)
    add("int8 sweep", name, "bf16 x @ W^T (peer)", peer, rate(peer), "1.00x")
    ms = bench(lambda: torch._int_mm(q, codes.t()), quick)
    add("int8 sweep", name, "torch._int_mm (no scale)", ms, rate(ms), f"{peer / ms:.2f}x")
    ref = run()
    for cfg in INT8_SWEEP:
        mod._gemm_config = lambda M_, N_, dev, cfg=cfg: cfg
        tag = "x".join(str(v) for v in cfg)
        try:
            ok = torch.equal(run(), ref)
            ms = bench(run, quick)
        except Exception as e:  # a config the compiler rejects (shared memory) is reported
            add("int8 sweep", name, tag, float("nan"), type(e).__name__[:14])
            totals[cfg] = float("inf")
            continue
        totals[cfg] = totals.get(cfg, 0.0) + (ms if ok else float("inf"))
        add("int8 sweep", name, tag + ("" if ok else " MISMATCH"), ms, rate(ms), f"{peer / ms:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="370M shapes and D=1024 only, shorter timing")
    p.add_argument("--sweep", action="store_true", help="also time the tiled MLGRU kernels per tile config")
    p.add_argument(
        "--sweep-shapes",
        type=lambda v: tuple(tuple(int(n) for n in part.split("x")) for part in v.split(",")),
        default=((8, 1024), (32, 1024)),
        help="with --sweep: the (batch x width) shapes, e.g. 8x1024,32x1024 (T=2048)",
    )
    p.add_argument("--sweep-lookback", action="store_true", help="time the look-back kernels per config only")
    p.add_argument("--sweep-int8", action="store_true", help="time the int8 GEMM per tile config only")
    p.add_argument("--only", choices=("all", "mlgru", "bitlinear", "none"), default="all")
    p.add_argument(
        "--mlgru-tiles",
        default="",
        help="the tiled MLGRU's tiles 'CT,BD,W,V[,S];CT,BD,W,V[,S]' (fwd;bwd) instead of its tables (--save-best)",
    )
    p.add_argument("--plain-sigmoid", action="store_true", help="the tiled MLGRU with FAST_SIGMOID off")
    p.add_argument("--sweep-fast-only", action="store_true", help="with --sweep: time only the MUFU sigmoid")
    p.add_argument(
        "--save-best",
        default=None,
        help="with --sweep: write the best tiles 'CT,BD,W,V,S[,A];CT,BD,W,V,S[,A]' here",
    )
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("kernels.py needs a CUDA GPU")
    copy_gbs, _ = ceilings(args.quick)
    if args.sweep:
        sweep_mlgru(args.quick, copy_gbs, args.save_best, args.sweep_shapes, args.sweep_fast_only)
    if args.sweep_lookback:
        sweep_lookback(args.quick, copy_gbs)
    if args.sweep_int8:
        sweep_int8(args.quick)
    from mmfree.ops.mlgru import triton_tiled

    if args.mlgru_tiles:
        triton_tiled.FWD_CONFIG, triton_tiled.BWD_CONFIG = triton_tiled.parse_tiles(args.mlgru_tiles)
    if args.plain_sigmoid:
        triton_tiled.FAST_SIGMOID = False
    if args.only in ("all", "mlgru"):
        bench_mlgru(args.quick, copy_gbs)
    if args.only in ("all", "bitlinear"):
        bench_bitlinear(args.quick)
    tag = (
        f"{torch.cuda.get_device_name()[:22]} {datetime.date.today().isoformat()} "
        f"torch {torch.__version__.split('+')[0]} triton {triton.__version__}"
    )
    head = f"{'run':<54} {'group':<18} {'case':<34} {'impl':<24} {'ms':>8} {'rate':>14} {'vs peer':>12}"
    print(head)
    print("-" * len(head))
    for group, case, impl, ms, rate, ratio in ROWS:
        print(f"{tag:<54} {group:<18} {case:<34} {impl:<24} {ms:>8.3f} {rate:>14} {ratio:>12}")


if __name__ == "__main__":
    main()
