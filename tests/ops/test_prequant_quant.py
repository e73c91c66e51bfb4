"""The prequant quantization kernel's three-norm form (one block reduction for the three maxima, one for the
three code sums) against three one-norm launches on the same row, which reduce each norm on its own.

A maximum and an integer sum do not depend on the order of their terms, so the two forms must agree to the
last bit: codes, scales and code sums. Runs under TRITON_INTERPRET=1 (and on a GPU).
"""

from __future__ import annotations

import pytest
import torch
from _ops_tol import triton_ready

pytest.importorskip("triton")
from mmfree.ops.ternary import fused as fused_ops
from mmfree.ops.ternary.prequant import quantize_rows

needs_triton = pytest.mark.skipif(not triton_ready(), reason="needs Triton and a GPU or TRITON_INTERPRET=1")


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("K, B", [(200, 1), (64, 3)])
def test_three_norms_in_one_launch_equal_three_launches(dtype: torch.dtype, K: int, B: int) -> None:
    _check_three_norms(dtype, K, B, "cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("K", [5120, 2048])
def test_three_norms_real_width(K: int) -> None:
    """13B's and 1.3B's widths in bf16, on the kernel's GPU block (16 or 4 warps)."""
    _check_three_norms(torch.bfloat16, K, 1, "cuda")


def _check_three_norms(dtype: torch.dtype, K: int, B: int, dev: str) -> None:
    g = torch.Generator().manual_seed(K + B)
    x = (torch.randn(B, K, generator=g) * 3).to(dev, dtype)  # [B, K]
    w1 = (torch.rand(K, generator=g) + 0.5).to(dev, dtype)  # [K] attn_norm weight
    norms = tuple(((torch.rand(K, generator=g) * 2).to(dev, dtype), eps) for eps in (1e-6, 1e-5, 1e-8))
    cfg = fused_ops._Launch(1, 1, 64, 16, 64, 1)  # no PDL: quantize_rows only reads `cfg.pdl`
    kq = (K + 3) // 4 + 2  # two words of zero padding past the row
    q3, s3, qs3 = quantize_rows(x, x, w1, 1e-6, norms, 1, kq, cfg)  # [3, B, Kq], [3, B], [3, B]
    assert q3.shape == (3, B, kq) and s3.shape == qs3.shape == (3, B)
    for j, norm in enumerate(norms):
        q1, s1, qs1 = quantize_rows(x, x, w1, 1e-6, (norm,), 1, kq, cfg)
        assert torch.equal(q3[j], q1[0]) and torch.equal(s3[j], s1[0]) and torch.equal(qs3[j], qs1[0])
    codes = q3.view(torch.int8).view(3, B, 4 * kq)
    assert torch.equal(qs3, codes.to(torch.int32).sum(-1))  # the sums are the codes' sums
    assert codes[..., K:].eq(0).all() and codes.abs().amax(-1).eq(127).all()  # padding 0; max code 127
    assert not torch.equal(q3[0], q3[1])  # the norms differ, so do their codes
