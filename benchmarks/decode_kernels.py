"""Per-kernel times of the fused batch-1 decode step: where the microseconds of a token go.

For each preset and each kernel option set (`mmfree.ops.ternary.fused.KNOWN_OPTIONS`), the five kernels of
`mmfree.infer.fused.FusedDecodeStep` at batch 1 (MLGRU input, output gate + o_proj, GLU input, down_proj,
final norm + head), each timed as repeated launches inside one CUDA graph (`triton.testing.do_bench_cudagraph`:
no host overhead), in microseconds per layer and in GB/s of the packed weight bytes it reads, against the
copy bandwidth measured in the same run (peer). A layer kernel runs over every layer's weights in turn, so
its weights come from DRAM as in the step. With `--first-layer` it repeats layer 0's, which then stay in L2
(50 MB on an H200: every 13B layer kernel's weights fit), as every run before 2026-11-29 (session 10) did:
those rates overstate what the step sees. The head has one weight and always repeats it. With the "pdl"
option consecutive launches overlap. The last rows per option set: the per-token sum of the kernels (4 per
layer times the layer count, plus the head) against the whole step (every layer, embedding to logits)
captured the same way; that row is the ground truth.

    python benchmarks/decode_kernels.py --presets 370m,13b --options ,dp4a,pdl,dp4a+pdl
    python benchmarks/decode_kernels.py --presets 13b --options dp4a --tiles default,16x4,64x8,64x8x512
    python benchmarks/decode_kernels.py --presets 13b --tiles default,8192:16x4x256+16x4x128
    python benchmarks/decode_kernels.py --presets 1.3b,13b --options dp4a+prequant+pdl --probes none,noquant,nogemv
    python benchmarks/decode_kernels.py --presets 1.3b --options dp4a+prequant+pdl+fold --fold-tiles default,glu:32x8
    python benchmarks/decode_kernels.py --presets 13b --fold-tiles default,bitlinear:8x8@1024x8192 --quant-warps 32,16
    python benchmarks/decode_kernels.py --presets 13b --whole-tiles default,2048:8x4+4096:4x4
    python benchmarks/decode_kernels.py --presets 1.3b --fold-caps default,none
    python benchmarks/decode_kernels.py --presets 13b,2.7b --options dp4a+pdl+prequant+qnext+fold+whole+pieces
    python benchmarks/decode_kernels.py --cpu-check   # the plumbing on CPU under TRITON_INTERPRET=1

Probes (`--probes`, with the "prequant" option; timing only, the outputs are garbage): "noquant" skips the
quantization launches, so the step is its GEMVs alone, reading stale codes; "nogemv" skips the GEMVs, so the
step is its quantization kernels alone. Each bounds what removing the other kind of launch could give.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from collections.abc import Callable

import torch

import mmfree.ops.ternary.fold as fold
import mmfree.ops.ternary.fused as fused_ops
import mmfree.ops.ternary.prequant as prequant
from mmfree.infer.fused import FusedDecodeStep
from mmfree.infer.packed import random_packed_model
from mmfree.models import MMFreeConfig


def timer(cuda: bool, quick: bool) -> Callable[[Callable[[], object]], float]:
    """Median milliseconds of a callable: CUDA-graph replays on a GPU, wall time on CPU (plumbing only)."""
    if cuda:
        from triton.testing import do_bench_cudagraph

        return lambda fn: do_bench_cudagraph(fn, rep=20 if quick else 100, return_mode="median")

    def wall(fn: Callable[[], object]) -> float:
        fn()
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3

    return wall


def parse_tile(text: str) -> tuple[int, int, int] | None:
    """`"32x8"` -> (32, 8, 256), `"64x8x512"` -> (64, 8, 512): BLOCK_N x warps [x largest BLOCK_Q in
    bytes] of the batch-1 GEMV; `""` or `"default"` -> None (the tile tables in `fused.py`)."""
    if text in ("", "default"):
        return None
    try:
        vals = [int(v) for v in text.split("x")]
    except ValueError:
        vals = []
    if len(vals) not in (2, 3) or any(v <= 0 or v & (v - 1) for v in vals):
        raise SystemExit(
            f"tile {text!r} must read BLOCK_NxWARPS[xBLOCK_Q], powers of two, e.g. 32x8 or 64x8x512"
        )
    return (vals[0], vals[1], vals[2] if len(vals) == 3 else 256)


def parse_warps(text: str) -> list[int]:
    """`"32,16"` -> [32, 16]: caps on the quantization kernel's warps, powers of two from 4 to 32."""
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if not vals or any(v not in (4, 8, 16, 32) for v in vals):
        raise SystemExit(f"--quant-warps {text!r} must list powers of two from 4 to 32, e.g. 32,16")
    return vals


