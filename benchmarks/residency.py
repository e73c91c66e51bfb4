"""Which launches of the batch-1 decode step can load their weights while the previous kernel runs.

With programmatic dependent launch (the "pdl" option) a kernel's programs start, load their first weight
tiles, then wait for the previous kernel. They can only start on an SM with room beside the previous
kernel's resident programs (registers, shared memory, threads, 32 blocks). Session 15 found a 1.3B launch
that had lost that room to 14 more registers a thread: its step went from 456 to 371 µs when a register cap
gave it back (`fold.FOLD_MAX_REGS`). This script records every Triton launch of one decode step (first layer
and head: the other layers repeat the first's launches), with the compiled kernel's registers and shared
memory, and prints per launch:
- programs: the grid; warps, registers a thread (as compiled) and shared bytes a program;
- fit/SM: programs that fit on an empty SM; load/SM: programs the grid puts on its busiest SM (at most fit);
- beside prev: programs that fit on an SM holding the previous launch's busiest load, and on how many SMs
  that is zero (there, the launch waits for the previous kernel's programs to leave before it loads).
The model assumes the block scheduler spreads a grid evenly over the SMs and that the previous kernel's
programs are all resident when this one launches (each kernel lets the next launch right after its own
wait). Registers are allocated per warp in steps of 256 (8 a thread).

    python benchmarks/residency.py --presets 370m,1.3b,13b
    python benchmarks/residency.py --presets 1.3b --fold-caps none
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import torch
from triton.runtime.jit import JITFunction

import mmfree.ops.ternary.fold as fold
from mmfree.infer.fused import FusedDecodeStep
from mmfree.infer.packed import random_packed_model
from mmfree.models import MMFreeConfig


@dataclass
class Launch:
    """One recorded kernel launch: the kernel's name, grid size and compiled resources."""

    name: str  # the @triton.jit function's name
    programs: int  # grid size (all dimensions)
    warps: int  # num_warps
    regs: int  # registers a thread, as compiled
    smem: int  # shared memory bytes a program, as compiled


@dataclass
class SM:
    """What one streaming multiprocessor holds (from the device's properties)."""

    regs: int  # 32-bit registers
    smem: int  # shared memory bytes
    threads: int  # resident threads
    blocks: int = 32  # resident programs (sm_90)


def record(step: FusedDecodeStep, tok: torch.Tensor, states: list[torch.Tensor]) -> list[Launch]:
    """The Triton launches of one decode step, in order."""
    launches: list[Launch] = []
    original = JITFunction.run

    def run(self: JITFunction, *args: Any, grid: Any, warmup: bool, **kwargs: Any) -> Any:
        kernel = original(self, *args, grid=grid, warmup=warmup, **kwargs)
        if not warmup and isinstance(grid, tuple):
            kernel._init_handles()
            meta = kernel.metadata
            launches.append(
                Launch(self.fn.__name__, math.prod(grid), meta.num_warps, kernel.n_regs, meta.shared)
            )
        return kernel

    JITFunction.run = run  # type: ignore[method-assign]
    try:
        step(tok, states)
        torch.cuda.synchronize()
    finally:
        JITFunction.run = original  # type: ignore[method-assign]
    return launches


def fits(launch: Launch, sm: SM, used: tuple[int, int, int, int] = (0, 0, 0, 0)) -> int:
    """Programs of `launch` that fit on an SM that already holds `used` (registers, shared bytes, threads,
    programs)."""
    regs = launch.warps * 32 * (-(-launch.regs // 8) * 8)
    smem = launch.smem + 1024  # the runtime reserves 1 KiB a program
    threads = launch.warps * 32
    room = [
        (sm.regs - used[0]) // regs,
        (sm.smem - used[1]) // smem if launch.smem else sm.blocks,
        (sm.threads - used[2]) // threads,
        sm.blocks - used[3],
    ]
    return max(0, min(room))


def usage(launch: Launch, count: int) -> tuple[int, int, int, int]:
    """What `count` programs of `launch` take on one SM."""
    regs = launch.warps * 32 * (-(-launch.regs // 8) * 8)
    return count * regs, count * (launch.smem + 1024 if launch.smem else 0), count * launch.warps * 32, count


def table(preset: str, launches: list[Launch], sm: SM, n_sms: int) -> list[str]:
    """One line per launch (see the module docstring)."""
    lines = []
    prev: Launch | None = None
    for launch in launches:
        fit = fits(launch, sm)
        load = min(fit, -(-launch.programs // n_sms))
        beside = "-"
        if prev is not None:
            prev_fit = fits(prev, sm)
            prev_load = min(prev_fit, -(-prev.programs // n_sms))
            heavy = min(n_sms, prev.programs - (prev_load - 1) * n_sms)  # SMs holding prev_load programs
            room = fits(launch, sm, usage(prev, prev_load))
            light = fits(launch, sm, usage(prev, prev_load - 1)) if prev_load > 0 else room
            blocked = (heavy if room == 0 else 0) + ((n_sms - heavy) if light == 0 else 0)
            beside = f"{room} ({blocked} SMs: 0)"
        lines.append(
            f"{preset:<6} {launch.name:<20} {launch.programs:>8} {launch.warps:>5} {launch.regs:>5} "
            f"{launch.smem:>7} {fit:>7} {load:>8}   {beside}"
        )
        prev = launch
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", type=lambda s: s.split(","), default=["370m", "1.3b", "13b"])
    p.add_argument("--fold-caps", choices=("default", "none"), default="default",
                   help="fold.FOLD_MAX_REGS as shipped, or no register cap")  # fmt: skip
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("residency.py reads compiled CUDA kernels: it needs a CUDA GPU")
    if args.fold_caps == "none":
        fold.FOLD_MAX_REGS = {}
    props = torch.cuda.get_device_properties(0)
    sm = SM(
        props.regs_per_multiprocessor,
        props.shared_memory_per_multiprocessor,
        props.max_threads_per_multi_processor,
    )
    n_sms = props.multi_processor_count
    out = []
    for preset in args.presets:
        model = random_packed_model(MMFreeConfig.from_preset(preset), "cuda", torch.bfloat16)
        step = FusedDecodeStep(model)
        tok = torch.randint(0, model.config.vocab_size, (1,), device="cuda")  # [1]
        states = [torch.zeros(1, step.width, device="cuda") for _ in step.layers]  # L x [1, d']
        step(tok, states)  # compile every kernel first
        launches = record(step, tok, states)
        n = len(step.layers)
        names = [launch.name for launch in launches]
        per = next(p for p in range(1, len(names) // n + 1) if names[p : n * p] == names[: (n - 1) * p])
        # layer 0, the first launch of layer 1 (the pair across the layer boundary), then the head's launches
        # after the last layer's last one
        out += table(preset, launches[: per + 1] + launches[n * per - 1 :], sm, n_sms)
        del model, step
    print(f"\nDecode step launches at batch 1 ({props.name}: {n_sms} SMs, {sm.regs} registers, {sm.smem} shared "
          f"bytes, {sm.threads} threads an SM; fold caps {args.fold_caps})")  # fmt: skip
    print(f"{'preset':<6} {'kernel':<20} {'programs':>8} {'warps':>5} {'regs':>5} {'smem':>7} {'fit/SM':>7} "
          f"{'load/SM':>8}   beside prev (SMs with no room)")  # fmt: skip
    print("\n".join(out))


if __name__ == "__main__":
    main()
