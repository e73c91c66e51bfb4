"""Each functional unit: vectorized engine vs scalar reference (values, op tallies, saturations), accuracy
against float math, and the 2-bit packing of the memory images."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from mmfree.hw import counts as C
from mmfree.hw import units as U
from mmfree.hw.engine import ScalarDatapath, VectorDatapath
from mmfree.hw.export import pack_ternary, unpack_ternary
from mmfree.hw.params import BitLinearParams

I32_MAX, I32_MIN = (1 << 31) - 1, -(1 << 31)


def _pair() -> tuple[VectorDatapath, ScalarDatapath]:
    table = np.asarray(U.sigmoid_table(), dtype=np.int64)
    return VectorDatapath(U.Ops(), table), ScalarDatapath(U.Ops(), table)


def _same(vec: VectorDatapath, ref: ScalarDatapath, a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(a, b)
    assert +vec.ops.counts == +ref.ops.counts
    assert vec.ops.saturations == ref.ops.saturations


def _rows(rng: np.random.Generator, R: int, D: int) -> np.ndarray:
    """Rows of Q16 values at very different magnitudes, plus edge rows (zeros, int32 extremes, one spike)."""
    scales = 2.0 ** rng.integers(-10, 40, size=(R, 1))
    x = np.clip(np.round(rng.standard_normal((R, D)) * scales), I32_MIN, I32_MAX).astype(np.int64)
    x[0] = 0
    x[1] = I32_MAX
    x[2, ::2] = I32_MIN
    x[3] = 0
    x[3, 5] = 1
    return x


def test_rmsnorm_vector_matches_reference_and_float() -> None:
    rng = np.random.default_rng()
    vec, ref = _pair()
    x = _rows(rng, 12, 48)
    w = np.round(rng.uniform(-3, 3, 48) * 65536).astype(np.int64)
    eps = round(1e-6 * 2**32)
    _same(vec, ref, vec.rmsnorm(x, w, eps), ref.rmsnorm(x, w, eps))
    # a row away from the edges agrees with float RMSNorm to ~1e-4 relative
    xf = rng.standard_normal((4, 48)) * 3.0
    xq = np.round(xf * 65536).astype(np.int64)
    got = vec.rmsnorm(xq, w, eps) / 65536.0
    want = xf / np.sqrt((xf**2).mean(1, keepdims=True) + 1e-6) * (w / 65536.0)
    assert np.abs(got - want).max() < 2e-4 * np.abs(want).max()


def test_bitlinear_vector_matches_reference_and_has_no_multiplier_in_ternary_unit() -> None:
    rng = np.random.default_rng()
    vec, ref = _pair()
    x = _rows(rng, 10, 32)
    codes = rng.integers(-1, 2, size=(24, 32)).astype(np.int8)
    p = BitLinearParams(
        codes, int(rng.integers(100, 1 << 24)), np.round(rng.uniform(0.2, 2, 32) * 65536).astype(np.int64)
    )
    eps = round(1e-6 * 2**32)
    _same(vec, ref, vec.bitlinear(x, p, eps), ref.bitlinear(x, p, eps))
    ternary = {kind: n for (unit, kind), n in ref.ops.counts.items() if unit == "ternary"}
    assert ternary == {"add32": 10 * 24 * 32}  # one add/sub slot per weight per row, nothing else
    assert C.ternary_mults(ref.ops.counts) == 0


def test_bitlinear_close_to_float_fake_quant() -> None:
    from mmfree.ops.bitlinear.naive import bitlinear_naive
    from mmfree.ops.quant.naive import ternary_codes

    gen = torch.Generator().manual_seed(int(np.random.default_rng().integers(1 << 30)))
    xf = torch.randn(6, 64, generator=gen, dtype=torch.float64)
    wf = torch.randn(40, 64, generator=gen, dtype=torch.float64) * 0.05
    nw = torch.rand(64, generator=gen, dtype=torch.float64) + 0.5
    codes, g = ternary_codes(wf)
    vec, _ = _pair()
    p = BitLinearParams(codes.numpy(), round(float(g) * 2**24), np.round(nw.numpy() * 65536).astype(np.int64))
    got = vec.bitlinear(np.round(xf.numpy() * 65536).astype(np.int64), p, round(1e-6 * 2**32)) / 65536.0
    want = bitlinear_naive(xf.float(), nw.float(), wf.float()).double().numpy()
    # int8 codes may differ by one step where float and fixed point round a tie differently
    assert np.abs(got - want).max() < 0.02 * np.abs(want).max()


def test_sigmoid_silu_edges_and_accuracy() -> None:
    vec, ref = _pair()
    lim = U.SIG_LIMIT
    edge = np.array(
        [0, 1, -1, lim - 1, lim, lim + 1, -lim, -lim - 1, I32_MAX, I32_MIN, 12345, -98765], dtype=np.int64
    )
    rnd = np.random.default_rng().integers(-(1 << 22), 1 << 22, size=200)
    x = np.concatenate([edge, rnd])[None, :]
    _same(vec, ref, vec.sigmoid(x), ref.sigmoid(x))
    _same(vec, ref, vec.silu(x), ref.silu(x))
    xs = np.linspace(-20, 20, 4001)
    got = vec.sigmoid(np.round(xs * 65536).astype(np.int64)) / 32768.0
    want = 1.0 / (1.0 + np.exp(-xs))
    assert np.abs(got - want).max() < 1e-4
    assert got.min() >= 0 and got.max() <= 1.0


def test_gate_recurrence_products_and_residual_edges() -> None:
    rng = np.random.default_rng()
    vec, ref = _pair()
    f = np.concatenate([[0, U.GATE_ONE, 1, U.GATE_ONE - 1], rng.integers(0, U.GATE_ONE + 1, 60)])
    c = np.concatenate([[I32_MAX, I32_MIN, 0, -1], rng.integers(I32_MIN, I32_MAX, 60)])
    h = np.concatenate([[I32_MAX, I32_MIN, I32_MAX, I32_MIN], rng.integers(I32_MIN, I32_MAX, 60)])
    lb = rng.integers(0, U.GATE_ONE, 64)
    _same(vec, ref, vec.forget_gate(f, lb), ref.forget_gate(f, lb))
    _same(vec, ref, vec.recurrence(f, c, h), ref.recurrence(f, c, h))
    _same(vec, ref, vec.mul_q16(c, h, "glu"), ref.mul_q16(c, h, "glu"))
    _same(vec, ref, vec.mul_gate(c, f, "outgate"), ref.mul_gate(c, f, "outgate"))
    _same(vec, ref, vec.add(c, h), ref.add(c, h))
    # int32 extremes saturate, and are counted
    assert ref.ops.saturations["glu"] > 0 and ref.ops.saturations["residual"] > 0
    # f = 1 keeps the state, f = 0 takes the input
    assert vec.recurrence(np.array([U.GATE_ONE]), np.array([5]), np.array([77]))[0] == 77
    assert vec.recurrence(np.array([0]), np.array([5]), np.array([77]))[0] == 5


def test_scalar_tallies_match_the_analytic_formulas() -> None:
    ops = U.Ops()
    U.rmsnorm([3, -7, 11], [65536] * 3, 4295, ops)
    assert +ops.counts == C.rmsnorm_counts(3)
    ops = U.Ops()
    U.bitlinear([1 << 16, -(1 << 15)], [65536, 65536], [[1, -1], [0, 1], [1, 1]], 1 << 20, 4295, ops)
    assert +ops.counts == C.bitlinear_counts(2, 3)
    ops = U.Ops()
    U.silu(1000, U.sigmoid_table(), ops)
    assert +ops.counts == C.silu_counts(1)


def test_fixed_point_formats_hold_their_values() -> None:
    assert U.rshift_round(5, 1) == 3 and U.rshift_round(-5, 1) == -2 and U.rshift_round(3, -2) == 12
    ops = U.Ops()
    assert U.sat(1 << 40, 32, "u", ops) == I32_MAX and ops.saturations == Counter({"u": 1})
    t = U.sigmoid_table()
    assert len(t) == 513 and t[256] == 16384 and t[0] == round(32768 / (1 + math.exp(16))) and t[-1] == 32768


def test_pack_unpack_roundtrip_and_invalid_code() -> None:
    codes = np.random.default_rng().integers(-1, 2, size=(7, 9)).astype(np.int8)
    data = pack_ternary(codes)
    assert len(data) == (63 + 3) // 4
    np.testing.assert_array_equal(unpack_ternary(data, (7, 9)), codes)
    assert pack_ternary(np.array([[1, -1, 0, 1]])) == bytes([0b01_00_10_01])
    with pytest.raises(ValueError, match="invalid 2-bit"):
        unpack_ternary(bytes([0b11]), (1, 1))
