"""Triton RMSNorm and the fused output gate `RMSNorm(x) * o * sigmoid(o)` against the references.

Under TRITON_INTERPRET=1 on CPU at D=19 and 48 (non power of two and padded blocks), with and without a
weight, fp32 and bf16, forward and the gradients of x, o and the weight; plus the dispatch points.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from _ops_tol import TOL, assert_close_scaled, triton_ready

from mmfree.ops.norm import naive as norm_naive
from mmfree.ops.norm import rms_norm, rms_norm_swish_gate

pytestmark = [pytest.mark.interpret, pytest.mark.skipif(not triton_ready(), reason="needs triton")]


def _mod():
    return importlib.import_module("mmfree.ops.norm.triton")


def _run(fn, tensors, dy):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]
    y = fn(*leaves)
    (y.float() * dy).sum().backward()
    return y, [t.grad if t is not None else None for t in leaves]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("D", [19, 48])
@pytest.mark.parametrize("with_weight", [True, False])
def test_swish_gate_matches_reference(gen, device, dtype, D, with_weight):
    x = torch.randn(3, 7, D, generator=gen).to(device, dtype)  # [B, T, D]
    o = (torch.randn(3, 7, D, generator=gen) * 2).to(device, dtype)  # [B, T, D]
    w = (torch.rand(D, generator=gen) + 0.5).to(device) if with_weight else None  # [D]
    dy = torch.randn(3, 7, D, generator=gen).to(device)  # [B, T, D]
    y, grads = _run(lambda a, b, c: _mod().rms_norm_swish_gate_triton(a, b, c, 1e-6), [x, o, w], dy)
    up = [t.float() if t is not None else None for t in (x, o, w)]
    y_ref, grads_ref = _run(lambda a, b, c: norm_naive.rms_norm_swish_gate(a, b, c, 1e-6), up, dy)
    assert y.dtype == dtype
    assert_close_scaled(y, y_ref, TOL[dtype], "y")
    for name, g, g_ref in zip(("dx", "do", "dweight"), grads, grads_ref):
        if g_ref is not None:
            assert_close_scaled(g, g_ref, 2 * TOL[dtype], name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_matches_reference(gen, device, dtype):
    x = (torch.randn(37, 19, generator=gen) * 4).to(device, dtype)  # [M, D]
    w = (torch.rand(19, generator=gen) + 0.5).to(device)  # [D]
    dy = torch.randn(37, 19, generator=gen).to(device)  # [M, D]
    y, grads = _run(lambda a, b: _mod().rms_norm_triton(a, b, 1e-6), [x, w], dy)
    y_ref, grads_ref = _run(lambda a, b: norm_naive.rms_norm(a, b, 1e-6), [x.float(), w], dy)
    assert_close_scaled(y, y_ref, TOL[dtype], "y")
    assert_close_scaled(grads[0], grads_ref[0], 2 * TOL[dtype], "dx")
    assert_close_scaled(grads[1], grads_ref[1], 2 * TOL[dtype], "dweight")


def test_dispatch_points(gen, device):
    x = torch.randn(4, 19, generator=gen).to(device)  # [M, D]
    o = torch.randn(4, 19, generator=gen).to(device)  # [M, D]
    w = torch.rand(19, generator=gen).to(device)  # [D]
    assert_close_scaled(rms_norm(x, w, backend="triton"), rms_norm(x, w, backend="torch"), 1e-5, "rms_norm")
    assert_close_scaled(
        rms_norm_swish_gate(x, o, w, backend="triton"),
        rms_norm_swish_gate(x, o, w, backend="torch"),
        1e-5,
        "gate",
    )
    with pytest.raises(ValueError, match="same shape"):
        rms_norm_swish_gate(x, o[:, :5], w, backend="triton")
    with pytest.raises(ValueError, match="weight must have shape"):
        _mod().rms_norm_triton(x, torch.ones(3, device=device))