def tile_tables(text: str) -> tuple[tuple[tuple, ...], tuple[tuple, ...], tuple[tuple, ...]]:
    """(GEMV_TILES, WORDS_TILES, PREQUANT_TILES) for a batch-1 tile text: `"default"` the tables in `fused.py`;
    one tile (`"32x8"`, `parse_tile`) for every layer width and path; or a prequant table by outputs per
    projection, `"8192:16x4x256+16x4x128"` (rows of up to 8192 outputs, then the rest), after the default
    table's first row and with its later rows' "late" flag, so that only the tiles of wider layers change
    (13B: MLGRU input 5120 outputs, GLU input 13824). A malformed text exits with a message."""
    if ":" not in text and "+" not in text:
        tile = parse_tile(text)
        if tile is None:
            return DEFAULT_TILES
        one = ((2**62, tile[0], tile[2], tile[1]),)
        return one, one, one
    first, *rest = DEFAULT_TILES[2]
    late = rest[-1][4] if rest else True
    table = [first]
    for part in text.split("+"):
        bound, _, spec = part.rpartition(":")
        tile = parse_tile(spec)
        if (bound and not bound.isdigit()) or tile is None:
            raise SystemExit(f"prequant tile {part!r} must read [MAX_OUTPUTS:]BLOCK_NxWARPSxBLOCK_Q")
        table.append((int(bound) if bound else 2**62, tile[0], tile[2], tile[1], late))
    return DEFAULT_TILES[0], DEFAULT_TILES[1], tuple(table)


def set_tile(text: str) -> None:
    """Installs `tile_tables(text)` for the kernels launched next."""
    fused_ops.GEMV_TILES, fused_ops.WORDS_TILES, fused_ops.PREQUANT_TILES = tile_tables(text)


def set_fold_tiles(text: str) -> None:
    """`"glu:32x8+mlgru:16x16"`: every row of those kernels' `fold.FOLD_TILES` gets that BLOCK_N x warps (the
    rows' bounds stay); `"bitlinear:8x8@1024x8192"` keeps the rows and adds one after them, for rows of up
    to 1024 words and 8192 outputs (calls the table refused fold with that tile); `"glu:off"` empties that
    kernel's rows (its calls run the prequant pair); `"default"` restores the table. For the "fold" option."""
    fold.FOLD_TILES = dict(DEFAULT_FOLD)
    if text in ("", "default"):
        return
    for part in text.split("+"):
        kind, _, spec = part.partition(":")
        tile, _, bounds = spec.partition("@")
        extra = parse_tile(bounds) if bounds else None
        if kind not in DEFAULT_FOLD or (tile != "off" and parse_tile(tile) is None) or (bounds and not extra):
            raise SystemExit(
                f"fold tile {part!r} must read KIND:BLOCK_NxWARPS[@MAX_BWxMAX_N] or KIND:off, KIND in "
                f"{sorted(DEFAULT_FOLD)}"
            )
        if tile == "off":
            fold.FOLD_TILES[kind] = ()
            continue
        bn, warps, _ = parse_tile(tile)
        if extra:
            fold.FOLD_TILES[kind] = (*DEFAULT_FOLD[kind], (extra[0], extra[1], bn, warps))
        else:
            fold.FOLD_TILES[kind] = tuple((bw, n, bn, warps) for bw, n, _, _ in DEFAULT_FOLD[kind])


