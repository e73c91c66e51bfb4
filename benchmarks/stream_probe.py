"""How fast can a chain of batch-1 GEMV launches stream packed weights? (decode design probe, GPU only)

The batch-1 decode step is a chain of dependent GEMVs, four per layer, each over its own weights (DRAM,
not L2). This times the same chain with the GEMV work stripped to the memory pattern: each kernel reads
its `[N, Kw]` int32 weight words (2-bit layout, 16 codes a word), adds them up per row and stores one
word per row. The shapes are a preset's real ones (MLGRU input i/f/g, o_proj, GLU gate/up, down_proj per
layer, every layer's own buffers), launched back to back with programmatic dependent launch, each kernel
loading its first weights before it waits for the previous one. Variants of the load structure:

- `loop2`: the decode GEMVs' own structure: a loop over 256-byte tiles with two in flight (two loaded
  before the wait);
- `all`: every tile of the program's rows loaded at once before the wait (`[BLOCK_N, next_pow2(Kw)]`);
- `pipeS`: a `tl.range` loop with `num_stages=S` (Triton's software pipeliner: asynchronous copies into
  shared memory), waiting first;
- `act`: `loop2` plus the prequant GEMVs' activation-word loads (four `[BW]` vectors of a small L2-resident
  buffer per tile, one tile ahead as with "qnext"), added in cheaply;
- `dp4a`: `act` with the words multiplied in as the GEMVs do (`fused_parts._mac4`, four dp4a per word).
- `split`: `dp4a` written with one shift per word instead of three and two accumulators (`_mac4s`; ptxas
  compiles it to about as many instructions, BENCHMARKS.md session 12).

- `aheadA`: `dp4a` with every load issued at the top of its iteration, the activation words A (1 or 2)
  tiles ahead (`_ahead_kernel`).

- `chunkC`, `rowcC`: `dp4a` on a `[rows, chunks, C words]` tile whose warps Triton puts on the chunks, so
  each activation word is loaded by one warp of a program (`_chunk_kernel`; rows x warps with BLOCK_N C / 4
  = 32), on chunk-major weights (`[Kw / C, N, C]`) or row-major ones;
- `rowsP`: `alldp4a` on a grid of at most P programs per SM, each looping over row blocks with the
  activation words held in registers (`_rows_kernel`);
- `kwarpW[cg]`: `dp4a` on a tile whose W chunks of words lie on the warps (`_kwarp_kernel`), so no two
  warps load the same activation word; `cg`: the activation words bypass L1.

A suffix `hH` on `loop2`, `act`, `dp4a` or `split` sets the loads' cache policy (`_wh`): `dp4ah1` weights
past L1, `h2` weights evict-first and activation words evict-last, `h3` weights past L1 and activation
words evict-last.

A tile `16x4d4` keeps 4 weight tiles in flight instead of 2 (DEPTH 2-4; 2-3 for `aheadA`).

`act` and `dp4a` add, one at a time, the GEMVs' work besides the weight stream (`act`'s sums are not
checked; `dp4a` and `split` are checked against `dp4a_sums`).

Per variant and tile (BLOCK_N rows x warps): the chain's time per token and its rate against the bytes
floor (the weight bytes at the copy bandwidth measured in the same run). This bounds what restructuring the
real GEMVs' loads could give; the dp4a work, the activation loads and the epilogues come on top.

    python benchmarks/stream_probe.py [--presets 1.3b,13b] [--variants loop2:16x4,all:8x4,pipe4:16x4]
    python benchmarks/stream_probe.py --presets 13b --variants loop2:16x4,act:16x4,dp4a:16x4,dp4a:8x4
    python benchmarks/stream_probe.py --presets 13b --variants dp4a:16x4,dp4a:16x4d4,split:16x4d4
"""

from __future__ import annotations

import argparse
import datetime

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from mmfree.layers.glu import glu_intermediate_size
from mmfree.models import MMFreeConfig
from mmfree.ops.ternary.fused_parts import _act_words, _dp4a, _mac4, _pick


