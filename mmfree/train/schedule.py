"""Learning-rate schedules of the paper: warmup + cosine, with the mid-training halving for MatMul-free models.

`lr_factor(step, ...)` is the multiplier of the peak LR used for optimizer step `step` (0-based):

* warmup (step < W): (step + 1) / W, linear up to the peak;
* then, with progress p = (step - W) / max(1, S - W) in [0, 1) over the S = max_steps steps:
  cosine(p) = floor + (1 - floor) * (1 + cos(pi * p)) / 2;
* MatMul-free (`halve=True`, floor 0): cosine to 0, and the value is multiplied by 0.5 for every step >= S // 2
  (the paper's "LR halved midway through training");
* Transformer++ (`halve=False`, floor 0.1): cosine down to 10% of the peak, no halving.
"""

from __future__ import annotations

import math

import torch

MMFREE_FLOOR = 0.0
TRANSFORMER_FLOOR = 0.1


def lr_factor(step: int, max_steps: int, warmup: int, *, halve: bool, floor: float) -> float:
    """Multiplier of the peak LR at optimizer step `step` (see the module docstring)."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1; got {max_steps}")
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max(0.0, (step - warmup) / max(1, max_steps - warmup)))
    value = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if halve and step >= max_steps // 2:
        value *= 0.5
    return value


def make_scheduler(
    optimizer: torch.optim.Optimizer, max_steps: int, warmup: int, arch: str, halving: bool = True
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over `lr_factor`: for arch 'mmfree' cosine to 0 with the mid-training halving (unless
    `halving` is False: the ablation), for the Transformer++ cosine to 10% of the peak."""
    mmfree = arch == "mmfree"
    halve = mmfree and halving
    floor = MMFREE_FLOOR if mmfree else TRANSFORMER_FLOOR

    def factor(step: int) -> float:
        return lr_factor(step, max_steps, warmup, halve=halve, floor=floor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
