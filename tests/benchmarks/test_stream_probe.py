"""`benchmarks/stream_probe.py`'s kernels compute what its tables claim (interpreter, small shapes).

The probe times GEMV-shaped chains on the GPU and checks their sums there against `dp4a_sums` or a plain
row sum; here each variant's kernel runs under TRITON_INTERPRET=1, with the dp4a instruction and the PDL
waits (GPU-only inline assembly) replaced by their plain forms, against the same references.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.interpret,
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET") != "1", reason="runs the kernels in the interpreter"
    ),
]

triton = pytest.importorskip("triton")
tl = triton.language
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import stream_probe as sp  # noqa: E402

import mmfree.ops.ternary.fused_parts as fp  # noqa: E402


@triton.jit
def _dp4a_plain(a, b, c, ASM: tl.constexpr):
    # `fused_parts._dp4a` without the inline assembly, whatever ASM says
    for t in tl.static_range(4):
        c += ((a << (24 - 8 * t)) >> 24) * ((b << (24 - 8 * t)) >> 24)
    return c


@triton.jit
def _no_wait():
    pass


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setattr(sp, "_dp4a", _dp4a_plain)
    monkeypatch.setattr(fp, "_dp4a", _dp4a_plain)  # inside `_mac4`
    monkeypatch.setattr(sp, "gdc_wait", _no_wait)
    monkeypatch.setattr(sp, "gdc_launch_dependents", _no_wait)
    return sp


def _words(n: int, kw: int) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.randint(-(2**31), 2**31 - 1, (n, kw), dtype=torch.int32)  # [N, Kw] weight words
    q = torch.randint(-(2**31), 2**31 - 1, (4 * kw,), dtype=torch.int32)  # [4 Kw] activation words
    return w, q


@pytest.mark.parametrize("work", [0, 2, 3])
@pytest.mark.parametrize("depth", [2, 4])
@pytest.mark.parametrize("hint", [0, 2])
def test_loop2_variants(probe, work: int, depth: int, hint: int) -> None:
    n, kw = 37, 200  # a partial row block and a partial last tile
    w, q = _words(n, kw)
    out = torch.empty(n, dtype=torch.int32)
    probe._loop2_kernel[(triton.cdiv(n, 16),)](
        w, q, out, n, kw, BLOCK_N=16, BW=64, WORK=work, DEPTH=depth, HINT=hint
    )
    ref = w.sum(1, dtype=torch.int32) if work == 0 else probe.dp4a_sums(w, q)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("work", [0, 2, 3])
@pytest.mark.parametrize("kw", [128, 200])
def test_all_variants(probe, work: int, kw: int) -> None:
    n = 21  # a partial row block; kw 200 leaves the tile partly masked
    w, q = _words(n, kw)
    out = torch.empty(n, dtype=torch.int32)
    bw = triton.next_power_of_2(kw)
    probe._all_kernel[(triton.cdiv(n, 8),)](w, q, out, n, kw, BLOCK_N=8, BW=bw, WORK=work)
    ref = w.sum(1, dtype=torch.int32) if work == 0 else probe.dp4a_sums(w, q)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("grid", [1, 2, 5])
def test_rows(probe, grid: int) -> None:
    n, kw = 37, 200  # 5 row blocks of 8 (the last partial) over 1, 2 or 5 programs
    w, q = _words(n, kw)
    out = torch.empty(n, dtype=torch.int32)
    probe._rows_kernel[(grid,)](w, q, out, n, kw, BLOCK_N=8, BW=256)
    assert torch.equal(out, probe.dp4a_sums(w, q))


@pytest.mark.parametrize("depth, ahead", [(2, 1), (3, 2)])
def test_ahead(probe, depth: int, ahead: int) -> None:
    n, kw = 21, 136
    w, q = _words(n, kw)
    out = torch.empty(n, dtype=torch.int32)
    probe._ahead_kernel[(triton.cdiv(n, 16),)](w, q, out, n, kw, BLOCK_N=16, BW=64, DEPTH=depth, AHEAD=ahead)
    assert torch.equal(out, probe.dp4a_sums(w, q))


def test_kwarp(probe) -> None:
    n, kw = 19, 200
    w, q = _words(n, kw)
    out = torch.empty(n, dtype=torch.int32)
    probe._kwarp_kernel[(triton.cdiv(n, 8),)](w, q, out, n, kw, BLOCK_N=8, BW=64, W=4, CG=False)
    assert torch.equal(out, probe.dp4a_sums(w, q))


@pytest.mark.parametrize("chunk_major", [True, False])
@pytest.mark.parametrize("c, bn, warps, depth", [(8, 16, 4, 2), (16, 8, 2, 4)])
def test_chunk(probe, chunk_major: bool, c: int, bn: int, warps: int, depth: int) -> None:
    n, kw = 37, 96
    w, q = _words(n, kw)
    p = w.view(n, kw // c, c).transpose(0, 1).contiguous() if chunk_major else w  # [Kw / C, N, C] or [N, Kw]
    out = torch.empty(n, dtype=torch.int32)
    probe._chunk_kernel[(triton.cdiv(n, bn),)](
        p, q, out, n, kw, BLOCK_N=bn, C=c, W=warps, DEPTH=depth, CM=chunk_major
    )
    assert torch.equal(out, probe.dp4a_sums(w, q))


def test_hinted_names() -> None:
    assert sp.hinted("dp4ah2") == ("dp4a", 2) and sp.hinted("loop2") == ("loop2", 0)
    assert sp.hinted("loop2h1") == ("loop2", 1) and sp.hinted("ahead2") == ("ahead2", 0)
