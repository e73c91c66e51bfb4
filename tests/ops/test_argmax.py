"""The greedy token pick (`mmfree.ops.argmax`): the Triton kernel against `torch.argmax` on fresh random rows,
odd widths, ties (first index wins, also across passes), -inf rows, strided rows and bf16; the dispatch's
input checks. Runs under TRITON_INTERPRET=1 (and on a GPU)."""

from __future__ import annotations

import pytest
import torch
from _ops_tol import triton_ready

from mmfree.ops.argmax import argmax_rows

needs_triton = pytest.mark.skipif(not triton_ready(), reason="needs Triton and a GPU or TRITON_INTERPRET=1")


def _triton(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return argmax_rows(x, out=out, backend="triton")


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("B, V", [(1, 1), (1, 7), (3, 1000), (2, 4099)])
def test_argmax_matches_torch(dtype: torch.dtype, B: int, V: int, gen, device) -> None:
    x = (torch.randn(B, V, generator=gen) * 4).to(dtype).to(device)  # bf16 rows hold ties
    assert torch.equal(_triton(x).cpu(), x.argmax(-1).cpu())


@pytest.mark.interpret
@needs_triton
def test_ties_take_the_first_index_across_passes(gen, device, monkeypatch) -> None:
    import mmfree.ops.argmax.triton as kernel

    monkeypatch.setattr(kernel, "MAX_BLOCK", 64)  # several passes over a short row
    V = 300
    x = torch.randn(4, V, generator=gen)
    x[0, [5, 70, 299]] = 9.0  # the maximum in three passes: the first wins
    x[1, [200, 250]] = 9.0  # twice in one late pass
    x[2] = float("-inf")  # all -inf: index 0, as torch
    x[3, 299] = 9.0  # the last column, in the last (partial) pass
    got = _triton(x.to(device)).cpu()
    assert got.tolist() == x.argmax(-1).tolist() == [5, 200, 0, 299]


@pytest.mark.interpret
@needs_triton
def test_strided_rows_and_columns_and_out_buffer(gen, device) -> None:
    big = torch.randn(3, 520, generator=gen).to(device)
    x = big[:, :500]  # row stride 520
    out = torch.full((3,), -1, dtype=torch.long, device=device)
    assert _triton(x, out) is out
    assert torch.equal(out.cpu(), x.argmax(-1).cpu())
    t = big.t()[:, :3].contiguous().t()  # [3, 520] with column stride 3
    assert t.stride(1) != 1 and torch.equal(_triton(t).cpu(), t.argmax(-1).cpu())


@pytest.mark.interpret
@needs_triton
def test_nan_counts_as_the_largest_value(device) -> None:
    x = torch.tensor([[0.0, 3.0, float("nan"), 5.0], [1.0, float("nan"), float("nan"), 2.0]], device=device)
    assert _triton(x).cpu().tolist() == [2, 1]


def test_bad_shapes_and_out_buffers_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"\[B, V\]"):
        argmax_rows(torch.zeros(5))
    with pytest.raises(ValueError, match=r"\[B, V\]"):
        argmax_rows(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="int64"):
        argmax_rows(torch.zeros(2, 5), out=torch.zeros(2, dtype=torch.int32))
    assert argmax_rows(torch.tensor([[1.0, 3.0, 3.0]]), backend="torch").tolist() == [1]
