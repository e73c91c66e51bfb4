"""Look-back MLGRU (`form="lookback"`) against the plain-PyTorch reference, forward and backward.

Interpreter tests (CPU, TRITON_INTERPRET=1) at small odd shapes: T not a multiple of the chunk, D not a
multiple of the D-block, B = 1..3; outputs, final state and the gradients of f_raw, c_raw, lower_bound and
initial_state, with resets and a padding mask, in both tile walks (associative scan / row loop). The
interpreter runs programs one after another, so every predecessor has published its inclusive prefix; the
`PUBLISH_INCLUSIVE=False` runs force each look-back through the aggregates back to the initial state.
The `gpu` tests run the real shapes in bf16 (where programs really overlap and spin on each other's flags).
"""

from __future__ import annotations

import pytest
import torch
from _ops_tol import TOL, assert_close_scaled, check_mlgru_form, mlgru_inputs, triton_ready

CUDA = torch.cuda.is_available()


@pytest.mark.interpret
@pytest.mark.skipif(not triton_ready(), reason="needs triton")
@pytest.mark.parametrize("rowwise", [False, True])
@pytest.mark.parametrize("publish_inclusive", [True, False])
@pytest.mark.parametrize(("B", "T", "D", "full"), [(2, 37, 19, True), (3, 29, 40, False), (1, 5, 19, True)])
def test_lookback_matches_reference(gen, device, rowwise, publish_inclusive, B, T, D, full, monkeypatch):
    """fp32: chunks of 8 steps (T=37: 5 chunks, the last partial; T=5: one chunk), 16-column blocks."""
    from mmfree.ops.mlgru import triton_lookback

    monkeypatch.setattr(triton_lookback, "FWD_CONFIG", (8, 16, 1, rowwise))
    monkeypatch.setattr(triton_lookback, "BWD_CONFIG", (8, 16, 1, rowwise))
    monkeypatch.setattr(triton_lookback, "PUBLISH_INCLUSIVE", publish_inclusive)
    tol = TOL[torch.float32]
    check_mlgru_form(gen, device, B, T, D, torch.float32, full, tol, 3 * tol, form="lookback")


@pytest.mark.interpret
@pytest.mark.skipif(not triton_ready(), reason="needs triton")
def test_lookback_bf16_and_exact_chunks(gen, device, monkeypatch):
    """bf16 inputs with T an exact multiple of the chunk and D of the block (no partial tiles)."""
    from mmfree.ops.mlgru import triton_lookback

    monkeypatch.setattr(triton_lookback, "FWD_CONFIG", (4, 8, 1, False))
    monkeypatch.setattr(triton_lookback, "BWD_CONFIG", (8, 16, 1, True))
    tol = TOL[torch.bfloat16]
    check_mlgru_form(gen, device, 2, 16, 32, torch.bfloat16, True, tol, 3 * tol, form="lookback")


@pytest.mark.interpret
@pytest.mark.skipif(not triton_ready(), reason="needs triton")
def test_lookback_reset_cuts_the_look_back(gen, device, monkeypatch):
    """A reset at a chunk start zeroes the chunk's decay: h from there on ignores all earlier inputs."""
    from mmfree.ops.mlgru import triton_lookback
    from mmfree.ops.mlgru.triton import mlgru_triton

    monkeypatch.setattr(triton_lookback, "FWD_CONFIG", (8, 16, 1, False))
    monkeypatch.setattr(triton_lookback, "PUBLISH_INCLUSIVE", False)
    f_raw, c_raw, _, h0, _, _ = mlgru_inputs(gen, 1, 40, 19, torch.float32, device, True)
    reset = torch.zeros(1, 40, dtype=torch.bool, device=device)
    reset[0, 16] = True
    h_a, fin_a = mlgru_triton(f_raw, c_raw, None, h0, reset, None, form="lookback")
    f_b, c_b = f_raw.clone(), c_raw.clone()
    f_b[:, :16] = torch.randn(1, 16, 19, generator=gen).to(device)
    c_b[:, :16] = torch.randn(1, 16, 19, generator=gen).to(device)
    h_b, fin_b = mlgru_triton(f_b, c_b, None, -h0, reset, None, form="lookback")
    assert torch.equal(h_a[:, 16:], h_b[:, 16:]) and torch.equal(fin_a, fin_b)
    assert not torch.allclose(h_a[:, :16], h_b[:, :16])


@pytest.mark.interpret
@pytest.mark.skipif(not triton_ready(), reason="needs triton")
def test_lookback_bad_config_raises(device, monkeypatch):
    from mmfree.ops.mlgru import triton_lookback

    x = torch.zeros(1, 4, 8, device=device)
    with pytest.raises(ValueError, match="power of two"):
        triton_lookback.mlgru_fwd_lookback(x, x, None, None, None, None, config=(12, 16, 1, False))
    with pytest.raises(ValueError, match="form"):
        from mmfree.ops.mlgru.triton import mlgru_triton

        mlgru_triton(x, x, form="look-back")


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    ("B", "T", "D", "config"),
    [
        (8, 2048, 1024, None),
        (3, 1001, 1000, None),
        (8, 2048, 1024, (32, 256, 1, True)),
        (8, 2048, 1024, (8, 256, 1, False)),
    ],
)
def test_lookback_bf16_gpu(gen, B, T, D, config, monkeypatch):
    """Real shapes in bf16 against the fp32 reference, every gradient; repeated runs agree closely."""
    from mmfree.ops.mlgru import triton_lookback
    from mmfree.ops.mlgru.triton import mlgru_triton

    if config is not None:
        monkeypatch.setattr(triton_lookback, "FWD_CONFIG", config)
        monkeypatch.setattr(triton_lookback, "BWD_CONFIG", config)
    check_mlgru_form(
        gen,
        "cuda",
        B,
        T,
        D,
        torch.bfloat16,
        True,
        TOL[torch.bfloat16],
        3 * TOL[torch.bfloat16],
        form="lookback",
    )
    f_raw, c_raw, lb, h0, reset, mask = mlgru_inputs(gen, B, T, D, torch.bfloat16, "cuda", True)
    runs = [mlgru_triton(f_raw, c_raw, lb, h0, reset, mask, form="lookback")[1] for _ in range(5)]
    for final in runs[1:]:  # the look-back may compose aggregates in another order: rounding only
        assert_close_scaled(final, runs[0], 1e-5, "final state across runs")
