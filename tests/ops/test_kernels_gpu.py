"""Real-shape bf16 checks of the Triton kernels on a CUDA GPU (`pytest -m gpu`, run on the H200).

Each kernel against its reference upcast to fp32: MLGRU at B=8, T=2048, D=1024/2048 and T=100 in the tiled
single-pass form (with resets and left padding), and the chunked / fused-recurrent forms, the fused BitLinear at the 370M/1.3B projection shapes on every GEMM path,
the output gate, and the chunked LM-head loss at vocabulary 32000.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from _ops_tol import assert_close_scaled

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
BF16 = 2e-2


def _grads(fn, tensors, dy):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]
    out = fn(*leaves)
    y = out[0] if isinstance(out, tuple) else out
    (y.float() * dy).sum().backward()
    return y, [t.grad if t is not None else None for t in leaves]


@pytest.mark.parametrize(
    ("T", "D", "form"),
    [
        (2048, 1024, "auto"),
        (2048, 2048, "auto"),
        (100, 1024, "auto"),
        (2048, 1024, "chunked"),
        (100, 1024, "chunked"),
    ],
)
def test_mlgru_bf16(T, D, form):
    from mmfree.ops.mlgru import mlgru_gated_naive
    from mmfree.ops.mlgru.triton import mlgru_triton

    B, dev = 8, "cuda"
    f_raw = torch.randn(B, T, D, device=dev, dtype=torch.bfloat16)  # [B, T, D]
    c_raw = torch.randn(B, T, D, device=dev, dtype=torch.bfloat16)  # [B, T, D]
    lb = torch.rand(D, device=dev) * 0.9  # [D]
    h0 = torch.randn(B, D, device=dev)  # [B, D]
    reset = torch.rand(B, T, device=dev) < 0.002  # [B, T]
    mask = torch.ones(B, T, device=dev)  # [B, T]
    mask[0, : T // 3] = 0.0  # left padding on one row
    dy = torch.randn(B, T, D, device=dev)  # [B, T, D]
    y, g = _grads(
        lambda f, c, l, h: mlgru_triton(f, c, l, h, reset, mask, form=form), [f_raw, c_raw, lb, h0], dy
    )
    y_ref, g_ref = _grads(
        lambda f, c, l, h: mlgru_gated_naive(f.float(), c.float(), l, h, reset, mask),
        [f_raw, c_raw, lb, h0],
        dy,
    )
    assert_close_scaled(y, y_ref, BF16, "h")
    for name, a, b in zip(("df", "dc", "dlb", "dh0"), g, g_ref):
        assert_close_scaled(a, b, 3 * BF16, name)


@pytest.mark.parametrize(("T", "D"), [(2048, 1024), (100, 1000)])
@pytest.mark.parametrize(
    "tiles",
    [
        ((32, 32, 1, 1), (16, 32, 2, 1)),
        ((32, 32, 1, 0), (32, 64, 2, 0)),
        ((128, 32, 4, 0, 4), (64, 32, 2, 0, 2)),
        ((128, 64, 4, 2, 4), (128, 32, 4, 0, 4)),
        ((128, 32, 8, 0, 8, 2), (64, 32, 4, 0, 4, 2)),  # tiles loaded ahead: two, as the tables' batch-8 rows
        ((128, 64, 4, 2, 4, 0), (32, 128, 4, 2, 2, 1)),  # none; one for a segmented backward
    ],
)
@pytest.mark.parametrize("fast", [True, False])
def test_mlgru_tiled_layouts_bf16(T, D, tiles, fast, monkeypatch):
    """The tiled kernels in their column layouts (V=1 vectorized rows, V=0 one column per thread, V=2 two;
    alone and with a tile's steps in segments on several warps; 0-2 tiles loaded ahead), with the MUFU sigmoid
    (`FAST_SIGMOID`) and without it, against the reference at B=32 (whole tiles at T=2048, masks at
    T=100)."""
    from mmfree.ops.mlgru import mlgru_gated_naive
    from mmfree.ops.mlgru import triton_tiled as tt

    monkeypatch.setattr(tt, "FWD_CONFIG", tiles[0])
    monkeypatch.setattr(tt, "BWD_CONFIG", tiles[1])
    monkeypatch.setattr(tt, "FAST_SIGMOID", fast)
    B, dev = 32, "cuda"
    f_raw = torch.randn(B, T, D, device=dev, dtype=torch.bfloat16)  # [B, T, D]
    c_raw = torch.randn(B, T, D, device=dev, dtype=torch.bfloat16)  # [B, T, D]
    lb = torch.rand(D, device=dev) * 0.9  # [D]
    dy = torch.randn(B, T, D, device=dev, dtype=torch.bfloat16)  # [B, T, D]
    h, final = tt.mlgru_fwd_tiled(f_raw, c_raw, lb, None, None, None)
    df, dc, dlb, _ = tt.mlgru_bwd_tiled(dy, None, f_raw, c_raw, lb, None, None, None, h)
    y_ref, g_ref = _grads(
        lambda f, c, l: mlgru_gated_naive(f.float(), c.float(), l, None, None, None), [f_raw, c_raw, lb], dy
    )
    assert_close_scaled(h, y_ref, BF16, "h")
    assert_close_scaled(final, y_ref[:, -1].float(), BF16, "final")
    for name, a, b in zip(("df", "dc", "dlb"), (df, dc, dlb), g_ref):
        assert_close_scaled(a, b, 3 * BF16, name)


@pytest.mark.parametrize("mode", ["triton", "torch", "bf16"])
@pytest.mark.parametrize(("K", "N"), [(1024, 1024), (1024, 5632), (2816, 1024), (2048, 11264), (5632, 2048)])
def test_bitlinear_bf16(mode, K, N, monkeypatch):
    from mmfree.ops.bitlinear import bitlinear_naive

    mod = importlib.import_module("mmfree.ops.bitlinear.triton")
    monkeypatch.setattr(mod, "INT8_GEMM", mode)
    M, dev = 4096, "cuda"
    x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)  # [M, K]
    nw = torch.rand(K, device=dev, dtype=torch.bfloat16) + 0.5  # [K]
    w = (torch.randn(N, K, device=dev) * 0.02).to(torch.bfloat16)  # [N, K]
    dy = torch.randn(M, N, device=dev) / N**0.5  # [M, N]
    y, g = _grads(lambda a, b, c: mod.bitlinear_triton(a, b, c), [x, nw, w], dy)
    y_ref, g_ref = _grads(lambda a, b, c: bitlinear_naive(a.float(), b.float(), c.float()), [x, nw, w], dy)
    assert_close_scaled(y, y_ref, BF16, "y")
    for name, a, b in zip(("dx", "dnorm_weight", "dweight"), g, g_ref):
        assert_close_scaled(a, b, 2 * BF16, name)


def test_swish_gate_bf16():
    from mmfree.ops.norm.naive import rms_norm_swish_gate
    from mmfree.ops.norm.triton import rms_norm_swish_gate_triton

    x = torch.randn(8, 2048, 1024, device="cuda", dtype=torch.bfloat16)  # [B, T, D]
    o = torch.randn_like(x)  # [B, T, D]
    w = torch.rand(1024, device="cuda") + 0.5  # [D]
    dy = torch.randn(x.shape, device="cuda")  # [B, T, D]
    y, g = _grads(rms_norm_swish_gate_triton, [x, o, w], dy)
    y_ref, g_ref = _grads(lambda a, b, c: rms_norm_swish_gate(a.float(), b.float(), c), [x, o, w], dy)
    assert_close_scaled(y, y_ref, BF16, "y")
    for name, a, b in zip(("dx", "do", "dw"), g, g_ref):
        assert_close_scaled(a, b, 2 * BF16, name)


def test_lm_head_loss_bf16():
    from mmfree.ops.loss import lm_head_loss_chunked, lm_head_loss_naive

    N, D, V = 8192, 1024, 32000
    hidden = torch.randn(N, D, device="cuda", dtype=torch.bfloat16)  # [N, D]
    weight = (torch.randn(V, D, device="cuda") * 0.02).to(torch.bfloat16)  # [V, D]
    nw = torch.ones(D, device="cuda", dtype=torch.bfloat16)  # [D]
    labels = torch.randint(0, V, (N,), device="cuda")  # [N]
    out = []
    for fn in (lm_head_loss_chunked, lm_head_loss_naive):
        leaves = [t.detach().clone().requires_grad_(True) for t in (hidden, weight, nw)]
        loss = fn(leaves[0], leaves[1], labels, leaves[2], True, 1e-6)
        loss.backward()
        out.append((loss, [t.grad for t in leaves]))
    (loss, g), (loss_ref, g_ref) = out
    assert torch.allclose(loss, loss_ref, rtol=1e-2)
    for name, a, b in zip(("dhidden", "dweight", "dnorm"), g, g_ref):
        assert_close_scaled(a, b, 2 * BF16, name)


def test_swiglu_bf16():
    from mmfree.ops.glu import swiglu_naive
    from mmfree.ops.glu.triton import swiglu_triton

    y = torch.randn(8, 2048, 2 * 2816, device="cuda", dtype=torch.bfloat16) * 3  # [B, T, 2I] (370M GLU)
    dout = torch.randn(8, 2048, 2816, device="cuda")  # [B, T, I]
    out, (dy,) = _grads(swiglu_triton, [y], dout)
    out_ref, (dy_ref,) = _grads(lambda t: swiglu_naive(t.float()), [y], dout)
    assert_close_scaled(out, out_ref, BF16, "out")
    assert_close_scaled(dy, dy_ref, 2 * BF16, "dy")


def test_ternarize_real_shape():
    from mmfree.ops.quant import ternary_codes
    from mmfree.ops.quant.triton import ternarize_triton

    w = torch.randn(5632, 2048, device="cuda", dtype=torch.bfloat16) * 0.02  # [N, K] (1.3B gate/up)
    codes, g, wq = ternarize_triton(w, torch.bfloat16)
    codes_ref, g_ref = ternary_codes(w)
    assert torch.allclose(g, g_ref, rtol=1e-5, atol=0)
    assert (codes != codes_ref).float().mean() < 1e-5
    assert torch.equal(wq, (codes.float() * g).to(torch.bfloat16))


def test_bitlinear_shared_bf16():
    from mmfree.ops.bitlinear.shared import bitlinear_shared_triton
    from mmfree.ops.bitlinear.triton import bitlinear_triton

    x = torch.randn(8, 2048, 1024, device="cuda", dtype=torch.bfloat16)  # [B, T, d] (370M MLGRU input)
    nws = [torch.rand(1024, device="cuda", dtype=torch.bfloat16) + 0.5 for _ in range(3)]  # 3 x [d]
    ws = [torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16) * 0.02 for _ in range(3)]  # 3 x [d, d]
    dys = [torch.randn(8, 2048, 1024, device="cuda") for _ in range(3)]  # 3 x [B, T, d]
    runs = []
    for shared in (True, False):
        leaves = [t.detach().clone().requires_grad_(True) for t in [x, *nws, *ws]]
        xl, nl, wl = leaves[0], leaves[1:4], leaves[4:]
        ys = (
            bitlinear_shared_triton(xl, nl, wl, 1e-6)
            if shared
            else [bitlinear_triton(xl, n, w, None, 1e-6) for n, w in zip(nl, wl)]
        )
        sum((y.float() * dy).sum() for y, dy in zip(ys, dys)).backward()
        runs.append((ys, [t.grad for t in leaves]))
    for a, b in zip(runs[0][0], runs[1][0]):
        assert torch.equal(a, b)
    for name, a, b in zip(["dx", "dnw0", "dnw1", "dnw2", "dw0", "dw1", "dw2"], runs[0][1], runs[1][1]):
        assert_close_scaled(a, b, BF16, name)