@triton.jit
def _mac4s(acc_a, acc_b, p, c0, c1, c2, c3):
    # `_mac4` in fewer integer instructions: quarters 1 and 3 masked in place (their codes times 4), one
    # shift for quarters 2 and 3, two accumulators (the sum is acc_a + acc_b / 4, exact)
    h = p >> 4
    acc_a = _dp4a(p & 0x03030303, tl.broadcast_to(c0[None, :], p.shape), acc_a, True)
    acc_b = _dp4a(p & 0x0C0C0C0C, tl.broadcast_to(c1[None, :], p.shape), acc_b, True)
    acc_a = _dp4a(h & 0x03030303, tl.broadcast_to(c2[None, :], p.shape), acc_a, True)
    acc_b = _dp4a(h & 0x0C0C0C0C, tl.broadcast_to(c3[None, :], p.shape), acc_b, True)
    return acc_a, acc_b


@triton.jit
def _wh(P, rn, nm, j0, Kw, BW: tl.constexpr, HINT: tl.constexpr):
    # the `[BLOCK_N, BW]` weight words j0 .. j0 + BW of rows rn (0 past the row), loaded with HINT's cache
    # policy: 0 the default, 1 and 3 past L1 (`.cg`), 2 evict-first
    j = j0 + tl.arange(0, BW)
    ptr = P + rn[:, None] * Kw + j[None, :]
    m = nm[:, None] & (j[None, :] < Kw)
    if HINT == 1 or HINT == 3:
        return tl.load(ptr, mask=m, other=0, cache_modifier=".cg")
    elif HINT == 2:
        return tl.load(ptr, mask=m, other=0, eviction_policy="evict_first")
    else:
        return tl.load(ptr, mask=m, other=0)


@triton.jit
def _ah(QW, i0, Kw, BW: tl.constexpr, HINT: tl.constexpr):
    # `_act_words`, evict-last under HINT 2 and 3
    if HINT >= 2:
        iw = i0 // 4 + tl.arange(0, BW)
        m = iw < Kw
        c0 = tl.load(QW + iw, mask=m, other=0, eviction_policy="evict_last")
        c1 = tl.load(QW + Kw + iw, mask=m, other=0, eviction_policy="evict_last")
        c2 = tl.load(QW + 2 * Kw + iw, mask=m, other=0, eviction_policy="evict_last")
        c3 = tl.load(QW + 3 * Kw + iw, mask=m, other=0, eviction_policy="evict_last")
        return c0, c1, c2, c3
    else:
        return _act_words(QW, i0, Kw, BW)


@triton.jit
def _loop2_kernel(
    P, Q, OUT, N, Kw, BLOCK_N: tl.constexpr, BW: tl.constexpr, WORK: tl.constexpr, DEPTH: tl.constexpr,
    HINT: tl.constexpr = 0,
):  # fmt: skip
    # WORK 0: the weight words summed ("loop2"); 1: plus the activation words, added in ("act"); 2: the
    # activation words multiplied in with dp4a ("dp4a"); 3: as 2 with `_mac4s` ("split"). DEPTH (2-4)
    # weight tiles in flight: the first DEPTH load before the wait, each next one after a tile's work. HINT:
    # the cache policy of the loads (`_wh`, `_ah`).
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = rn < N
    p = _wh(P, rn, nm, 0, Kw, BW, HINT)
    n = _wh(P, rn, nm, BW, Kw, BW, HINT)
    n2 = n
    n3 = n
    if DEPTH >= 3:
        n2 = _wh(P, rn, nm, 2 * BW, Kw, BW, HINT)
    if DEPTH >= 4:
        n3 = _wh(P, rn, nm, 3 * BW, Kw, BW, HINT)
    gdc_wait()
    gdc_launch_dependents()
    acc = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    acc_b = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    if WORK > 0:  # the first tile's activation words (bytes 0.. of each quarter)
        c0, c1, c2, c3 = _ah(Q, 0, Kw, BW, HINT)
    for i0 in range(0, Kw, BW):
        if WORK == 0:
            acc += p
        else:
            d0, d1, d2, d3 = _ah(Q, 4 * (i0 + BW), Kw, BW, HINT)  # the next tile's, with its weights
            if WORK == 3:
                acc, acc_b = _mac4s(acc, acc_b, p, c0, c1, c2, c3)
            elif WORK == 2:
                acc = _mac4(acc, p, c0, c1, c2, c3, True)
            else:
                acc += p + (c0 + c1 + c2 + c3)[None, :]
            c0, c1, c2, c3 = d0, d1, d2, d3
        p = n
        if DEPTH == 2:
            n = _wh(P, rn, nm, i0 + 2 * BW, Kw, BW, HINT)
        elif DEPTH == 3:
            n = n2
            n2 = _wh(P, rn, nm, i0 + 3 * BW, Kw, BW, HINT)
        else:
            n = n2
            n2 = n3
            n3 = _wh(P, rn, nm, i0 + 4 * BW, Kw, BW, HINT)
    tl.store(OUT + rn, tl.sum(acc + (acc_b >> 2), axis=1), mask=nm)


