"""`benchmarks/residency.py`'s occupancy arithmetic (the launch recording itself needs a CUDA GPU)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import residency as rs

H200 = rs.SM(regs=65536, smem=233472, threads=2048)


def test_registers_bound_programs_per_sm() -> None:
    glu = rs.Launch("_glu_in_kernel", 352, 4, 89, 512)  # 89 registers are allocated as 96
    assert rs.fits(glu, H200) == 5  # 96 x 128 = 12288 registers a program
    assert rs.usage(glu, 3) == (3 * 12288, 3 * (512 + 1024), 3 * 128, 3)
    assert rs.fits(rs.Launch("k", 1, 32, 64, 0), H200) == 1  # 1024 threads x 64 registers: a whole SM
    assert rs.fits(rs.Launch("k", 1, 32, 65, 0), H200) == 0  # 72 allocated: more than an SM holds
    assert rs.fits(rs.Launch("k", 1, 4, 16, 200_000), H200) == 1  # shared memory bounds it
    assert rs.fits(rs.Launch("k", 1, 1, 16, 0), H200) == 32  # the 32-program limit


def test_the_1_3b_down_proj_fits_beside_the_glu_input_only_when_capped() -> None:
    """Session 15's finding: at 118 registers (120 x 256 allocated) the down_proj fold program does not fit
    beside three GLU input programs; at 96 it does."""
    glu = rs.Launch("_glu_in_kernel", 352, 4, 89, 512)
    for regs, room in ((118, 0), (96, 1)):
        down = rs.Launch("_bitlinear_kernel", 128, 8, regs, 2048)
        assert rs.fits(down, H200, rs.usage(glu, 3)) == room
        line = rs.table("1.3b", [glu, down], H200, 132)[1]
        blocked = 352 - 2 * 132 if room == 0 else 0  # the 88 SMs that hold three GLU programs
        assert line.endswith(f"{room} ({blocked} SMs: 0)"), line
