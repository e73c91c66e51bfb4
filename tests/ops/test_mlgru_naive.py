"""Reference MLGRU recurrence: sequential and parallel forms agree; resets, states and masks behave."""

from __future__ import annotations

import pytest
import torch

from mmfree.ops import mlgru, reset_from_cu_seqlens, reset_from_eos
from mmfree.ops.mlgru import mlgru_gated_naive, mlgru_gates, mlgru_scan_parallel, mlgru_scan_sequential


@pytest.mark.parametrize("T", [1, 2, 7, 64, 129])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_parallel_matches_sequential(T: int, dtype: torch.dtype) -> None:
    B, D = 3, 11
    f = torch.rand(B, T, D, dtype=torch.float64)
    i = torch.randn(B, T, D, dtype=torch.float64)
    h0 = torch.randn(B, D, dtype=torch.float64)
    reset = torch.rand(B, T) < 0.2
    hs, fs = mlgru_scan_sequential(f, i, h0, reset)
    hp, fp = mlgru_scan_parallel(f.to(dtype), i.to(dtype), h0, reset)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert fp.dtype == torch.float32 and hp.dtype == dtype
    torch.testing.assert_close(hp.double(), hs.double(), atol=tol, rtol=tol)
    torch.testing.assert_close(fp.double(), fs.double(), atol=tol, rtol=tol)


def test_gradients_agree_including_initial_state() -> None:
    B, T, D = 2, 33, 5
    inputs = [torch.rand(B, T, D, dtype=torch.float64), torch.randn(B, T, D, dtype=torch.float64)]
    h0 = torch.randn(B, D, dtype=torch.float64)
    grads = []
    for scan in (mlgru_scan_sequential, mlgru_scan_parallel):
        f, i, s = (t.clone().requires_grad_() for t in (*inputs, h0))
        h, final = scan(f, i, s)
        (h.pow(2).sum() + final.sum()).backward()
        grads.append((f.grad, i.grad, s.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a.double(), b.double(), atol=1e-5, rtol=1e-5)


def test_reset_equals_separate_documents() -> None:
    D = 6
    f_raw, c_raw = torch.randn(1, 20, D), torch.randn(1, 20, D)
    cu = torch.tensor([0, 7, 15, 20])
    h, _ = mlgru(f_raw, c_raw, reset=reset_from_cu_seqlens(cu, 20))
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        hd, _ = mlgru(f_raw[:, a:b], c_raw[:, a:b])
        torch.testing.assert_close(h[:, a:b], hd, atol=1e-6, rtol=1e-5)


def test_reset_from_eos_marks_next_position() -> None:
    ids = torch.tensor([[5, 2, 7, 8, 2, 2]])
    assert reset_from_eos(ids, 2).tolist() == [[False, False, True, False, False, True]]


def test_chunked_calls_with_state_equal_one_call() -> None:
    B, T, D = 2, 30, 4
    f_raw, c_raw, lb = torch.randn(B, T, D), torch.randn(B, T, D), torch.rand(D) * 0.5
    full, final = mlgru(f_raw, c_raw, lb)
    h1, s1 = mlgru(f_raw[:, :11], c_raw[:, :11], lb)
    h2, s2 = mlgru(f_raw[:, 11:], c_raw[:, 11:], lb, initial_state=s1)
    torch.testing.assert_close(torch.cat([h1, h2], 1), full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(s2, final)


def test_gates_and_padding_mask() -> None:
    B, T, D = 2, 9, 3
    f_raw, c_raw, lb = torch.randn(B, T, D), torch.randn(B, T, D), torch.rand(D)
    f, i = mlgru_gates(f_raw, c_raw, lb)
    assert (f >= lb - 1e-7).all() and (f <= 1).all()
    torch.testing.assert_close(i, torch.nn.functional.silu(c_raw) * (1 - f))
    mask = torch.ones(B, T)
    mask[0, :4] = 0  # left padding of row 0
    h, _ = mlgru_gated_naive(f_raw, c_raw, lb, mask=mask)
    assert (h[0, :4] == 0).all()
    h_unpadded, _ = mlgru_gated_naive(f_raw[:1, 4:], c_raw[:1, 4:], lb)
    torch.testing.assert_close(h[:1, 4:], h_unpadded)


def test_bad_shapes_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"\[B, T, D\]"):
        mlgru(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="initial_state"):
        mlgru(torch.randn(2, 3, 4), torch.randn(2, 3, 4), initial_state=torch.randn(3, 4))
    with pytest.raises(ValueError, match="cu_seqlens"):
        reset_from_cu_seqlens(torch.tensor([0, 3, 9]), 10)