@triton.jit
def _ahead_kernel(
    P, Q, OUT, N, Kw, BLOCK_N: tl.constexpr, BW: tl.constexpr, DEPTH: tl.constexpr, AHEAD: tl.constexpr
):  # fmt: skip
    # the `dp4a` work with every load of the loop issued at the top of its iteration, before the work that
    # waits on data: weight tiles DEPTH (2-3) ahead, activation words AHEAD (1-2) tiles ahead. So neither
    # stream waits behind the other's latency or behind the dp4a.
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = rn < N
    p = _wh(P, rn, nm, 0, Kw, BW, 0)
    n = _wh(P, rn, nm, BW, Kw, BW, 0)
    n2 = n
    if DEPTH >= 3:
        n2 = _wh(P, rn, nm, 2 * BW, Kw, BW, 0)
    gdc_wait()
    gdc_launch_dependents()
    acc = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    c0, c1, c2, c3 = _act_words(Q, 0, Kw, BW)
    d0, d1, d2, d3 = c0, c1, c2, c3
    if AHEAD >= 2:
        d0, d1, d2, d3 = _act_words(Q, 4 * BW, Kw, BW)
    for i0 in range(0, Kw, BW):
        nn = _wh(P, rn, nm, i0 + DEPTH * BW, Kw, BW, 0)
        e0, e1, e2, e3 = _act_words(Q, 4 * (i0 + AHEAD * BW), Kw, BW)
        acc = _mac4(acc, p, c0, c1, c2, c3, True)
        if AHEAD >= 2:
            c0, c1, c2, c3 = d0, d1, d2, d3
            d0, d1, d2, d3 = e0, e1, e2, e3
        else:
            c0, c1, c2, c3 = e0, e1, e2, e3
        p = n
        if DEPTH >= 3:
            n = n2
            n2 = nn
        else:
            n = nn
    tl.store(OUT + rn, tl.sum(acc, axis=1), mask=nm)


