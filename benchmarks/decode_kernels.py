"""Per-kernel times of the fused batch-1 decode step: where the microseconds of a token go.

For each preset and each kernel option set (`mmfree.ops.ternary.fused.KNOWN_OPTIONS`), the five kernels of
`mmfree.infer.fused.FusedDecodeStep` at batch 1 on layer 0 (MLGRU input, output gate + o_proj, GLU input,
down_proj, final norm + head), each timed as repeated launches of itself inside one CUDA graph
(`triton.testing.do_bench_cudagraph`: no host overhead), in microseconds and in GB/s of the packed weight
bytes it reads, against the copy bandwidth measured in the same run (peer). Two cautions: a layer's weights
that fit in L2 (3 MB at 370M) stay there across the repeats, so small kernels read faster than in a real
step, whose 24 layers do not fit; and with the "pdl" option consecutive repeats overlap. The last rows per
option set: the per-token sum of the kernels (4 per layer times the layer count, plus the head) against
the whole step (every layer, embedding to logits) captured the same way; that row is the ground truth.

    python benchmarks/decode_kernels.py --presets 370m,13b --options ,dp4a,pdl,single,dp4a+pdl+single
    python benchmarks/decode_kernels.py --cpu-check   # the plumbing on CPU under TRITON_INTERPRET=1
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from collections.abc import Callable

import torch

import mmfree.ops.ternary.fused as fused_ops
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


def copy_gbs(cuda: bool, bench: Callable[[Callable[[], object]], float]) -> float:
    """Device-to-device copy bandwidth (bytes read + written per second), GB/s."""
    n = (1 << 28) if cuda else (1 << 20)
    src = torch.empty(n, dtype=torch.bfloat16, device="cuda" if cuda else "cpu")
    dst = torch.empty_like(src)
    return 2 * n * 2 / bench(lambda: dst.copy_(src)) / 1e6


def kernel_calls(step: FusedDecodeStep) -> list[tuple[str, Callable[[], None], int]]:
    """(name, call, packed weight bytes) of the five kernels on layer 0 at batch 1."""
    from mmfree.ops.ternary.fused import bitlinear_step, glu_input_step, mlgru_input_step

    ws = step.workspace(1)
    x, go, u, logits = ws["x"], ws["go"], ws["u"], ws["logits"]
    x.normal_()
    h = torch.zeros(1, step.width, dtype=torch.float32, device=step.device)  # [1, d']
    p = step.layers[0]
    gate = (p["g_norm"][0], p["g_norm"][1], h) if p["official"] else None

    def nbytes(*projs: fused_ops.TernaryProj) -> int:
        return sum(q.packed.numel() for q in projs)

    calls = [
        (
            "mlgru input (i, f, g)",
            lambda: mlgru_input_step(
                x, p["attn_norm"], p["i"], p["f"], p["g"], p["lb"], h, go, p["official"]
            ),
            nbytes(p["i"], p["f"], p["g"]),
        ),
        (
            "output gate + o_proj",
            lambda: bitlinear_step(go, p["o"], x, residual=True, gate=gate),
            nbytes(p["o"]),
        ),
        ("glu input (gate, up)", lambda: glu_input_step(x, p["mlp_norm"], p["gate"], u), nbytes(p["gate"])),
        ("down_proj", lambda: bitlinear_step(u, p["down"], x, residual=True), nbytes(p["down"])),
    ]
    if step.head is not None:
        head = step.head
        calls.append(
            (
                "final norm + head",
                lambda: bitlinear_step(x, head, logits, pre_norm=step.final_norm),
                nbytes(head),
            )
        )
    return calls


def run(args: argparse.Namespace) -> None:
    cuda = not args.cpu_check
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    bench = timer(cuda, args.quick)
    bw = copy_gbs(cuda, bench)
    rows: list[tuple[str, str, str, float, str, str]] = []
    for preset in args.presets:
        cfg = MMFreeConfig.from_preset(preset)
        model = random_packed_model(cfg, device, dtype)
        n_layers = cfg.num_hidden_layers
        for opt in args.options:
            fused_ops.OPTIONS = fused_ops.parse_options(opt.replace("+", ","))
            name = opt or "default"
            step = FusedDecodeStep(model)
            total = 0.0
            for kname, call, nbytes in kernel_calls(step):
                ms = bench(call)
                per_token = ms if kname.startswith("final") else ms * n_layers
                total += per_token
                rate = nbytes / ms / 1e6
                rows.append((preset, name, kname, ms * 1e3, f"{rate:.0f} GB/s", f"{rate / bw:.2f}x copy"))
            tok = torch.randint(0, cfg.vocab_size, (1,), device=device)  # [1]
            states = [torch.zeros(1, step.width, device=device) for _ in range(n_layers)]  # L x [1, d']
            step_ms = bench(lambda step=step, tok=tok, states=states: step(tok, states))
            rows.append((preset, name, "sum of kernels per token", total * 1e3, "-", "-"))
            rows.append((preset, name, "whole step", step_ms * 1e3, "-", f"{step_ms / total:.2f}x sum"))
        fused_ops.OPTIONS = frozenset()
        del model
    dev = torch.cuda.get_device_name() if cuda else "cpu (interpreter: plumbing, not speed)"
    print(f"\nFused decode kernels, batch 1 ({dev}, {datetime.date.today().isoformat()}; copy {bw:.0f} GB/s)")
    print(f"{'preset':<6} {'options':<16} {'kernel':<26} {'us':>9} {'weights rate':>13} {'vs peer':>11}")
    for preset, name, kname, us, rate, ratio in rows:
        print(f"{preset:<6} {name:<16} {kname:<26} {us:9.1f} {rate:>13} {ratio:>11}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", type=lambda s: s.split(","), default=["370m", "1.3b", "13b"])
    p.add_argument(
        "--options", type=lambda s: s.split(","), default=["", "dp4a", "pdl", "single", "dp4a+pdl+single"],
        help='comma-separated option sets, options joined by "+" ("" = the default kernels)',
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