def set_whole_tiles(text: str) -> None:
    """`"2048:8x4+4096:4x4"`: `fused.WHOLE_TILES` becomes those rows (largest row bytes: BLOCK_NxWARPS, the
    smallest bound first); `"default"` restores the table. For the "whole" option."""
    fused_ops.WHOLE_TILES = DEFAULT_WHOLE
    if text in ("", "default"):
        return
    table = []
    for part in text.split("+"):
        bound, _, tile = part.partition(":")
        parsed = parse_tile(tile)
        if not bound.isdigit() or parsed is None:
            raise SystemExit(f"whole tile {part!r} must read MAX_BYTES:BLOCK_NxWARPS, e.g. 4096:8x4")
        table.append((int(bound), parsed[0], parsed[1]))
    fused_ops.WHOLE_TILES = tuple(sorted(table))


def set_fold_caps(text: str) -> None:
    """`"default"`: `fold.FOLD_MAX_REGS` as shipped; `"none"`: no register cap on any fold launch."""
    if text not in ("", "default", "none"):
        raise SystemExit(f"fold register caps {text!r} must read default or none")
    fold.FOLD_MAX_REGS = {} if text == "none" else dict(DEFAULT_FOLD_CAPS)


DEFAULT_TILES = (fused_ops.GEMV_TILES, fused_ops.WORDS_TILES, fused_ops.PREQUANT_TILES)
DEFAULT_FOLD_CAPS = dict(fold.FOLD_MAX_REGS)


DEFAULT_WHOLE = fused_ops.WHOLE_TILES
DEFAULT_FOLD = dict(fold.FOLD_TILES)
DEFAULT_OPTIONS = fused_ops.OPTIONS
DEFAULT_QUANT_WARPS = prequant.QUANT_MAX_WARPS


def copy_bandwidth(device: str) -> float:
    """Bytes per second of a large device copy, counting the bytes read and written (the issue's and
    `kernels.py`'s convention; a read-only stream such as a GEMV can approach it). On CUDA the median of
    `do_bench`, as `kernels.py` times it (CUDA-graph replays of the copy read about a third lower)."""
    n = (1 << 30) if device == "cuda" else (1 << 27)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    if device == "cuda":
        from triton.testing import do_bench

        return 2 * n / (do_bench(lambda: dst.copy_(src), return_mode="median") / 1e3)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * n / best


def kernel_calls(step: FusedDecodeStep, layers: range) -> list[tuple[str, Callable[[], None], int]]:
    """(name, call, packed weight bytes) of the five kernels at batch 1; each of the four layer kernels runs
    once per layer of `layers` in turn (all layers: every weight from DRAM, as in the step)."""
    from mmfree.ops.ternary.fused import bitlinear_step, glu_input_step, mlgru_input_step

    ws = step.workspace(1)
    x, go, u, logits = ws["x"], ws["go"], ws["u"], ws["logits"]
    x.normal_()
    h = torch.zeros(1, step.width, dtype=torch.float32, device=step.device)  # [1, d']
    sh = step._silu_buffer(ws, 1)  # as the step: the MLGRU calls hand SiLU(h) on ("silu" option)
    if sh is not None:
        sh.zero_()
    ps = [step.layers[i] for i in layers]

    def gate(p: dict) -> tuple | None:
        return (p["g_norm"][0], p["g_norm"][1], h if sh is None else sh) if p["official"] else None

    def nbytes(*names: str) -> int:
        return sum(p[n].packed.numel() for p in ps for n in names)

    def mlgru() -> None:
        for p in ps:
            mlgru_input_step(
                x, p["attn_norm"], p["i"], p["f"], p["g"], p["lb"], h, go, p["official"], silu_out=sh
            )

    def o_proj() -> None:
        for p in ps:
            bitlinear_step(go, p["o"], x, residual=True, gate=gate(p), gate_silu=sh is not None)

    def glu() -> None:
        for p in ps:
            glu_input_step(x, p["mlp_norm"], p["gate"], u)

    def down() -> None:
        for p in ps:
            bitlinear_step(u, p["down"], x, residual=True)

    calls = [
        ("mlgru input (i, f, g)", mlgru, nbytes("i", "f", "g")),
        ("output gate + o_proj", o_proj, nbytes("o")),
        ("glu input (gate, up)", glu, nbytes("gate")),
        ("down_proj", down, nbytes("down")),
    ]
    if step.head is not None:
        head = step.head
        calls.append(
            (
                "final norm + head",
                lambda: bitlinear_step(x, head, logits, pre_norm=step.final_norm),
                head.packed.numel(),
            )
        )
    return calls