@triton.jit
def _kwarp_kernel(
    P, Q, OUT, N, Kw, BLOCK_N: tl.constexpr, BW: tl.constexpr, W: tl.constexpr, CG: tl.constexpr
):
    # the `dp4a` work on a `[W, BLOCK_N, BW // W]` tile: chunk c (dim 0, where Triton puts the warps when
    # BLOCK_N rows fit one warp's threads) holds words c BW / W .. of the tile for every row, so each
    # activation word is loaded by one warp instead of by every warp of the program. CG: activation words
    # loaded past L1 (`.cg`).
    C: tl.constexpr = BW // W
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = (rn < N)[None, :, None]
    cw = tl.arange(0, W)[:, None, None] * C + tl.arange(0, C)[None, None, :]  # [W, 1, C] words of a tile
    rp = P + rn[None, :, None] * Kw
    p = tl.load(rp + cw, mask=nm & (cw < Kw), other=0)
    n = tl.load(rp + BW + cw, mask=nm & (BW + cw < Kw), other=0)
    gdc_wait()
    gdc_launch_dependents()
    acc = tl.zeros([W, BLOCK_N, C], dtype=tl.int32)
    for i0 in range(0, Kw, BW):
        j = i0 + cw
        jm = j < Kw
        if CG:
            c0 = tl.load(Q + j, mask=jm, other=0, cache_modifier=".cg")
            c1 = tl.load(Q + Kw + j, mask=jm, other=0, cache_modifier=".cg")
            c2 = tl.load(Q + 2 * Kw + j, mask=jm, other=0, cache_modifier=".cg")
            c3 = tl.load(Q + 3 * Kw + j, mask=jm, other=0, cache_modifier=".cg")
        else:
            c0 = tl.load(Q + j, mask=jm, other=0)
            c1 = tl.load(Q + Kw + j, mask=jm, other=0)
            c2 = tl.load(Q + 2 * Kw + j, mask=jm, other=0)
            c3 = tl.load(Q + 3 * Kw + j, mask=jm, other=0)
        for q in tl.static_range(4):
            cq = tl.broadcast_to(_pick(q, c0, c1, c2, c3), acc.shape)
            acc = _dp4a((p >> (2 * q)) & 0x03030303, cq, acc, True)
        p = n
        j2 = i0 + 2 * BW + cw
        n = tl.load(rp + j2, mask=nm & (j2 < Kw), other=0)
    tl.store(OUT + rn, tl.sum(tl.sum(acc, axis=2), axis=0), mask=rn < N)


@triton.jit
def _chunk_kernel(
    P, Q, OUT, N, Kw, BLOCK_N: tl.constexpr, C: tl.constexpr, W: tl.constexpr, DEPTH: tl.constexpr,
    CM: tl.constexpr,
):  # fmt: skip
    # the `dp4a` work on a `[BLOCK_N, W, C]` tile: W consecutive chunks of C words of BLOCK_N rows. Triton
    # orders the dimensions by contiguity, then by index: the words (dim 2), then the rows, then the chunks,
    # so with BLOCK_N C / 4 = 32 (the rows fill one warp's threads) the W warps land on the chunks and each
    # activation word is loaded by one warp. CM: P is chunk-major, `[Kw / C, N, C]` (word c of chunk k of
    # row n is word k C + c of the row), else row-major `[N, Kw]`. DEPTH 2 or 4 tiles in flight.
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = (rn < N)[:, None, None]
    wc = tl.arange(0, W)[None, :, None]  # [1, W, 1] chunk within a tile
    cw = tl.arange(0, C)[None, None, :]  # [1, 1, C] word within a chunk
    if CM:
        row = rn[:, None, None] * C + cw  # [BN, 1, C]
        step = N * C  # words from one chunk to the next
    else:
        row = rn[:, None, None] * Kw + cw
        step = C
    nk = Kw // C
    p = tl.load(P + wc * step + row, mask=nm & (wc < nk), other=0)  # [BN, W, C]
    n = tl.load(P + (W + wc) * step + row, mask=nm & (W + wc < nk), other=0)
    n2 = n
    n3 = n
    if DEPTH >= 4:
        n2 = tl.load(P + (2 * W + wc) * step + row, mask=nm & (2 * W + wc < nk), other=0)
        n3 = tl.load(P + (3 * W + wc) * step + row, mask=nm & (3 * W + wc < nk), other=0)
    gdc_wait()
    gdc_launch_dependents()
    acc = tl.zeros([BLOCK_N, W, C], dtype=tl.int32)
    for k0 in range(0, nk, W):
        m = (k0 + wc) * C + cw  # [1, W, C] the words' index in the row
        am = m < Kw
        for q in tl.static_range(4):
            a = tl.load(Q + q * Kw + m, mask=am, other=0)
            acc = _dp4a((p >> (2 * q)) & 0x03030303, tl.broadcast_to(a, acc.shape), acc, True)
        p = n
        if DEPTH >= 4:
            n = n2
            n2 = n3
            kn = k0 + 4 * W + wc
            n3 = tl.load(P + kn * step + row, mask=nm & (kn < nk), other=0)
        else:
            kn = k0 + 2 * W + wc
            n = tl.load(P + kn * step + row, mask=nm & (kn < nk), other=0)
    tl.store(OUT + rn, tl.sum(tl.sum(acc, axis=2), axis=1), mask=rn < N)


