"""Triton ternarization (`mmfree.ops.quant.triton`) against the reference `ternary_codes`.

Under TRITON_INTERPRET=1 on CPU: odd shapes in fp32 and bf16, outliers far past the clamp, an all-zero
weight (the scale's floor), and the dequantized copy written in the same pass.
"""

from __future__ import annotations

import pytest
import torch
from _ops_tol import triton_ready

from mmfree.ops.quant import ternary_codes

pytestmark = [pytest.mark.interpret, pytest.mark.skipif(not triton_ready(), reason="needs triton")]


def _triton(w: torch.Tensor, wq_dtype: torch.dtype | None):
    from mmfree.ops.quant.triton import ternarize_triton

    return ternarize_triton(w, wq_dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(37, 53), (3, 5000)])
def test_ternarize_matches_reference(gen, device, dtype, shape):
    w = torch.randn(*shape, generator=gen).to(device, dtype)  # [N, K]
    w.view(-1)[::97] *= 50.0  # outliers far past the clamp
    codes, g, wq = _triton(w, dtype)
    codes_ref, g_ref = ternary_codes(w)
    assert codes.dtype == torch.int8 and codes.shape == w.shape and g.dtype == torch.float32
    if dtype == torch.float32:  # the reference's own reduction: the same scale and codes to the bit
        assert torch.equal(g, g_ref) and torch.equal(codes, codes_ref)
    # a bf16 weight's mean may sum in another order: g within a few ulps, and a code may differ only where
    # w / g sits on a rounding boundary within that error
    assert torch.allclose(g, g_ref, rtol=1e-5, atol=0)
    differ = codes != codes_ref
    near = ((w.float() / g_ref).abs() - 0.5).abs() < 1e-4
    assert not (differ & ~near).any()
    assert differ.float().mean() < 1e-3
    assert wq is not None and wq.dtype == dtype
    assert torch.equal(wq, (codes.float() * g).to(dtype))


def test_ternarize_zero_weight_and_no_copy(device):
    codes, g, wq = _triton(torch.zeros(4, 8, device=device), None)
    assert wq is None and not codes.any()
    assert g.item() == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="float tensor"):
        _triton(torch.zeros(4, 8, dtype=torch.int8, device=device), None)


def test_ternarize_of_a_cpu_weight_outside_the_interpreter(monkeypatch):
    """`ternarize` on a CPU weight with the interpreter off takes the reference, not a Triton launch."""
    from mmfree.ops.bitlinear import triton as bl

    monkeypatch.setattr(bl, "interpret_mode", lambda: False)
    w = torch.randn(6, 10)
    codes, g = bl.ternarize(w)
    codes_ref, g_ref = ternary_codes(w)
    assert torch.equal(codes, codes_ref) and torch.equal(g, g_ref)
