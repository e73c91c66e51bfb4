"""`benchmarks/boundary_probes.py`'s flag probe computes what it times: under TRITON_INTERPRET=1, both
boundary modes (griddepcontrol.wait, flag spin) give W @ codes on every layer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.interpret,
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET") != "1", reason="runs the kernels in the interpreter"
    ),
]

pytest.importorskip("triton")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import boundary_probes as bp  # noqa: E402


def test_flag_probe_modes_give_the_gemv_sums() -> None:
    assert bp.flag_probe(3, small=True) == {}  # raises SystemExit when a mode's sums are wrong