@triton.jit
def _all_kernel(P, Q, OUT, N, Kw, BLOCK_N: tl.constexpr, BW: tl.constexpr, WORK: tl.constexpr = 0):
    # the program's whole `[BLOCK_N, BW >= Kw]` rows loaded before the wait. Where BW is at least 128 words
    # a warp, Triton lays the warps along K and each thread holds 4 words of every row (BLOCK_N rows share
    # one thread's activation words). WORK 0: summed ("all"); 1: activation words added in ("allact"); 2:
    # multiplied in with dp4a ("alldp4a"); 3: with `_mac4s` ("allsplit")
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = rn < N
    iw = tl.arange(0, BW)
    p = tl.load(P + rn[:, None] * Kw + iw[None, :], mask=nm[:, None] & (iw[None, :] < Kw), other=0)
    gdc_wait()
    gdc_launch_dependents()
    if WORK == 0:
        tl.store(OUT + rn, tl.sum(p, axis=1), mask=nm)
    else:
        c0, c1, c2, c3 = _act_words(Q, 0, Kw, BW)
        acc = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
        acc_b = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
        if WORK == 1:
            acc = p + (c0 + c1 + c2 + c3)[None, :]
        elif WORK == 3:
            acc, acc_b = _mac4s(acc, acc_b, p, c0, c1, c2, c3)
        else:
            acc = _mac4(acc, p, c0, c1, c2, c3, True)
        tl.store(OUT + rn, tl.sum(acc + (acc_b >> 2), axis=1), mask=nm)


@triton.jit
def _rows_kernel(P, Q, OUT, N, Kw, BLOCK_N: tl.constexpr, BW: tl.constexpr):
    # whole rows as `_all_kernel` (WORK 2), but a grid of at most a few programs per SM, each looping over
    # the row blocks pid, pid + G, ...: the activation words load once per program and stay in registers,
    # and the next block's weights load while this one is multiplied (the first two before the wait)
    pid = tl.program_id(0)
    G = tl.num_programs(0)
    iw = tl.arange(0, BW)
    km = iw[None, :] < Kw
    rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    p = tl.load(P + rn[:, None] * Kw + iw[None, :], mask=(rn < N)[:, None] & km, other=0)
    rn2 = rn + G * BLOCK_N
    n = tl.load(P + rn2[:, None] * Kw + iw[None, :], mask=(rn2 < N)[:, None] & km, other=0)
    gdc_wait()
    gdc_launch_dependents()
    c0, c1, c2, c3 = _act_words(Q, 0, Kw, BW)
    for r0 in range(pid * BLOCK_N, N, G * BLOCK_N):
        rn = r0 + tl.arange(0, BLOCK_N)
        acc = _mac4(tl.zeros([BLOCK_N, BW], dtype=tl.int32), p, c0, c1, c2, c3, True)
        p = n
        rn2 = rn + 2 * G * BLOCK_N
        n = tl.load(P + rn2[:, None] * Kw + iw[None, :], mask=(rn2 < N)[:, None] & km, other=0)
        tl.store(OUT + rn, tl.sum(acc, axis=1), mask=rn < N)


@triton.jit
def _pipe_kernel(P, OUT, N, Kw, BLOCK_N: tl.constexpr, BW: tl.constexpr, STAGES: tl.constexpr):
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = rn < N
    iw = tl.arange(0, BW)
    gdc_wait()
    gdc_launch_dependents()
    acc = tl.zeros([BLOCK_N, BW], dtype=tl.int32)
    for i0 in tl.range(0, Kw, BW, num_stages=STAGES):
        j = i0 + iw
        acc += tl.load(P + rn[:, None] * Kw + j[None, :], mask=nm[:, None] & (j[None, :] < Kw), other=0)
    tl.store(OUT + rn, tl.sum(acc, axis=1), mask=nm)


WORK = {"loop2": 0, "act": 1, "dp4a": 2, "split": 3}  # the variants of `_loop2_kernel`
ALL = {"all": 0, "allact": 1, "alldp4a": 2, "allsplit": 3}  # the variants of `_all_kernel`


