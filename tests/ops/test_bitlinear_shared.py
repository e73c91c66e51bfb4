"""BitLinears sharing one input (`mmfree.ops.bitlinear.bitlinear_shared`) against one BitLinear call each.

Under TRITON_INTERPRET=1 on CPU at odd shapes (3 x 13 rows, K = 40, outputs of 24 / 56 / 24 and 2 of
them), fp32 and bf16: every output equals the single Triton BitLinear's bits, and the gradients of x, of
every norm weight and of every weight match both the single Triton BitLinear's backward and the fp32
reference; plus the torch path, the shape checks, and the MLGRU layer using it on the Triton backend.
"""

from __future__ import annotations

import pytest
import torch
from _ops_tol import TOL, assert_close_scaled, triton_ready, untied_columns

from mmfree.ops.bitlinear import bitlinear, bitlinear_shared

pytestmark = [pytest.mark.interpret, pytest.mark.skipif(not triton_ready(), reason="needs triton")]


def _leaves(ts):
    return [t.detach().clone().requires_grad_(True) for t in ts]


def _inputs(gen, device, dtype, widths):
    K = 40
    x = (torch.randn(3, 13, K, generator=gen) * 2).to(device, dtype)  # [B, T, K]
    nws = [(torch.rand(K, generator=gen) + 0.5).to(device) for _ in widths]  # P x [K]
    ws = [(torch.randn(n, K, generator=gen) * 0.1).to(device) for n in widths]  # P x [N_p, K]
    dys = [torch.randn(3, 13, n, generator=gen).to(device) for n in widths]  # P x [B, T, N_p]
    return x, nws, ws, dys


def _shared(x, nws, ws, dys, backend):
    x, nws, ws = _leaves([x]), _leaves(nws), _leaves(ws)
    ys = bitlinear_shared(x[0], nws, ws, 1e-6, backend=backend)
    sum((y.float() * dy).sum() for y, dy in zip(ys, dys)).backward()
    return ys, x[0].grad, [t.grad for t in nws], [t.grad for t in ws]


def _separate(x, nws, ws, dys, backend):
    x, nws, ws = _leaves([x]), _leaves(nws), _leaves(ws)
    ys = [bitlinear(x[0], nw, w, None, 1e-6, backend=backend) for nw, w in zip(nws, ws)]
    sum((y.float() * dy).sum() for y, dy in zip(ys, dys)).backward()
    return ys, x[0].grad, [t.grad for t in nws], [t.grad for t in ws]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("widths", [(24, 56, 24), (24, 24)])
def test_shared_matches_separate_bitlinears(gen, device, dtype, widths):
    x, nws, ws, dys = _inputs(gen, device, dtype, widths)
    ys, dx, dnws, dws = _shared(x, nws, ws, dys, "triton")
    ys_1, dx_1, dnws_1, dws_1 = _separate(x, nws, ws, dys, "triton")
    _, dx_ref, dnws_ref, dws_ref = _separate(x.float(), nws, ws, dys, "torch")
    for y, y_1 in zip(ys, ys_1):
        assert y.dtype == dtype and torch.equal(y, y_1)
    assert dx.dtype == dtype
    # one dX summed in fp32 against P rounded dX added in the input dtype: same math, rounding apart
    assert_close_scaled(dx, dx_1, 1e-5 if dtype == torch.float32 else TOL[dtype], "dx vs separate")
    assert_close_scaled(dx, dx_ref, 2 * TOL[dtype], "dx vs reference")
    for p in range(len(widths)):
        assert_close_scaled(dnws[p], dnws_1[p], 1e-5 if dtype == torch.float32 else TOL[dtype], f"dnw{p}")
        assert_close_scaled(dnws[p], dnws_ref[p], 2 * TOL[dtype], f"dnw{p} vs reference")
        assert torch.equal(dws[p], dws_1[p]), f"dw{p}"
        # fp32: a code at a rounding tie moves a whole dW column (bf16's tolerance covers a step)
        kept = (
            untied_columns(x, nws[p]) if dtype == torch.float32 else torch.ones(x.shape[-1], dtype=torch.bool)
        )
        assert_close_scaled(dws[p][:, kept], dws_ref[p][:, kept], 2 * TOL[dtype], f"dw{p} vs reference")


def test_shared_torch_path_is_separate_calls(gen):
    x, nws, ws, dys = _inputs(gen, "cpu", torch.float32, (8, 16))
    ys, dx, dnws, dws = _shared(x, nws, ws, dys, "torch")
    ys_1, dx_1, dnws_1, dws_1 = _separate(x, nws, ws, dys, "torch")
    assert all(torch.equal(a, b) for a, b in zip(ys, ys_1)) and torch.equal(dx, dx_1)
    assert all(torch.equal(a, b) for a, b in zip(dnws + dws, dnws_1 + dws_1))


def test_shared_rejects_mismatched_shapes(device):
    from mmfree.ops.bitlinear.shared import bitlinear_shared_triton

    x = torch.randn(4, 8, device=device)
    with pytest.raises(ValueError, match=r"each weight must be \[N, 8\]"):
        bitlinear_shared_triton(x, [torch.ones(8, device=device)], [torch.zeros(4, 6, device=device)], 1e-6)
    with pytest.raises(ValueError, match="as many norm weights as weights"):
        bitlinear_shared_triton(x, [], [torch.zeros(4, 8, device=device)], 1e-6)


def test_mlgru_layer_uses_the_shared_op(gen, device, monkeypatch):
    """On the Triton backend the layer's i/f/g projections run as one shared-input op, with the module
    calls' values and gradients (torch backend as the reference)."""
    from mmfree.layers.mlgru import MLGRU
    from mmfree.ops.bitlinear import shared

    calls = []
    real = shared.SharedInputBitLinearFunction.apply
    monkeypatch.setattr(shared.SharedInputBitLinearFunction, "apply", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    layer = MLGRU(32, gate_form="official").to(device)
    x = torch.randn(2, 7, 32, generator=gen).to(device)  # [B, T, d]
    grads = {}
    for backend in ("triton", "torch"):
        monkeypatch.setenv("MMFREE_BACKEND", backend)
        layer.zero_grad()
        out, _ = layer(x)
        out.square().sum().backward()
        grads[backend] = (out.detach(), {n: p.grad.clone() for n, p in layer.named_parameters()})
    assert calls == [1]
    assert_close_scaled(grads["triton"][0], grads["torch"][0], 5e-2, "out")
    for name, g in grads["torch"][1].items():
        assert_close_scaled(grads["triton"][1][name], g, 1e-1, name)
