"""The prequant quantization kernel (`prequant._quant_kernel`): its three-norm launch (one program per norm)
against three one-norm launches on the same row, and its two-piece rows (the "pieces" option) against the
padded power-of-two row.

A maximum and an integer sum do not depend on the order of their terms, so the three-norm forms must agree
to the last bit: codes, scales and code sums. The two-piece row sums its squares in another order: on rows
whose sums are exact in fp32 it must give the same bits, on random rows codes within one. Runs under
TRITON_INTERPRET=1 (and on a GPU).
"""

from __future__ import annotations

import pytest
import torch
from _ops_tol import triton_ready

pytest.importorskip("triton")
from mmfree.ops.ternary import fused as fused_ops
from mmfree.ops.ternary import prequant
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


def test_quant_pieces_split_widths_without_padding() -> None:
    assert prequant.quant_pieces(5120, False) == (16, 16, 0)  # 8192 lanes for 5120 columns
    assert prequant.quant_pieces(5120, True) == (16, 8, 2)  # 512 threads x (8 + 2): no padded lane
    assert prequant.quant_pieces(2560, True) == (8, 8, 2)
    assert prequant.quant_pieces(1536, True) == (4, 8, 4)  # 128 x 12
    assert prequant.quant_pieces(2048, True) == (4, 16, 0)  # a power of two: one piece
    assert prequant.quant_pieces(13824, True) == (32, 16, 0)  # 512 x 27 would pad to 512 x 32: no gain
    assert prequant.quant_pieces(200, True) == (4, 2, 0)  # not a multiple of the threads: the padded row


def test_pieces_is_an_option_of_prequant_launches(monkeypatch) -> None:
    rows = fused_ops._Launch(1, 1, 64, 16, 64, 1)
    assert not rows.pieces  # off unless asked for
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,pieces"))
    packed = torch.zeros(64, 16, dtype=torch.uint8)  # [N, K / 4] bytes: whole words
    assert fused_ops._config(1, 64, 64, (packed,)).pieces
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,pieces"))
    assert not fused_ops._config(1, 64, 64, (packed,)).pieces  # no quantization kernel without prequant


def _quant(x, mode, kq, pieces, h=None, w1=None, norm=None):
    K = x.shape[1]
    w1 = torch.ones(K, dtype=x.dtype, device=x.device) if w1 is None else w1
    norm = (torch.ones(K, dtype=x.dtype, device=x.device), 1e-6) if norm is None else norm
    cfg = fused_ops._Launch(1, 1, 64, 16, 64, 1, pieces=pieces)
    return quantize_rows(x, x if h is None else h, w1, 0.0, (norm,), mode, kq, cfg)


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("mode", [0, 1])
def test_quant_pieces_exact_rows_give_the_same_bits(mode: int) -> None:
    """Rows whose sums of squares are exact in any order (small integers; with MODE 1, +-2 times powers of two,
    so that RMSNorm scales by exactly 0.5): both layouts give the same codes, scales and code sums."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(mode)
    K, kq = 5120, 1280
    if mode == 0:
        x = torch.randint(-8, 9, (2, K), generator=g).float()  # [2, K]
    else:
        x = 2.0 * (torch.randint(0, 2, (2, K), generator=g) * 2 - 1).float()  # [2, K] +-2: mean square 4
    w1 = 2.0 ** torch.randint(-1, 2, (K,), generator=g).float()  # [K] 0.5, 1, 2
    norm = ((torch.rand(K, generator=g) + 0.5).to(dev, torch.bfloat16), 1e-6)
    x, w1 = x.to(dev, torch.bfloat16), w1.to(dev, torch.bfloat16)
    assert prequant.quant_pieces(4 * kq, True)[2] > 0  # the row takes two pieces
    one = _quant(x, mode, kq, False, w1=w1, norm=norm)
    two = _quant(x, mode, kq, True, w1=w1, norm=norm)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("K, kq", [(5120, 1280), (2552, 640)])
def test_quant_pieces_random_rows(mode: int, K: int, kq: int) -> None:
    """Random bf16 rows: the sums of squares may differ in their last bits, so a code may move by one; the
    scales agree to 1%, the padding (columns K to 4 Kq) stays zero and the code sums are the codes' sums."""
    assert prequant.quant_pieces(4 * kq, True)[2] > 0  # the row takes two pieces
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = (torch.randn(3, K) * 3).to(dev, torch.bfloat16)  # [3, K]
    h = torch.randn(3, K).to(dev)  # [3, K] fp32 state for MODE 2
    w1 = (torch.rand(K) + 0.5).to(dev, torch.bfloat16)  # [K]
    norm = ((torch.rand(K) * 2).to(dev, torch.bfloat16), 1e-6)
    q1, s1, _ = _quant(x, mode, kq, False, h=h, w1=w1, norm=norm)
    q2, s2, qs2 = _quant(x, mode, kq, True, h=h, w1=w1, norm=norm)
    c1 = q1.view(torch.int8).view(1, 3, 4 * kq).int()
    c2 = q2.view(torch.int8).view(1, 3, 4 * kq).int()
    assert (c1 - c2).abs().max() <= 1 and (c1 != c2).float().mean() < 0.05
    assert torch.allclose(s1, s2, rtol=0.01, atol=0)
    assert c2[..., K:].eq(0).all() and torch.equal(qs2, c2.sum(-1))