PROBE_KERNELS = {
    "noquant": ("_quant_kernel",),
    "nogemv": ("_mlgru_in_kernel", "_bitlinear_kernel", "_glu_in_kernel"),
}


class _Skipped:
    """A stand-in for a Triton kernel whose launches do nothing (`kernel[grid](...)` returns None)."""

    def __getitem__(self, grid: object) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def with_probe(probe: str, fn: Callable[[], object]) -> Callable[[], object]:
    """fn with the prequant kernels of a probe ("none", "noquant", "nogemv") skipped while it runs."""
    if probe == "none":
        return fn
    if probe not in PROBE_KERNELS:
        raise SystemExit(f"unknown probe {probe!r}; known: none, {', '.join(PROBE_KERNELS)}")
    from mmfree.ops.ternary import prequant

    def run() -> object:
        saved = {k: getattr(prequant, k) for k in PROBE_KERNELS[probe]}
        try:
            for k in saved:
                setattr(prequant, k, _Skipped())
            return fn()
        finally:
            for k, v in saved.items():
                setattr(prequant, k, v)

    return run


def time_step(
    model: torch.nn.Module,
    preset: str,
    name: str,
    bench: Callable[[Callable[[], object]], float],
    bw: float,
    probe: str = "none",
    first_layer: bool = False,
) -> list[tuple[str, str, str, float, str, str]]:
    """Rows of one option set and tile: each kernel alone (per layer, over every layer's weights in turn, or
    over layer 0's again and again with `first_layer`), their per-token sum and the whole step (with
    `probe`'s kernels skipped)."""
    rows: list[tuple[str, str, str, float, str, str]] = []
    step = FusedDecodeStep(model)
    tok = torch.randint(0, model.config.vocab_size, (1,), device=step.device)  # [1]
    states = [torch.zeros(1, step.width, device=step.device) for _ in range(len(step.layers))]  # L x [1, d']
    step(tok, states)  # the first step allocates the workspace's code buffers, which a probe leaves unwritten
    if probe != "none":
        step_ms = bench(with_probe(probe, lambda: step(tok, states)))
        return [(preset, name, "whole step", step_ms * 1e3, "-", "-")]
    n_layers = len(step.layers)
    layers = range(1) if first_layer else range(n_layers)
    total = 0.0
    for kname, call, nbytes in kernel_calls(step, layers):
        ms = bench(call)  # the head once, a layer kernel once per layer of `layers`
        per_call = ms if kname.startswith("final") else ms / len(layers)
        total += per_call if kname.startswith("final") else per_call * n_layers
        rate = nbytes / ms / 1e6
        rows.append((preset, name, kname, per_call * 1e3, f"{rate:.0f} GB/s", f"{rate / bw:.2f}x copy"))
    step_ms = bench(lambda: step(tok, states))
    rows.append((preset, name, "sum of kernels per token", total * 1e3, "-", "-"))
    rows.append((preset, name, "whole step", step_ms * 1e3, "-", f"{step_ms / total:.2f}x sum"))
    return rows


