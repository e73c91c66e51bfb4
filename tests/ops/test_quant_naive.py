"""Reference quantizers: codes, scales, straight-through gradients."""

from __future__ import annotations

import torch

from mmfree.ops.quant import act_quant, int8_codes, ternary_codes, weight_quant


def test_ternary_codes_match_definition() -> None:
    w = torch.randn(37, 19)
    codes, g = ternary_codes(w)
    assert codes.dtype == torch.int8 and set(codes.unique().tolist()) <= {-1, 0, 1}
    assert torch.allclose(g, w.abs().mean())
    expected = torch.clamp(torch.round(w / w.abs().mean()), -1, 1)
    # w * (1/g) and w / g can differ in the last bit at exact .5 ties; allow none here on random data
    assert (codes.float() != expected).sum() == 0
    assert torch.allclose(weight_quant(w), codes.float() * g, atol=1e-6)


def test_ternary_scale_floor_for_zero_weight() -> None:
    codes, g = ternary_codes(torch.zeros(4, 4))
    assert (codes == 0).all() and abs(float(g) - 1e-5) < 1e-10


def test_int8_codes_per_token() -> None:
    x = torch.randn(5, 3, 40) * torch.rand(5, 3, 1) * 10
    codes, s = int8_codes(x)
    assert codes.dtype == torch.int8 and s.shape == (5, 3, 1)
    assert (codes.abs().amax(-1) == 127).all()  # each token's absmax maps to 127
    assert torch.allclose(act_quant(x), codes.float() / s, atol=1e-6)
    assert ((act_quant(x) - x).abs() <= 0.5 / s + 1e-6).all()


def test_straight_through_gradients() -> None:
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(3, 8, requires_grad=True)
    (weight_quant(w) * torch.arange(64.0).view(8, 8)).sum().backward()
    (act_quant(x) * 2).sum().backward()
    assert torch.equal(w.grad, torch.arange(64.0).view(8, 8))
    assert torch.equal(x.grad, torch.full_like(x, 2.0))
