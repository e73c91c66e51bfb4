"""The fused decode step on an H200 at real shapes (`-m gpu`): fp32 against the plain-PyTorch ops at 370M
widths, the CUDA-graph replay against the eager step, and every kernel option set against the default
kernels bit for bit. The interpreter tests of the same kernels are in `test_fused.py`."""

from __future__ import annotations

import pytest
import torch

import mmfree.ops.ternary.fold as fold
import mmfree.ops.ternary.fused as fused_ops
from mmfree.infer.decode import Decoder
from tests.infer.test_fused import REAL_LAYERS, _check_step, _model


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("B", [1, 5, 16])
def test_fused_step_real_shape(B: int, monkeypatch) -> None:
    """370m widths: fp32 against the plain-PyTorch ops (on REAL_LAYERS layers), then the whole bf16 model's
    CUDA-graph replay against the eager fused step. The two fp32 paths' reductions differ in the last bit,
    so int8 codes flip at rounding ties and the flips cascade through the later layers' requantization: a
    row can end a few percent off. On an H200 (2026-11-29, 4 seeds, batch 16) 9-14 rows of 16 stayed equal
    to 1e-6 over 24 layers, 14-16 over 2. A real error shows in every row, so half the rows (rounded down)
    must be tight; each row stepped alone at batch 1 (the "prequant" kernels, whose reductions are blocked
    differently again) is held to the same. bf16 is not compared against the reference: it flips far more
    ties."""
    model = _model(0, 0, "official", True, torch.float32, device="cuda", preset="370m", layers=REAL_LAYERS)
    monkeypatch.setenv("MMFREE_BACKEND", "torch")  # the reference: the plain-PyTorch ops on the GPU
    _check_step(model, B, tight=1e-3, loose=0.15, min_tight=B // 2, one_exact=False)
    monkeypatch.delenv("MMFREE_BACKEND")
    model = _model(0, 0, "official", True, torch.bfloat16, device="cuda", preset="370m")
    dec = Decoder(model, fused=True)
    eager = Decoder(model, fused=True, cuda_graph=False)
    assert dec.cuda_graph and dec.fused_step is not None
    ids = torch.randint(0, model.config.vocab_size, (B, 7), device="cuda")
    logits, cache = dec.prefill(ids)
    _, cache_e = eager.prefill(ids)
    tok = logits.argmax(-1)
    a = dec.step(tok, cache).clone()  # the CUDA graph replay of the fused step
    b = eager.step(tok, cache_e)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_prequant_real_shape(monkeypatch) -> None:
    """370m widths in fp32 on the "prequant" kernels (16 rows kept on the CUDA-core path by raising
    DOT_MIN_BATCH) against the plain-PyTorch ops, with `test_fused_step_real_shape`'s tolerance for
    rounding-tie cascades (half the rows tight, REAL_LAYERS layers)."""
    model = _model(0, 0, "official", True, torch.float32, device="cuda", preset="370m", layers=REAL_LAYERS)
    monkeypatch.setattr(fused_ops, "DOT_MIN_BATCH", 17)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant"))
    packed = model.model.layers[0].attn.i_proj.weight_packed
    assert fused_ops._config(16, packed.shape[0], 1024, (packed,)).prequant
    monkeypatch.setenv("MMFREE_BACKEND", "torch")  # the reference: the plain-PyTorch ops on the GPU
    _check_step(model, 16, tight=1e-3, loose=0.15, min_tight=8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fold_real_shape(monkeypatch) -> None:
    """1.3B widths in fp32 (REAL_LAYERS layers) with the "fold" option: every layer call of a batch-1 step
    quantizes inside its GEMV (down_proj at 512 words a row). Batch 5 runs the tensor cores; each row
    stepped alone runs the fold kernels, and is held to the plain-PyTorch ops with
    `test_fused_step_real_shape`'s tolerance for rounding-tie cascades."""
    model = _model(0, 0, "official", True, torch.float32, device="cuda", preset="1.3b", layers=REAL_LAYERS)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,pdl,qnext,fold"))
    mlp = model.model.layers[0].mlp
    assert fold.fold_tile("bitlinear", 2048, mlp.down_proj.weight_packed.shape[1], True) is not None
    monkeypatch.setenv("MMFREE_BACKEND", "torch")  # the reference: the plain-PyTorch ops on the GPU
    _check_step(model, 5, tight=1e-3, loose=0.15, min_tight=2, one_exact=False)


_GPU_MODELS: dict[str, torch.nn.Module] = {}  # one random bf16 model per preset for the option tests


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "options,preset,B",
    [
        ("dp4a,pdl", "370m", 1),
        ("dp4a,pdl", "370m", 5),
        ("dp4a", "370m", 1),
        ("pdl", "370m", 1),
        ("dp4a,pdl", "1.3b", 1),
        ("dp4a,prequant,pdl", "370m", 1),
        ("dp4a,prequant,pdl", "1.3b", 1),
        ("dp4a,prequant,pdl,late", "1.3b", 1),
        ("dp4a,prequant,pdl,early,qnext", "1.3b", 1),
        ("dp4a,prequant,pdl,qnext,fold", "370m", 1),
        ("dp4a,prequant,pdl,qnext,fold", "1.3b", 1),
        ("dp4a,prequant,pdl,qnext,fold,whole", "2.7b", 1),
        ("dp4a,prequant,pdl,qnext,fold,whole,pieces", "2.7b", 1),
        ("dp4a,prequant,pdl,qnext,fold,whole,pieces,silu", "1.3b", 1),
        ("dp4a,prequant,pdl,qnext,fold,whole,pieces,silu", "2.7b", 1),
        ("dp4a,prequant,pdl,qnext,fold,whole,pieces,silu,wsplit", "2.7b", 1),
        ("dp4a,prequant,pdl,qnext,fold,whole,pieces,silu,wsplit,wvec", "2.7b", 1),
        ("dp4a,prequant,pdl,qnext,fold,whole,pieces,silu,wsplit,wvec", "1.3b", 1),
        ("dp4a,prequant,pdl,qnext,fold,whole,pieces,silu,wsplit,wvec,wmac", "1.3b", 1),
        ("dp4a,prequant,pdl,qnext,fold,wmac", "370m", 1),
    ],
)
def test_fused_options_give_the_same_bits(options: str, preset: str, B: int, monkeypatch) -> None:
    """Each option set against the default kernels at real shapes in bf16, eager and as a CUDA-graph replay
    (where programmatic dependent launch matters): every path sums exactly, so the bits must agree. With
    "prequant" the reference is that option alone with dp4a (its norms sum in another order than the
    default's; so do "fold"'s and "pieces"'). "silu" passes SiLU(h) computed by the MLGRU kernel to the
    output gate's quantization: the same values, so the same bits (1.3B: fold kernels; 2.7B: prequant pairs).
    "wsplit" takes 2.7B's whole 640-byte rows (o_proj, head) as 512 + 128 bytes: exact sums, the same bits;
    "wvec" only changes how those tiles are laid over the threads; "wmac" only groups each weight word's
    instructions (fold kernels)."""
    if preset not in _GPU_MODELS:
        _GPU_MODELS.clear()
        _GPU_MODELS[preset] = _model(0, 0, "official", True, torch.bfloat16, device="cuda", preset=preset)
    model = _GPU_MODELS[preset]
    ids = torch.randint(0, model.config.vocab_size, (B, 7), device="cuda")

    opts = fused_ops.parse_options(options)
    monkeypatch.setattr(fused_ops, "OPTIONS", opts & {"prequant", "dp4a", "fold", "pieces"})
    base = _greedy_steps(model, ids)
    monkeypatch.setattr(fused_ops, "OPTIONS", opts)
    _assert_same_bits(base, _greedy_steps(model, ids))


Steps = list[tuple[torch.Tensor, list[torch.Tensor]]]  # (logits, states) per decoder form


def _greedy_steps(model: torch.nn.Module, ids: torch.Tensor) -> Steps:
    """(logits, states) after prefill and three greedy fused steps, eager and as CUDA-graph replays."""
    out = []
    for graph in (False, True):
        dec = Decoder(model, fused=True, cuda_graph=graph)
        logits, cache = dec.prefill(ids)
        for _ in range(3):
            logits = dec.step(logits.argmax(-1), cache).clone()
        out.append((logits, [s.clone() for s in cache.states]))
    return out


def _assert_same_bits(a: Steps, b: Steps) -> None:
    for (la, sa), (lb, sb) in zip(a, b, strict=True):
        assert torch.equal(la, lb)
        assert all(torch.equal(x, y) for x, y in zip(sa, sb, strict=True))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_whole_row_tile_gives_the_same_bits(monkeypatch) -> None:
    """The prequant GEMVs with each packed row in one tile (ONE: no K loop, as at 13B) against 256-byte tiles
    looped over the row, at 1.3B in bf16 (fold off, so every call is a prequant pair), eager and replayed:
    the integer sums are exact either way, so the bits must agree. (Which calls the "whole" option gives
    such a tile: `test_fold.py::test_gpu_configs_of_the_batch1_calls`, on CPU.)"""
    model = _model(0, 0, "official", True, torch.bfloat16, device="cuda", preset="1.3b")
    ids = torch.randint(0, model.config.vocab_size, (1, 7), device="cuda")
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,pdl,qnext"))
    runs = []
    for tile in ((2**62, 16, 256, 4), (2**62, 8, 4096, 4)):
        monkeypatch.setattr(fused_ops, "PREQUANT_TILES", (tile,))
        cfgs = [
            fused_ops._config(1, n, k, (torch.zeros(n, k // 4, dtype=torch.uint8, device="cuda"),))
            for n, k in ((2048, 2048), (2048, 5632))
        ]
        assert [c.block_q >= k // 4 for c, k in zip(cfgs, (2048, 5632))] == [tile[2] == 4096] * 2
        runs.append(_greedy_steps(model, ids))
    _assert_same_bits(*runs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("residual", [True, False])
def test_wvec_tiles_give_the_same_bits(residual: bool, monkeypatch) -> None:
    """ "wvec" where it applies: the 13B 5120-wide input (1280-byte rows as 1024 + 256-byte tiles, the first
    of 256 words, 2 a thread on 4 warps), one prequant BitLinear call (output gate MODE 2, o_proj-shaped,
    and a head-like call without residual, 1000 outputs) with and without it, in bf16: the same exact sums,
    so the same bits."""
    g = torch.Generator(device="cuda").manual_seed(5)
    K, N = 5120, 1000
    packed = torch.randint(0, 255, (N, K // 4), generator=g, dtype=torch.uint8, device="cuda")
    packed[(packed & 3) == 3] -= 1  # codes 0..2 in the low pair
    proj = fused_ops.TernaryProj(packed, torch.rand(K, device="cuda") + 0.5, 1e-6, torch.tensor(0.02).cuda())
    x = torch.randn(1, K, device="cuda", dtype=torch.bfloat16)  # [1, K]
    h = torch.randn(1, K, device="cuda")  # [1, K] fp32 state
    w1 = (torch.rand(K, device="cuda") + 0.5).to(torch.bfloat16)
    outs = []
    for options in ("dp4a,prequant,pdl,qnext,whole,wsplit", "dp4a,prequant,pdl,qnext,whole,wsplit,wvec"):
        monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options(options))
        cfg = fused_ops._config(1, N, K, (packed,), "bitlinear")
        assert cfg.wsplit and cfg.block_q >= K // 4 and cfg.wvec == options.endswith("wvec")
        y = (
            torch.randn(1, N, device="cuda", generator=g).to(torch.bfloat16)
            if not outs
            else outs[0][1].clone()
        )
        start = y.clone()
        fused_ops.prequant.bitlinear_step(x, h, w1, 1e-6, 2, proj, y, residual, cfg)
        outs.append((y, start))
    assert torch.equal(outs[0][0], outs[1][0])
    assert not torch.equal(outs[0][0], outs[0][1])
