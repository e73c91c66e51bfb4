"""Fused Triton BitLinear against the reference `bitlinear_naive`, forward and backward.

Under TRITON_INTERPRET=1 on CPU at small odd shapes (M=5..33, K=48, N=40): the fused norm+quant kernel's
int8 codes and scales, every GEMM path (Triton int8 with the scale epilogue, torch._int_mm, bf16), the
gradients of x, norm_weight, weight and bias, the per-step weight-code cache, fp32 and bf16.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from _ops_tol import TOL, assert_close_scaled, triton_ready, untied_columns

from mmfree.ops.bitlinear import bitlinear, bitlinear_naive
from mmfree.ops.norm.naive import rms_norm
from mmfree.ops.quant import int8_codes, ternary_codes

pytestmark = [pytest.mark.interpret, pytest.mark.skipif(not triton_ready(), reason="needs triton")]


def _mod():
    return importlib.import_module("mmfree.ops.bitlinear.triton")


def _grads(fn, x, nw, w, b, dy):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in (x, nw, w, b)]
    y = fn(*leaves, 1e-6)
    (y.float() * dy).sum().backward()
    return y, [t.grad if t is not None else None for t in leaves]


def test_norm_quant_codes_match_reference(gen, device):
    x = torch.randn(33, 48, generator=gen).to(device) * 3  # [M, K]
    nw = (torch.rand(48, generator=gen) + 0.5).to(device)  # [K]
    q, s, rstd = _mod().norm_quant(x, nw, 1e-6)
    q_ref, s_ref = int8_codes(rms_norm(x, nw, 1e-6))
    assert q.dtype == torch.int8 and q.shape == (33, 48)
    assert_close_scaled(s, s_ref.squeeze(-1), 1e-5, "scales")
    diff = (q.int() - q_ref.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01  # ties at .5 may round either way
    assert_close_scaled(rstd, torch.rsqrt(x.pow(2).mean(-1) + 1e-6), 1e-5, "rstd")


def test_round_half_to_even(device):
    # rows whose normalized values hit exact .5 multiples of the code step: torch.round semantics
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.0]], device=device)  # [1, 8]
    q, _, _ = _mod().norm_quant(x, None, 0.0)
    q_ref, _ = int8_codes(rms_norm(x, None, 0.0))
    assert torch.equal(q, q_ref)


@pytest.mark.parametrize("mode", ["triton", "torch", "bf16"])
@pytest.mark.parametrize("shape", [(5,), (3, 11)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_bitlinear_fp32_matches_reference(gen, device, monkeypatch, mode, shape, with_bias):
    monkeypatch.setattr(_mod(), "INT8_GEMM", mode)
    K, N = 48, 40
    x = torch.randn(*shape, K, generator=gen).to(device)  # [..., K]
    nw = (torch.rand(K, generator=gen) + 0.5).to(device)  # [K]
    w = (torch.randn(N, K, generator=gen) * 0.05).to(device)  # [N, K]
    b = torch.randn(N, generator=gen).to(device) if with_bias else None  # [N]
    dy = torch.randn(*shape, N, generator=gen).to(device)  # [..., N]
    y, grads = _grads(_mod().bitlinear_triton, x, nw, w, b, dy)
    y_ref, grads_ref = _grads(bitlinear_naive, x, nw, w, b, dy)
    assert y.shape == (*shape, N) and y.dtype == torch.float32
    # a code at a rounding tie moves y by a step times a weight (within tolerance) but a whole dweight
    # column by a step times dy (seen once: 4.6e-2 against a 2.3e-2 bound), so dweight skips those columns
    kept = untied_columns(x, nw)  # [K]
    # the bf16 mode rounds the dequantized operands to bf16 (8 mantissa bits): relative error up to 2^-8
    tol = 1e-2 if mode == "bf16" else 2e-3
    assert_close_scaled(y, y_ref, tol, "y")
    for name, g, g_ref in zip(("dx", "dnorm_weight", "dweight", "dbias"), grads, grads_ref):
        if g_ref is not None and name == "dweight":
            assert_close_scaled(g[:, kept], g_ref[:, kept], tol, name)
        elif g_ref is not None:
            assert_close_scaled(g, g_ref, tol, name)


def test_bitlinear_bf16_matches_fp32_reference(gen, device):
    K, N = 48, 40
    x = torch.randn(2, 13, K, generator=gen).to(device, torch.bfloat16)  # [B, T, K]
    nw = (torch.rand(K, generator=gen) + 0.5).to(device, torch.bfloat16)  # [K]
    w = (torch.randn(N, K, generator=gen) * 0.05).to(device, torch.bfloat16)  # [N, K]
    dy = torch.randn(2, 13, N, generator=gen).to(device)  # [B, T, N]
    y, grads = _grads(_mod().bitlinear_triton, x, nw, w, None, dy)
    y_ref, grads_ref = _grads(bitlinear_naive, x.float(), nw.float(), w.float(), None, dy)
    assert y.dtype == torch.bfloat16 and grads[0].dtype == torch.bfloat16 and grads[2].dtype == torch.bfloat16
    assert_close_scaled(y, y_ref, TOL[torch.bfloat16], "y")
    for name, g, g_ref in zip(("dx", "dnorm_weight", "dweight"), grads, grads_ref):
        assert_close_scaled(g, g_ref, 2 * TOL[torch.bfloat16], name)


def test_weight_codes_cached_per_version(gen, device):
    mod = _mod()
    w = torch.nn.Parameter((torch.randn(40, 48, generator=gen) * 0.05).to(device))  # [N, K]
    codes, g = mod.ternarize(w)
    codes2, _ = mod.ternarize(w)
    assert codes2 is codes  # micro-batches of one step reuse the codes
    ref_codes, ref_g = ternary_codes(w)
    assert torch.equal(codes, ref_codes) and torch.allclose(g, ref_g)
    with torch.no_grad():
        w.mul_(-1.0)  # an optimizer step: in place, bumps _version
    codes3, _ = mod.ternarize(w)
    assert codes3 is not codes and torch.equal(codes3, -ref_codes)


def test_dispatch_and_bad_input(gen, device):
    x = torch.randn(5, 48, generator=gen).to(device)  # [M, K]
    w = (torch.randn(40, 48, generator=gen) * 0.05).to(device)  # [N, K]
    y = bitlinear(x, None, w, backend="triton")
    assert_close_scaled(y, bitlinear(x, None, w, backend="torch"), 2e-3, "dispatch")
    with pytest.raises(ValueError, match="norm_weight"):
        _mod().bitlinear_triton(x, torch.ones(7, device=device), w)
    with pytest.raises(ValueError, match="bias"):
        _mod().bitlinear_triton(x, None, w, torch.ones(3, device=device))


def test_dequantized_weight_cached_per_step(gen, device):
    """The backward's `codes * g` is built once per weight version and reused by later micro-batches."""
    mod = _mod()
    w = torch.nn.Parameter((torch.randn(40, 48, generator=gen) * 0.05).to(device))  # [N, K]
    x = torch.randn(5, 48, generator=gen).to(device).requires_grad_(True)  # [M, K]
    mod.bitlinear_triton(x, None, w).sum().backward()
    cache = w._mmfree_ternary[3]
    wq = cache[torch.float32]
    codes, g = mod.ternarize(w)
    assert torch.equal(wq, codes.float() * g)
    mod.bitlinear_triton(x, None, w).sum().backward()
    assert w._mmfree_ternary[3][torch.float32] is wq  # a second micro-batch reuses it
    with torch.no_grad():
        w.mul_(-1.0)
    mod.bitlinear_triton(x, None, w).sum().backward()
    assert torch.equal(w._mmfree_ternary[3][torch.float32], -wq)  # rebuilt after the update