def run(args: argparse.Namespace) -> None:
    cuda = not args.cpu_check
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    bench = timer(cuda, args.quick)
    bw = copy_bandwidth(device) / 1e9  # GB/s
    rows: list[tuple[str, str, str, float, str, str]] = []
    for preset in args.presets:
        cfg = MMFreeConfig.from_preset(preset)
        model = random_packed_model(cfg, device, dtype)
        grid = [
            (o, t, f, q, w, h, c)
            for o in args.options
            for t in args.tiles
            for f in args.fold_tiles
            for q in args.probes
            for w in args.quant_warps
            for h in args.whole_tiles
            for c in args.fold_caps
        ]
        for opt, tile, ftile, probe, qwarps, wtile, caps in grid:
            fused_ops.OPTIONS = fused_ops.parse_options(opt.replace("+", ","))
            set_tile(tile)
            set_fold_tiles(ftile)
            prequant.QUANT_MAX_WARPS = qwarps
            set_whole_tiles(wtile)
            set_fold_caps(caps)
            name = (opt or "none") + (f"@{tile}" if tile not in ("", "default") else "")
            name += f"@{ftile}" if ftile not in ("", "default") else ""
            name += f"@qw{qwarps}" if qwarps != DEFAULT_QUANT_WARPS else ""
            name += f"@whole{wtile}" if wtile not in ("", "default") else ""
            name += "@nocap" if caps == "none" else ""
            name += f" {probe}" if probe != "none" else ""
            try:
                rows += time_step(model, preset, name, bench, bw, probe, args.first_layer)
            except Exception as err:  # a tile the compiler rejects (out of resources) is reported, not fatal
                rows.append((preset, name, f"error: {type(err).__name__}"[:26], float("nan"), "-", "-"))
        fused_ops.OPTIONS = DEFAULT_OPTIONS
        prequant.QUANT_MAX_WARPS = DEFAULT_QUANT_WARPS
        set_tile("default")
        set_fold_tiles("default")
        set_whole_tiles("default")
        set_fold_caps("default")
        del model
    dev = torch.cuda.get_device_name() if cuda else "cpu (interpreter: plumbing, not speed)"
    print(f"\nFused decode kernels, batch 1 ({dev}, {datetime.date.today().isoformat()}; copy {bw:.0f} GB/s)")
    print(f"{'preset':<6} {'options':<24} {'kernel':<26} {'us':>9} {'weights rate':>13} {'vs peer':>11}")
    for preset, name, kname, us, rate, ratio in rows:
        print(f"{preset:<6} {name:<24} {kname:<26} {us:9.1f} {rate:>13} {ratio:>11}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", type=lambda s: s.split(","), default=["370m", "1.3b", "13b"])
    # the axes of the run grid: comma-separated values, every combination timed
    axes = (
        ("--options", "+".join(sorted(DEFAULT_OPTIONS)), 'option sets, options joined by "+" ("" = none: the '
         "byte path); default: the library's default set"),
        ("--tiles", "default", "batch-1 tiles BLOCK_NxWARPS[xBLOCK_Q bytes] for every layer width, a prequant "
         'table [MAX_OUTPUTS:]BLOCK_NxWARPSxBLOCK_Q joined by "+", or default'),
        ("--fold-tiles", "default", 'fold tile sets ("fold" option): default, or KIND:BLOCK_NxWARPS / KIND:off '
         'joined by "+"'),
        ("--probes", "none", "none, noquant (GEMVs alone), nogemv (quantization kernels alone); see above"),
        ("--whole-tiles", "default", '"whole" tile tables (fused.WHOLE_TILES): default, or '
         'MAX_BYTES:BLOCK_NxWARPS joined by "+"'),
        ("--fold-caps", "default", "default (fold.FOLD_MAX_REGS' register caps) or none (no cap)"),
    )  # fmt: skip
    for flag, default, text in axes:
        p.add_argument(flag, type=lambda s: s.split(","), default=[default], help="comma-separated: " + text)
    p.add_argument(
        "--quant-warps", type=parse_warps, default=[DEFAULT_QUANT_WARPS],
        help="comma-separated caps on the prequant quantization kernel's warps (prequant.QUANT_MAX_WARPS)",
    )  # fmt: skip
    p.add_argument(
        "--first-layer", action="store_true",
        help="time each layer kernel on layer 0's weights only (L2-warm; the rows of sessions 4-10)",
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="fewer timing repeats")
    p.add_argument("--cpu-check", action="store_true", help="run the plumbing on CPU (TRITON_INTERPRET=1)")
    args = p.parse_args()
    if args.cpu_check:
        if os.environ.get("TRITON_INTERPRET") != "1":
            raise SystemExit("--cpu-check runs the kernels in Triton's interpreter: set TRITON_INTERPRET=1")
        args.presets = ["debug"]
    elif not torch.cuda.is_available():
        raise SystemExit("decode_kernels.py needs a CUDA GPU (or --cpu-check with TRITON_INTERPRET=1)")
    run(args)


if __name__ == "__main__":
    main()
