"""LR schedule: warmup, cosine, the MatMul-free mid-training halving, Transformer++ cosine to 10%."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mmfree.train.schedule import lr_factor, make_scheduler


def test_warmup_is_linear_to_peak() -> None:
    assert [lr_factor(s, 100, 4, halve=True, floor=0.0) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_mmfree_halves_at_half_of_training() -> None:
    total, warm = 100, 10

    def cosine(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))

    for step in (10, 30, 49):
        assert lr_factor(step, total, warm, halve=True, floor=0.0) == pytest.approx(cosine(step))
    for step in (50, 70, 99):
        assert lr_factor(step, total, warm, halve=True, floor=0.0) == pytest.approx(0.5 * cosine(step))
    before, after = (
        lr_factor(49, total, warm, halve=True, floor=0.0),
        lr_factor(50, total, warm, halve=True, floor=0.0),
    )
    assert after < 0.55 * before


def test_transformer_cosine_ends_at_ten_percent_without_halving() -> None:
    values = [lr_factor(s, 1000, 0, halve=False, floor=0.1) for s in range(1001)]
    assert values[0] == pytest.approx(1.0)
    assert values[500] == pytest.approx(0.55)
    assert values[1000] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("arch,halve,floor", [("mmfree", True, 0.0), ("transformer", False, 0.1)])
def test_scheduler_drives_optimizer_lr(arch: str, halve: bool, floor: float) -> None:
    param = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([param], lr=2e-3)
    sched = make_scheduler(opt, 20, 3, arch)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [2e-3 * lr_factor(s, 20, 3, halve=halve, floor=floor) for s in range(20)]
    assert seen == pytest.approx(expected)


def test_bad_max_steps() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        lr_factor(0, 0, 0, halve=True, floor=0.0)
