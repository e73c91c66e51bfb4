"""Layers: BitLinear against its definition, MLGRU forms, GLU width rule; importable without transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mmfree.layers import GLU, MLGRU, BitLinear, glu_intermediate_size


def test_bitlinear_equals_definition() -> None:
    layer = BitLinear(24, 10)
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 24)
    xn = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * layer.norm.weight
    s = 127 / xn.abs().amax(-1, keepdim=True)
    xq = (xn * s).round().clamp(-128, 127) / s
    g = layer.weight.abs().mean()
    wq = (layer.weight / g).round().clamp(-1, 1) * g
    torch.testing.assert_close(layer(x), F.linear(xq, wq), atol=1e-5, rtol=1e-5)


def test_bitlinear_ternary_codes_and_grads() -> None:
    layer = BitLinear(16, 8)
    codes, _ = layer.ternary()
    assert codes.shape == (8, 16) and codes.dtype == torch.int8
    x = torch.randn(4, 16, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None and layer.norm.weight.grad is not None


@pytest.mark.parametrize("gate_form", ["official", "paper"])
def test_mlgru_forms_and_state(gate_form: str) -> None:
    mixer = MLGRU(16, gate_form=gate_form)
    assert hasattr(mixer, "g_norm") == (gate_form == "official")
    x = torch.randn(2, 9, 16)
    out, state = mixer(x)
    assert out.shape == x.shape and state.shape == (2, 16) and state.dtype == torch.float32
    o1, s1 = mixer(x[:, :4])
    o2, _ = mixer(x[:, 4:], state=s1)
    torch.testing.assert_close(torch.cat([o1, o2], 1), out, atol=1e-5, rtol=1e-4)


def test_mlgru_rejects_unknown_gate_form() -> None:
    with pytest.raises(ValueError, match="gate_form"):
        MLGRU(8, gate_form="swapped")


def test_glu_width_rule_and_shape() -> None:
    assert [glu_intermediate_size(d) for d in (1024, 2048, 2560, 64)] == [2816, 5632, 6912, 256]
    glu = GLU(32, glu_intermediate_size(32))
    assert glu.gate_proj.weight.shape == (512, 32) and glu(torch.randn(2, 3, 32)).shape == (2, 3, 32)


def test_ops_and_layers_import_without_transformers() -> None:
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "import mmfree, mmfree.ops, mmfree.layers\n"
        "import torch; mmfree.layers.MLGRU(8)(torch.randn(1, 3, 8))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
