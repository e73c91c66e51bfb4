"""Triton SwiGLU over the fused gate/up tensor against its reference (`mmfree.ops.glu.naive`).

Under TRITON_INTERPRET=1 on CPU at odd widths (I = 37, and a row count that leaves a partial block), fp32
and bf16: forward and the input gradient, against the reference in the same dtype (the kernel rounds
where the reference stores) and in fp32; plus the dispatch point and its input checks.
"""

from __future__ import annotations

import pytest
import torch
from _ops_tol import TOL, assert_close_scaled, triton_ready

from mmfree.ops.glu import swiglu, swiglu_naive

pytestmark = [pytest.mark.interpret, pytest.mark.skipif(not triton_ready(), reason="needs triton")]


def _run(fn, y, dout):
    leaf = y.detach().clone().requires_grad_(True)
    out = fn(leaf)
    (out.float() * dout).sum().backward()
    return out, leaf.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 7, 74), (2, 1100, 2)])
def test_swiglu_matches_reference(gen, device, dtype, shape):
    y = (torch.randn(*shape, generator=gen) * 3).to(device, dtype)  # [B, T, 2I]
    dout = torch.randn(*shape[:-1], shape[-1] // 2, generator=gen).to(device)  # [B, T, I]
    out, dy = _run(lambda t: swiglu(t, backend="triton"), y, dout)
    out_same, dy_same = _run(swiglu_naive, y, dout.to(dtype))
    out_ref, dy_ref = _run(swiglu_naive, y.float(), dout)
    assert out.dtype == dtype and out.shape == (*shape[:-1], shape[-1] // 2) and dy.dtype == dtype
    assert_close_scaled(out, out_ref, TOL[dtype], "out")
    assert_close_scaled(dy, dy_ref, 2 * TOL[dtype], "dy")
    # against the reference in the kernel's own dtype: the same roundings (in bf16 the interpreter's casts
    # truncate where the GPU rounds to nearest, so there it is held to the fp32 reference's tolerance)
    same = 1e-5 if dtype == torch.float32 else TOL[dtype]
    assert_close_scaled(out, out_same, same, "out (same dtype)")
    assert_close_scaled(dy, dy_same, same, "dy (same dtype)")


def test_swiglu_dispatch_and_checks(gen):
    y = torch.randn(4, 10, generator=gen)  # [M, 2I]
    assert torch.equal(swiglu(y, backend="torch"), swiglu_naive(y))
    from mmfree.ops.glu.triton import swiglu_triton

    with pytest.raises(ValueError, match="must be even"):
        swiglu_triton(torch.randn(4, 9))
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        swiglu_triton(torch.randn(4, 8).to(torch.float64))
