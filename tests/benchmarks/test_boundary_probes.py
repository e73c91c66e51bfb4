"""`benchmarks/boundary_probes.py`'s flag and tail probes compute what they time: under TRITON_INTERPRET=1,
both boundary modes (griddepcontrol.wait, flag spin) give W @ codes on every layer, and the tail chain (the
last program of each GEMV quantizes the next input) ends with the production pairs' residual stream."""

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


def test_tail_probe_chains_end_where_the_pairs_do() -> None:
    diffs = bp.tail_probe(3, small=True)
    assert set(diffs) == {"max |x - pairs' x|, tail early", "max |x - pairs' x|, tail late"}
    assert all(v == 0.0 for v in diffs.values())  # at this small width both sum orders give the same bits