def shapes(preset: str) -> list[tuple[str, int, int]]:
    """(name, rows N, words per row Kw) of one layer's GEMVs, as the fused step reads them."""
    cfg = MMFreeConfig.from_preset(preset)
    d = cfg.hidden_size
    inter = cfg.intermediate_size or glu_intermediate_size(d)
    return [
        ("mlgru", 3 * d, d // 16),
        ("o", d, d // 16),
        ("glu", 2 * inter, d // 16),
        ("down", d, inter // 16),
    ]


def copy_bandwidth() -> float:
    """Bytes read + written per second of a 1 GiB device copy (`decode_kernels.py`'s convention)."""
    from triton.testing import do_bench

    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return 2 * n / (do_bench(lambda: dst.copy_(src), return_mode="median") / 1e3)


def hinted(variant: str) -> tuple[str, int]:
    """("dp4a", 2) for "dp4ah2": a variant's base name and its cache-policy suffix (0 without one)."""
    base, sep, hint = variant.rpartition("h")
    return (base, int(hint)) if sep and hint.isdigit() and base in WORK else (variant, 0)


def dp4a_sums(w: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """[N] int32 what the dp4a variants compute: byte t of quarter j of word m (its 2-bit field, 0-3) times
    signed byte t of activation word j Kw + m, summed."""
    kw = w.shape[1]
    qb = q.view(torch.int8).view(4, kw, 4).to(torch.int64)  # [quarter, word, byte]
    out = torch.zeros(w.shape[0], dtype=torch.int64, device=w.device)
    for j in range(4):
        for t in range(4):
            out += (((w >> (8 * t + 2 * j)) & 3).to(torch.int64) * qb[j, :, t]).sum(1)
    return out.to(torch.int32)


def chain(preset: str, variant: str, block_n: int, warps: int, depth: int = 2, layers: int = 0):
    """A callable that launches the preset's whole chain of GEMV-shaped reads once (`layers` of them, or
    all the preset's), its weight bytes and its calls."""
    layers = layers or MMFreeConfig.from_preset(preset).num_hidden_layers
    calls = []
    total = 0
    for _ in range(layers):
        for _, n, kw in shapes(preset):
            w = torch.randint(-(2**31), 2**31 - 1, (n, kw), dtype=torch.int32, device="cuda")
            if variant.startswith("chunk"):  # the same words chunk-major: [Kw / C, N, C]
                c = int(variant.removeprefix("chunk"))
                w = w.view(n, kw // c, c).transpose(0, 1).contiguous()
            out = torch.empty(n, dtype=torch.int32, device="cuda")
            q = torch.randint(-(2**31), 2**31 - 1, (4 * kw,), dtype=torch.int32, device="cuda")
            calls.append((w, out, n, kw, q))
            total += w.numel() * 4
    kw_ = {"num_warps": warps, "launch_pdl": True}
    base, hint = hinted(variant)

    def run() -> None:
        for w, out, n, kw, q in calls:
            grid = (triton.cdiv(n, block_n),)
            if variant.startswith(("chunk", "rowc")):  # chunkC / rowcC: chunks of C words, W = warps
                c = int(variant.removeprefix("chunk").removeprefix("rowc"))
                cm = variant.startswith("chunk")
                _chunk_kernel[grid](
                    w, q, out, n, kw, BLOCK_N=block_n, C=c, W=warps, DEPTH=depth, CM=cm, **kw_
                )
            elif variant.startswith("kwarp"):  # kwarp4 / kwarp4cg: W = 4 chunks
                w_ = int(variant.removeprefix("kwarp").removesuffix("cg"))
                cg = variant.endswith("cg")
                _kwarp_kernel[grid](w, q, out, n, kw, BLOCK_N=block_n, BW=64, W=w_, CG=cg, **kw_)
            elif variant.startswith("ahead"):
                a = int(variant.removeprefix("ahead"))
                _ahead_kernel[grid](w, q, out, n, kw, BLOCK_N=block_n, BW=64, DEPTH=depth, AHEAD=a, **kw_)
            elif base in WORK:
                _loop2_kernel[grid](
                    w, q, out, n, kw, BLOCK_N=block_n, BW=64, WORK=WORK[base], DEPTH=depth, HINT=hint, **kw_
                )
            elif variant.startswith("rows"):  # rowsP: at most P programs per SM
                sms = torch.cuda.get_device_properties(w.device).multi_processor_count
                g = min(triton.cdiv(n, block_n), int(variant.removeprefix("rows")) * sms)
                bw = triton.next_power_of_2(kw)
                _rows_kernel[(g,)](w, q, out, n, kw, BLOCK_N=block_n, BW=bw, **kw_)
            elif variant in ALL:
                bw = triton.next_power_of_2(kw)
                _all_kernel[grid](w, q, out, n, kw, BLOCK_N=block_n, BW=bw, WORK=ALL[variant], **kw_)
            else:
                stages = int(variant.removeprefix("pipe"))
                _pipe_kernel[grid](w, out, n, kw, BLOCK_N=block_n, BW=64, STAGES=stages, **kw_)

    return run, total, calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="1.3b,13b")
    p.add_argument(
        "--variants",
        default="loop2:16x4,loop2:8x4,all:8x4,all:4x4,all:8x8,all:16x8,pipe3:16x4,pipe4:16x4,pipe6:16x4,pipe4:8x4",
    )
    p.add_argument("--once", action="store_true", help="launch each chain twice, untimed (for ncu)")
    p.add_argument("--layers", type=int, default=0, help="layers per chain (default: the preset's)")
    args = p.parse_args()
    from triton.testing import do_bench_cudagraph

    if args.once:
        for preset in args.presets.split(","):
            for spec in args.variants.split(","):
                variant, tile = spec.split(":")
                tile, _, depth = tile.partition("d")
                bn, warps = (int(t) for t in tile.split("x"))
                run = chain(preset, variant, bn, warps, int(depth or 2), args.layers)[0]
                run()
                run()
                torch.cuda.synchronize()
        return

    bw = copy_bandwidth()
    print(f"# {datetime.date.today()} {torch.cuda.get_device_name()} copy {bw / 1e9:.0f} GB/s")
    rows = []
    for preset in args.presets.split(","):
        for spec in args.variants.split(","):
            variant, tile = spec.split(":")
            tile, _, depth = tile.partition("d")
            bn, warps = (int(t) for t in tile.split("x"))
            run, total, calls = chain(preset, variant, bn, warps, int(depth or 2))
            run()
            torch.cuda.synchronize()
            unchecked = variant.startswith(("act", "allact"))  # its sums are not recomputed here
            dp4a_work = hinted(variant)[0] in ("dp4a", "split", "alldp4a", "allsplit") or variant.startswith(
                ("ahead", "kwarp", "rowc", "rows")
            )
            ref = dp4a_sums if dp4a_work else (lambda w, q: w.sum(1, dtype=torch.int32))
            if variant.startswith("chunk"):  # back to row-major `[N, Kw]` for the reference
                ref = lambda w, q: dp4a_sums(w.transpose(0, 1).reshape(w.shape[1], -1), q)  # noqa: E731
            ok = unchecked or all(torch.equal(out, ref(w, q)) for w, out, _, _, q in calls[:4])
            ms = do_bench_cudagraph(run, rep=100, return_mode="median")
            floor = total / bw * 1e3
            rows.append((preset, spec, ms, floor, ok))
            print(
                f"{preset:6} {spec:12} {ms * 1e3:8.1f} us  floor {floor * 1e3:7.1f} us  {ms / floor:5.2f}x  sums {'unchecked' if unchecked else ok}"
            )
            del run, calls
            torch.cuda.empty_cache()
    print("\n| preset | variant | chain µs | x floor |\n|---|---|---|---|")
    for preset, spec, ms, floor, ok in rows:
        print(f"| {preset} | {spec} | {ms * 1e3:.1f} | {ms / floor:.2f}x{'' if ok else ' (WRONG SUMS)'} |")


if __name__ == "__main__":
    main()
