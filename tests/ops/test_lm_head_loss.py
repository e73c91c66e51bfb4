"""Chunked LM-head cross-entropy against the full-logits reference (CPU, plain PyTorch).

Ternary (BitLinear) and full-precision heads, ignored labels, a chunk size that does not divide N,
forward and the gradients of hidden, weight and norm_weight, fp32 and bf16, and the dispatch point.
"""

from __future__ import annotations

import pytest
import torch

from mmfree.ops.loss import lm_head_loss, lm_head_loss_chunked, lm_head_loss_naive


def _run(fn, hidden, weight, norm_weight, **kw):
    leaves = [
        t.detach().clone().requires_grad_(True) if t is not None else None
        for t in (hidden, weight, norm_weight)
    ]
    loss = fn(leaves[0], leaves[1], norm_weight=leaves[2], **kw)
    (loss * 1.7).backward()
    return loss, [t.grad if t is not None else None for t in leaves]


@pytest.mark.parametrize("ternary", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_matches_reference(gen, ternary, dtype):
    N, D, V = 37, 24, 53
    hidden = torch.randn(N, D, generator=gen).to(dtype)  # [N, D]
    weight = (torch.randn(V, D, generator=gen) * 0.1).to(dtype)  # [V, D]
    norm_weight = (torch.rand(D, generator=gen) + 0.5).to(dtype) if ternary else None  # [D]
    labels = torch.randint(0, V, (N,), generator=gen)  # [N]
    labels[torch.rand(N, generator=gen) < 0.2] = -100
    kw = dict(labels=labels, ternary=ternary, eps=1e-6)
    loss, grads = _run(lm_head_loss_chunked, hidden, weight, norm_weight, chunk_tokens=8, **kw)
    loss_ref, grads_ref = _run(lm_head_loss_naive, hidden, weight, norm_weight, **kw)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, loss_ref, rtol=tol, atol=tol)
    for name, g, g_ref in zip(("dhidden", "dweight", "dnorm_weight"), grads, grads_ref):
        if g_ref is None:
            assert g is None, name
            continue
        assert g.dtype == g_ref.dtype, name
        err = (g.float() - g_ref.float()).abs().max()
        assert err <= tol * g_ref.float().abs().max() + 1e-7, f"{name}: {err}"


def test_hidden_only_gradient_and_frozen_head(gen):
    """A frozen head (no weight grad) still gives the hidden gradient, and the loss matches."""
    hidden = torch.randn(9, 16, generator=gen, requires_grad=True)  # [N, D]
    weight = torch.randn(31, 16, generator=gen) * 0.1  # [V, D]
    labels = torch.randint(0, 31, (9,), generator=gen)  # [N]
    loss = lm_head_loss_chunked(hidden, weight, labels, ternary=False, chunk_tokens=4)
    loss.backward()
    h2 = hidden.detach().clone().requires_grad_(True)
    ref = lm_head_loss_naive(h2, weight, labels, ternary=False)
    ref.backward()
    assert torch.allclose(loss, ref, atol=1e-5)
    assert torch.allclose(hidden.grad, h2.grad, atol=1e-6)


def test_dispatch_and_errors(gen, monkeypatch):
    hidden = torch.randn(6, 8, generator=gen)  # [N, D]
    weight = torch.randn(11, 8, generator=gen)  # [V, D]
    labels = torch.randint(0, 11, (6,), generator=gen)  # [N]
    monkeypatch.setenv("MMFREE_BACKEND", "torch")
    assert torch.equal(
        lm_head_loss(hidden, weight, labels, ternary=False),
        lm_head_loss_naive(hidden, weight, labels, ternary=False),
    )
    with pytest.raises(ValueError, match="labels"):
        lm_head_loss(hidden, weight, labels[:3])
    with pytest.raises(ValueError, match="weight"):
        lm_head_loss(hidden, weight[:, :5], labels)
    with pytest.raises(ValueError, match="chunk_tokens"):
        lm_head_loss_chunked(hidden, weight, labels, chunk_tokens=0)