@pytest.mark.interpret
def test_autocast_runs_the_kernel_in_the_autocast_dtype(device: str) -> None:
    """Under autocast the fused path computes in bf16 like F.linear; grads reach fp32 master weights."""
    if not triton_ready():
        pytest.skip("triton kernels unavailable here")
    x = torch.randn(7, 48, device=device, requires_grad=True)
    weight = torch.randn(40, 48, device=device, requires_grad=True)
    norm_weight = torch.rand(48, device=device) + 0.5
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
        y = bitlinear(x, norm_weight, weight, backend="triton")
        ref = bitlinear(x.detach().bfloat16(), norm_weight, weight.detach(), backend="torch")
    assert y.dtype == torch.bfloat16
    # bf16 rounding of the normalized input can move an int8 code by one: compare norms, not elements
    assert ((y.float() - ref.float()).norm() / ref.float().norm()).item() < 2e-2
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32
    assert torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


@pytest.mark.parametrize("fused", [True, False])
def test_weight_codes_follow_every_optimizer_step(gen, device, fused: bool) -> None:
    """A fused AdamW leaves `_version` alone; the cached codes must still be rebuilt after its step."""
    from mmfree.ops.bitlinear import invalidate_weight_cache

    x = torch.randn(7, 48, generator=gen).to(device)  # [M, K]
    nw = torch.ones(48, device=device)  # [K]
    w = torch.nn.Parameter(torch.randn(40, 48, generator=gen).to(device) * 0.02)  # [N, K]
    opt = torch.optim.AdamW([w], lr=0.05, fused=fused)
    codes_before, _ = _mod().ternarize(w)
    assert _mod().ternarize(w)[0] is codes_before  # micro-batches of one step share the codes
    for _ in range(3):
        y = bitlinear(x, nw, w, None, 1e-6, backend="triton")  # [M, N]
        y.square().sum().backward()
        opt.step()
        opt.zero_grad()
    codes_after, _ = _mod().ternarize(w)
    assert not torch.equal(codes_after, codes_before)  # the weights moved enough to flip codes
    y = bitlinear(x, nw, w, None, 1e-6, backend="triton")
    ref = bitlinear_naive(x.double(), nw.double(), w.detach().double(), None, 1e-6)
    assert_close_scaled(y.double(), ref, 1e-4, "after steps")
    with torch.no_grad():
        w.data.mul_(-1.0)  # a write through .data is invisible to the key ...
    invalidate_weight_cache()  # ... until the cache is dropped by hand
    y = bitlinear(x, nw, w, None, 1e-6, backend="triton")
    ref = bitlinear_naive(x.double(), nw.double(), w.detach().double(), None, 1e-6)
    assert_close_scaled(y.double(), ref, 1e-4, "after .data write")
