"""Two probes of the batch-1 decode chain's fixed costs (H200, session 16; results in BENCHMARKS.md).

flag:  does a flag beat `griddepcontrol.wait` at the quantization -> GEMV boundary? A chain of (Q, G)
       pairs in one CUDA graph with programmatic dependent launch: Q, one program of 16 warps, waits for
       the G before it and turns a 5120-value row into int32 codes; G, 660 programs of 4 warps, loads a
       `[16, 320]` int32 weight tile, then waits for Q's codes (mode 0: `griddepcontrol.wait`; mode 1:
       spins on an acquire load of a flag Q sets with a release exchange), multiplies and stores.
split: the 13B-shaped MLGRU input GEMV (`prequant._mlgru_in_kernel`: three projections a program, each
       with its own activation words) against the three projections stacked into one weight and run as
       one `prequant._bitlinear_kernel` launch (one projection a program, three times the programs). GEMVs
       alone, one weight set per layer, CUDA graph, PDL; timing only (the stacked form reads one
       activation set for all three projections, as many words a program as the real split would).

tail:  does the last program of a GEMV, quantizing the row for the next GEMV, beat a quantization launch?
       A chain of 13B o_proj-shaped BitLinears (5120 x 5120, MODE 1 input: RMSNorm(x) * w1, then the
       BitLinear norm; residual add into x): the production pairs (`prequant.bitlinear_step`: quantization
       kernel, then the whole-tile GEMV) against one GEMV a layer whose programs count themselves on an
       atomic counter after their stores, the last one quantizing x for the next layer
       (`prequant._quant_row`, from L2 past L1) on its own 4 warps. `early`: every program lets the next
       GEMV launch after its wait (as today); `late`: only the last program does, before its quantization.

  python benchmarks/boundary_probes.py flag
  python benchmarks/boundary_probes.py split --widths 5120,2560
  python benchmarks/boundary_probes.py tail

Under TRITON_INTERPRET=1 (no GPU) `flag` runs two layers at small shapes and only checks that both modes
give the sums of W @ codes (tests/benchmarks/test_boundary_probes.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch
import triton
import triton.language as tl
from decode_kernels import timer  # benchmarks/ (the script's own folder)
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from mmfree.ops.ternary import fused as fused_ops
from mmfree.ops.ternary import prequant

INTERP = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _start(EPOCH):
    # one per step: the epoch the flags of this step must reach
    tl.store(EPOCH, tl.load(EPOCH) + 1)


@triton.jit
def _q(X, C, FLAG, EPOCH, i, K, PDL: tl.constexpr, MODE: tl.constexpr, BLOCK: tl.constexpr):
    # the quantization stand-in: codes of row X `[K]` into C; mode 1 then publishes them through FLAG[i]
    k = tl.arange(0, BLOCK)
    m = k < K
    if PDL:
        gdc_wait()
        gdc_launch_dependents()
    x = tl.load(X + k, mask=m, other=0.0)
    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / K + 1e-6)
    a = tl.max(tl.abs(x * r), axis=0)
    tl.store(C + k, (x * r * (127.0 / a)).to(tl.int32), mask=m)
    if MODE == 1:
        e = tl.load(EPOCH)
        tl.debug_barrier()  # every thread's codes before the release
        tl.atomic_xchg(FLAG + i, e, sem="release", scope="gpu")


@triton.jit
def _g(W, C, Y, FLAG, EPOCH, i, K, PDL: tl.constexpr, MODE: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    # the GEMV stand-in: Y `[BN]` = W `[BN, K]` @ C, its weights loaded before it waits for the codes
    rn = tl.program_id(0) * BN + tl.arange(0, BN)
    kk = tl.arange(0, BK)
    w = tl.load(W + rn[:, None] * K + kk[None, :], mask=kk[None, :] < K, other=0)  # [BN, BK]
    if MODE == 1:
        e = tl.load(EPOCH)
        f = tl.atomic_add(FLAG + i, 0, sem="acquire", scope="gpu")
        while f != e:
            f = tl.atomic_add(FLAG + i, 0, sem="acquire", scope="gpu")
        if PDL:
            gdc_launch_dependents()
    elif PDL:
        gdc_wait()
        gdc_launch_dependents()
    c = tl.load(C + kk, mask=kk < K, other=0)
    tl.store(Y + rn, tl.sum(w * c[None, :], axis=1).to(tl.float32))


@triton.jit
def _tail_gemv(
    X, P, Q, Q8, S, QS, G, CNT, W1N, WAN,
    B, N, Kq, K, stride_x, eps1n, epsn,
    TAIL: tl.constexpr, LATE_TRIG: tl.constexpr, ASM: tl.constexpr, PDL: tl.constexpr, QNEXT: tl.constexpr,
    ONE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr, T: tl.constexpr, EA: tl.constexpr,
    EB: tl.constexpr,
):  # fmt: skip
    # `prequant._bitlinear_kernel` (residual into X, read after the wait: X is the previous launch's
    # output); with TAIL the last program to store quantizes X for the next layer into Q8 (Q's int8
    # view), S, QS
    rows, rmask, rn, nmask = prequant._row_block(B, N, BLOCK_N)
    p = prequant._tile(P, rn, nmask, 0, Kq, BLOCK_Q, 1)
    n = p
    if not ONE:
        n = prequant._tile(P, rn, nmask, BLOCK_Q, Kq, BLOCK_Q, 1)
    g = tl.load(G)
    if PDL:
        gdc_wait()
        if not LATE_TRIG:
            gdc_launch_dependents()
    res = prequant._residual(X, rows, rmask, rn, nmask, stride_x, True)
    s, qs = prequant._row_scales(S, QS, 0, rows, rmask, B)
    qrow = Q + tl.program_id(1) * Kq
    acc, _ = prequant._words_gemv(
        P, rn, rn, nmask, p, p, n, n, qrow, Kq, False, ASM, QNEXT, ONE, BLOCK_N, BLOCK_Q
    )
    y = prequant._y_rows(acc, qs, g, s, X)
    prequant._linear_store(y, res, X, rows, rmask, rn, nmask, stride_x, True)
    if TAIL:
        tl.debug_barrier()  # every thread's stores before this program counts itself
        done = tl.atomic_add(CNT, 1, sem="acq_rel", scope="gpu")
        if done == tl.num_programs(0) * tl.num_programs(1) - 1:
            if PDL and LATE_TRIG:
                gdc_launch_dependents()
            tl.store(CNT, 0)
            for r in range(B):
                prequant._quant_row(
                    X, X, W1N, WAN, WAN, WAN, Q8, S, QS, B, K, 4 * Kq, stride_x, stride_x, eps1n, epsn,
                    epsn, epsn, r, 0, 1, False, True, T, EA, EB,
                )  # fmt: skip


def _graph_us(fn: Callable[[], None], launches: int, quick: bool = False) -> float:
    """µs per launch of `fn` (which makes `launches` of them): the median of CUDA-graph replays, timed as
    `decode_kernels.py` times a step."""
    return timer(True, quick)(fn) * 1e3 / launches


def flag_probe(layers: int, small: bool = False) -> dict[str, float]:
    """Both modes of `layers` (Q, G) pairs, their sums checked against W @ codes; µs per pair on CUDA
    (nothing when `small`: two tiny layers on the CPU, under the interpreter)."""
    dev = "cpu" if small else "cuda"
    K, KW, BN = (64, 16, 16) if small else (5120, 320, 16)
    N = 4 * BN if small else 660 * BN
    xs = [torch.randn(K, device=dev) for _ in range(layers)]
    ws = [torch.randint(-3, 3, (N, KW), device=dev, dtype=torch.int32) for _ in range(layers)]
    cs = [torch.zeros(K, device=dev, dtype=torch.int32) for _ in range(layers)]
    ys = [torch.zeros(N, device=dev) for _ in range(layers)]
    flag = torch.zeros(layers, device=dev, dtype=torch.int32)
    epoch = torch.zeros(1, device=dev, dtype=torch.int32)
    pdl = not small
    kw = {"launch_pdl": True} if pdl else {}
    block, bk = triton.next_power_of_2(K), triton.next_power_of_2(KW)

    def step(mode: int) -> None:
        _start[(1,)](epoch)
        for i in range(layers):
            _q[(1,)](xs[i], cs[i], flag, epoch, i, K, PDL=pdl, MODE=mode, BLOCK=block, num_warps=16, **kw)
            _g[(N // BN,)](
                ws[i], cs[i], ys[i], flag, epoch, i, KW, PDL=pdl, MODE=mode, BN=BN, BK=bk, num_warps=4, **kw
            )

    sums = []
    for mode in (0, 1):
        step(mode)
        sums.append(torch.stack(ys).clone())
    want = torch.stack([(w.cpu().long() @ c[: w.shape[1]].cpu().long()).float() for w, c in zip(ws, cs)])
    if not all(torch.equal(got.cpu(), want) for got in sums):  # [L, N] each
        raise SystemExit("flag probe: a mode's sums differ from W @ codes")
    if small:
        return {}
    out = {}
    for rep in range(2):
        for mode, name in ((0, "griddepcontrol.wait"), (1, "flag spin")):
            out[f"{name} (run {rep + 1})"] = _graph_us(lambda m=mode: step(m), layers)
            if not torch.equal(torch.stack(ys), sums[0]):
                raise SystemExit("flag probe: a graph replay changed the sums")
    return out


def split_probe(width: int, layers: int) -> dict[str, float]:
    """µs per layer: the MLGRU input GEMV (three activation sets a program) against the stacked one."""
    N, kq = width, width // 4
    gen = torch.Generator(device="cuda").manual_seed(0)
    ws = [
        [torch.randint(0, 256, (N, kq), device="cuda", dtype=torch.uint8, generator=gen) for _ in range(3)]
        for _ in range(layers)
    ]
    stacked = [torch.cat(w, 0) for w in ws]  # [3N, kq] each
    x = torch.randn(1, width, device="cuda", dtype=torch.bfloat16)
    q = torch.randint(-100, 100, (3, 1, 4 * kq), device="cuda", dtype=torch.int8).view(torch.int32)
    s = torch.rand(3, 1, device="cuda") + 0.5
    qs = torch.zeros(3, 1, device="cuda", dtype=torch.int32)
    one = torch.ones(1, device="cuda")
    h = torch.zeros(1, N, device="cuda")
    out = torch.empty(1, N, device="cuda", dtype=torch.bfloat16)
    y3 = torch.empty(1, 3 * N, device="cuda", dtype=torch.bfloat16)
    cfg = fused_ops._config(1, N, width, tuple(ws[0]), "mlgru")
    cfg3 = fused_ops._config(1, 3 * N, width, (stacked[0],), "mlgru")

    def mlgru() -> None:
        for w in ws:
            p = [t.view(torch.int32) for t in w]
            args = (x, *p, q, s, qs, one, one, one, h, h, out, 1, N, kq, h.stride(0), out.stride(0))
            prequant._launch_gemv(
                prequant._mlgru_in_kernel, N, kq, args, {"HAS_LB": False, "OFFICIAL": True}, cfg
            )

    def stack() -> None:
        for w in stacked:
            args = (x, w.view(torch.int32), q, s, qs, one, y3, 1, 3 * N, kq, y3.stride(0))
            prequant._launch_gemv(prequant._bitlinear_kernel, 3 * N, kq, args, {"RESIDUAL": False}, cfg3)

    out_us = {}
    for rep in range(2):
        out_us[f"{width} mlgru, 3 sets a program (run {rep + 1})"] = _graph_us(mlgru, layers, quick=True)
        out_us[f"{width} stacked, 1 set a program (run {rep + 1})"] = _graph_us(stack, layers, quick=True)
    return out_us


def tail_probe(layers: int, small: bool = False) -> dict[str, float]:
    """µs per layer of the pair chain and the tail chain (early / late trigger), and the largest difference
    of their final x from the pairs' (codes can differ at a rounding tie: the tail's reductions run on
    another thread count). With `small`, two tiny layers under the interpreter, no timing."""
    from mmfree.ops.ternary.fused import TernaryProj

    dev = "cpu" if small else "cuda"
    d = 64 if small else 5120
    kq = d // 4
    gen = torch.Generator(device=dev).manual_seed(0)
    projs, w1s = [], []
    for _ in range(layers + 1):
        packed = torch.randint(0, 256, (d, kq), device=dev, dtype=torch.uint8, generator=gen)
        packed[(packed & 3) == 3] -= 1  # codes 0..2 only, in every byte's low pair (enough for timing)
        nw = (torch.rand(d, device=dev, generator=gen) + 0.5).to(torch.bfloat16)
        projs.append(TernaryProj(packed, nw, 1e-6, torch.tensor(0.02, device=dev)))
        w1s.append((torch.rand(d, device=dev, generator=gen) + 0.5).to(torch.bfloat16))
    x0 = torch.randn(1, d, device=dev, generator=gen).to(torch.bfloat16)
    cfg = fused_ops._config(1, d, d, (projs[0].packed,), "bitlinear")._replace(fold_tile=None)
    if small:
        cfg = cfg._replace(block_n=16, block_q=16, warps=1)
    x = x0.clone()
    scratch: dict[str, torch.Tensor] = {}
    cnt = torch.zeros(1, device=dev, dtype=torch.int32)
    warps = cfg.warps
    per = d // (32 * warps)
    ea = 1 << (per.bit_length() - 1)
    eb = triton.next_power_of_2(per - ea) if per > ea else 0

    def pairs() -> None:
        for i in range(layers):
            prequant.bitlinear_step(x, x, w1s[i], 1e-6, 1, projs[i], x, True, cfg, scratch)

    def tails(late: bool) -> None:
        q, s, qs = prequant.quantize_rows(
            x, x, w1s[0], 1e-6, ((projs[0].norm_weight, 1e-6),), 1, kq, cfg, scratch
        )
        grid = (triton.cdiv(d, cfg.block_n), 1)
        for i in range(layers):
            nxt = projs[i + 1]
            _tail_gemv[grid](
                x, projs[i].packed.view(torch.int32), q, q.view(torch.int8), s, qs, projs[i].scale, cnt, w1s[i + 1],
                nxt.norm_weight, 1, d, kq, d, x.stride(0), 1e-6, 1e-6,
                TAIL=True, LATE_TRIG=late, ASM=cfg.asm, PDL=cfg.pdl, QNEXT=cfg.qnext,
                ONE=cfg.block_q >= kq, BLOCK_N=cfg.block_n, BLOCK_Q=cfg.block_q, T=32 * warps, EA=ea,
                EB=eb, **cfg.launch_kwargs(),
            )  # fmt: skip

    chains = (("pairs", pairs), ("tail early", lambda: tails(False)), ("tail late", lambda: tails(True)))
    finals = {}
    for name, fn in chains:
        x.copy_(x0)
        fn()
        finals[name] = x.float().clone()
    out: dict[str, float] = {}
    for name in ("tail early", "tail late"):
        out[f"max |x - pairs' x|, {name}"] = (finals[name] - finals["pairs"]).abs().max().item()
    if small:
        return out
    for rep in range(2):
        for name, fn in chains:
            out[f"{name} (run {rep + 1})"] = _graph_us(fn, layers)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("probe", choices=("flag", "split", "tail"))
    p.add_argument("--layers", type=int, default=40)
    p.add_argument("--widths", type=lambda t: [int(w) for w in t.split(",")], default=[5120, 2560])
    args = p.parse_args()
    if INTERP or not torch.cuda.is_available():
        if args.probe == "split" or not INTERP:
            raise SystemExit(
                "no CUDA GPU: only `flag` and `tail` run here, under TRITON_INTERPRET=1, as checks"
            )
        if args.probe == "flag":
            flag_probe(2, small=True)
            print("flag probe: both modes give the sums of W @ codes")
        else:
            for name, v in tail_probe(2, small=True).items():
                print(f"  {name:48} {v:9.3g}")
        return
    rows = flag_probe(args.layers) if args.probe == "flag" else {}
    if args.probe == "tail":
        rows = tail_probe(args.layers)
    if args.probe == "split":
        for w in args.widths:
            rows.update(split_probe(w, args.layers))
    print(
        f"{args.probe} probe ({torch.cuda.get_device_name()}, {args.layers} layers), "
        "µs per launch pair / layer"
    )
    for name, us in rows.items():
        print(f"  {name:48} {us:7.2f}")


if __name__ == "__main__":
    main()
