"""Triton MLGRU (tiled single-pass, fused-recurrent and chunked) against the plain-PyTorch reference, forward and backward.

Runs under TRITON_INTERPRET=1 on CPU at small odd shapes (T=37, D=19/48): outputs, final state, and the
gradients of f_raw, c_raw, lower_bound and initial_state, with resets, a padding mask, fp32 and bf16.
The tiled form runs with 16-step tiles here, so T=37 spans three tiles (the last one partial).
"""

from __future__ import annotations

import importlib

import pytest
import torch
from _ops_tol import TOL, assert_close_scaled, check_mlgru_form, mlgru_inputs, triton_ready

from mmfree.ops.mlgru import mlgru

pytestmark = [pytest.mark.interpret, pytest.mark.skipif(not triton_ready(), reason="needs triton")]


# (forward tile, backward tile) of the tiled form: (CT, BD, num_warps, V, S), see `triton_tiled.FWD_TILES`
TILE_PAIRS = {
    "compiler columns": ((16, 64, 4, 1, 1), (16, 32, 4, 1, 1)),
    "one column": ((16, 32, 1, 0, 1), (8, 32, 1, 0, 1)),
    "2 and 4 columns": ((16, 64, 1, 2, 1), (16, 128, 1, 4, 1)),
    "segments": ((16, 32, 4, 0, 4), (16, 64, 4, 2, 2)),
    "two tiles ahead": ((16, 32, 2, 0, 2, 2), (8, 64, 2, 2, 2, 2)),
    "none ahead": ((16, 32, 1, 0, 1, 0), (16, 32, 4, 0, 4, 1)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("chunk_size", "form", "tiles"),
    [(None, "chunked", None), (8, "chunked", None)] + [(None, "tiled", name) for name in TILE_PAIRS],
)
@pytest.mark.parametrize("full", [True, False])
def test_mlgru_matches_reference(gen, device, dtype, chunk_size, form, tiles, full, monkeypatch):
    """Against the reference; the tiled form in each column layout (V: the compiler's, one column per thread,
    2-4 adjacent columns per thread; the forced ones' opaque column offsets a CUDA-only step), with a tile's
    steps in segments (S > 1: 4 segments of 4 steps forward, 2 of 8 backward) and with 0-2 tiles loaded
    ahead (A)."""
    from mmfree.ops.mlgru import triton_tiled

    if tiles is not None:
        monkeypatch.setattr(triton_tiled, "FWD_CONFIG", TILE_PAIRS[tiles][0])
        monkeypatch.setattr(triton_tiled, "BWD_CONFIG", TILE_PAIRS[tiles][1])
    B, T, D = 2, 37, 19 if full else 48
    tol = TOL[dtype]
    check_mlgru_form(gen, device, B, T, D, dtype, full, tol, 3 * tol, chunk_size=chunk_size, form=form)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("tiles", list(TILE_PAIRS))
def test_mlgru_tiled_whole_tiles(gen, device, dtype, tiles, monkeypatch):
    """Whole tiles (T % CT == 0, D % BD == 0): the kernels' mask-free path, with every feature on."""
    from mmfree.ops.mlgru import triton_tiled

    assert triton_tiled._even(32, 64, 16, 32) and not triton_tiled._even(0, 64, 16, 32)
    monkeypatch.setattr(triton_tiled, "FWD_CONFIG", TILE_PAIRS[tiles][0])
    monkeypatch.setattr(triton_tiled, "BWD_CONFIG", TILE_PAIRS[tiles][1])
    tol = TOL[dtype]
    check_mlgru_form(gen, device, 2, 32, 128, dtype, True, tol, 3 * tol, form="tiled")


def test_mlgru_chunked_equals_recurrent_and_decoding(gen, device, monkeypatch):
    """The chunked, fused-recurrent and tiled forms and step-by-step decoding with carried state agree."""
    from mmfree.ops.mlgru import triton_tiled
    from mmfree.ops.mlgru.triton import mlgru_triton

    monkeypatch.setattr(triton_tiled, "FWD_CONFIG", (4, 64, 4, 8))
    monkeypatch.setattr(triton_tiled, "BWD_CONFIG", (4, 64, 4, 8))
    f_raw, c_raw, lb, h0, reset, mask = mlgru_inputs(gen, 2, 11, 19, torch.float32, device, True)
    h_rec, fin_rec = mlgru_triton(f_raw, c_raw, lb, h0, reset, mask, chunk_size=None, form="chunked")
    h_chk, fin_chk = mlgru_triton(f_raw, c_raw, lb, h0, reset, mask, chunk_size=3)
    assert_close_scaled(h_chk, h_rec, 1e-5, "h chunked vs recurrent")
    assert_close_scaled(fin_chk, fin_rec, 1e-5, "final chunked vs recurrent")
    for T in (11, 8):  # a partial last tile, and T a multiple of the tile
        h_til, fin_til = mlgru_triton(
            *(t[:, :T] for t in (f_raw, c_raw)), lb, h0, reset[:, :T], mask[:, :T], form="tiled"
        )
        h_r, fin_r = mlgru_triton(
            *(t[:, :T] for t in (f_raw, c_raw)), lb, h0, reset[:, :T], mask[:, :T], chunk_size=T
        )
        assert_close_scaled(h_til, h_r, 1e-5, f"h tiled vs recurrent T={T}")
        assert_close_scaled(fin_til, fin_r, 1e-5, f"final tiled vs recurrent T={T}")
    state, outs = h0, []
    for t in range(11):
        h_t, state = mlgru_triton(
            f_raw[:, t : t + 1], c_raw[:, t : t + 1], lb, state, reset[:, t : t + 1], mask[:, t : t + 1]
        )
        outs.append(h_t)
    assert_close_scaled(torch.cat(outs, 1), h_rec, 1e-5, "decoding h")
    assert_close_scaled(state, fin_rec, 1e-5, "decoding state")


def test_mlgru_reset_drops_carried_state(gen, device):
    """A reset at step t makes h[t:] independent of everything before t (including the initial state)."""
    from mmfree.ops.mlgru.triton import mlgru_triton

    f_raw, c_raw, _, h0, _, _ = mlgru_inputs(gen, 1, 37, 19, torch.float32, device, True)
    reset = torch.zeros(1, 37, dtype=torch.bool, device=device)
    reset[0, 20] = True
    h_a, _ = mlgru_triton(f_raw, c_raw, None, h0, reset, None, chunk_size=8)
    f_b, c_b = f_raw.clone(), c_raw.clone()
    f_b[:, :20] = torch.randn(1, 20, 19, generator=gen).to(device)
    c_b[:, :20] = torch.randn(1, 20, 19, generator=gen).to(device)
    h_b, _ = mlgru_triton(f_b, c_b, None, -h0, reset, None, chunk_size=8)
    assert torch.equal(h_a[:, 20:], h_b[:, 20:])
    assert not torch.allclose(h_a[:, :20], h_b[:, :20])


def test_mlgru_dispatch_uses_triton(gen, device, monkeypatch):
    """`mlgru(..., backend="triton")` routes to the kernel (and still matches the reference)."""
    tmod = importlib.import_module("mmfree.ops.mlgru.triton")

    calls = []
    real = tmod.mlgru_triton
    monkeypatch.setattr(tmod, "mlgru_triton", lambda *a: calls.append(1) or real(*a))
    f_raw, c_raw, lb, h0, reset, mask = mlgru_inputs(gen, 2, 5, 19, torch.float32, device, True)
    h, final = mlgru(f_raw, c_raw, lb, h0, reset, mask, backend="triton")
    h_ref, final_ref = mlgru(f_raw, c_raw, lb, h0, reset, mask, backend="torch")
    assert calls == [1]
    assert_close_scaled(h, h_ref, 1e-5, "h")
    assert_close_scaled(final, final_ref, 1e-5, "final")


def test_mlgru_bad_shapes_raise(device):
    from mmfree.ops.mlgru.triton import mlgru_triton

    x = torch.zeros(2, 5, 4, device=device)
    with pytest.raises(ValueError, match="lower_bound"):
        mlgru_triton(x, x, torch.zeros(3, device=device))
    with pytest.raises(ValueError, match="chunk_size"):
        mlgru_triton(x, x, chunk_size=0)
    with pytest.raises(ValueError, match="form"):
        mlgru_triton(x, x, form="fast")


def test_mlgru_auto_form_choice():
    """Training shapes take the tiled form; decoding steps and explicit chunk sizes keep the others."""
    from mmfree.ops.mlgru.triton import _pick_form

    assert _pick_form(8, 2048, 1024, None, "auto") == "tiled"
    assert _pick_form(8, 1, 1024, None, "auto") == "chunked"  # decoding
    assert _pick_form(1, 2048, 256, None, "auto") == "chunked"  # too few strips: split T instead
    assert _pick_form(8, 2048, 1024, 64, "auto") == "chunked"
    assert _pick_form(1, 3, 8, 64, "tiled") == "tiled"
    assert _pick_form(8, 2048, 1024, None, "chunked") == "chunked"
    assert _pick_form(8, 2048, 1024, None, "lookback") == "lookback"  # only when asked for


def test_tiled_tiles_follow_the_strip_count(monkeypatch):
    """The tiled kernels take their tile from the strip-count tables unless a config is forced."""
    from mmfree.ops.mlgru import triton_tiled as tt

    monkeypatch.setattr(tt, "FWD_TILES", ((4, (16, 32, 4, 8)), (2**62, (8, 32, 2, 1))))
    monkeypatch.setattr(tt, "BWD_TILES", ((4, (4, 64, 4, 8)), (2**62, (2, 64, 1, 2))))
    assert tt.fwd_config(2, 64) == (16, 32, 4, 8)  # 2 x 2 strips
    assert tt.fwd_config(3, 64) == (8, 32, 2, 1)  # 6 strips
    assert tt.bwd_config(1, 100) == (4, 64, 4, 8)  # 1 x 4 strips
    assert tt.bwd_config(1, 129) == (2, 64, 1, 2)  # 5 strips
    monkeypatch.setattr(tt, "FWD_CONFIG", (4, 8, 1, 1))
    assert tt.fwd_config(3, 64) == (4, 8, 1, 1)


def test_tiled_tile_specs_parse_or_say_what_is_wrong():
    from mmfree.ops.mlgru import triton_tiled as tt

    assert tt.parse_tiles("32,32,1,0;16,32,2,1") == ((32, 32, 1, 0), (16, 32, 2, 1))
    assert tt.parse_tiles("64,64,4,2,4;32,128,4,2,2,1") == ((64, 64, 4, 2, 4), (32, 128, 4, 2, 2, 1))
    bad = (
        "32,32,1;16,32,2,1",
        "32,32,1,0",
        "a,b,c,d;1,2,3,4",
        "32,32,4,0,3;16,32,2,1",
        "32,32,4,0,0;1,2,3,4",
    )
    for spec in (*bad, "1,2,3,4,1,3;1,2,3,4", "1,2,3,4,1,0,0;1,2,3,4"):
        with pytest.raises(ValueError, match=r"CT,BD,W,V\[,S\[,A\]\];CT,BD,W,V\[,S\[,A\]\]"):
            tt.parse_tiles(spec)


def test_tiled_tile_constants_default_the_loads_ahead():
    """A tile's constants: V -> the kernels' VEC, S defaults to 1, A (tiles loaded ahead) to 1, except 0 for
    a backward of several segments."""
    from mmfree.ops.mlgru import triton_tiled as tt

    assert tt.tile_constexprs((32, 64, 2, 1), False) == dict(CT=32, BD=64, VEC=0, S=1, AHEAD=1)
    assert tt.tile_constexprs((32, 64, 2, 0, 2), False)["AHEAD"] == 1
    assert tt.tile_constexprs((32, 64, 2, 0, 2), True) == dict(CT=32, BD=64, VEC=1, S=2, AHEAD=0)
    assert tt.tile_constexprs((32, 64, 2, 2, 2, 2), True) == dict(CT=32, BD=64, VEC=2, S=2, AHEAD=2)


def test_tiled_empty_sequence_keeps_the_state():
    """T=0 on the tiled form (whole tiles trivially, but nothing to load): no output, final = h0."""
    from mmfree.ops.mlgru.triton import mlgru_triton

    h0 = torch.randn(2, 64)
    h, final = mlgru_triton(torch.randn(2, 0, 64), torch.randn(2, 0, 64), None, h0, form="tiled")
    assert h.shape == (2, 0, 64)
    assert torch.equal(final, h0)
