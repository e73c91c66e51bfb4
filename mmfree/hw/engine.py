"""The integer-only inference engine: vectorized numpy units (bit-exact with `mmfree.hw.units`) and the
model's dataflow, runnable on either datapath.

    engine = Engine.from_model(model)            # or Engine.from_export("memimg/")
    logits = engine.forward(ids)                 # [T, V] int64, Q16 logits
    engine.ops.counts, engine.ops.saturations    # tallies since construction (or `reset_stats`)

`forward(ids, datapath="scalar")` runs the same dataflow through the scalar references, one element at a
time (slow; the bit-exactness check). All values are integers; the only floats are the final conversion
of logits for perplexity, and the ternary accumulate, which uses float64 BLAS as an exact integer adder
(|sums| < 2^31, far inside float64's 2^53 exact range).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmfree.hw import counts as C
from mmfree.hw import units as U
from mmfree.hw.params import BitLinearParams, FixedPointRangeError, HwParams, params_from_model

Datapath = Literal["vector", "scalar"]


def _bitlen(v: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (exact: corrects float rounding)."""
    v = np.asarray(v, dtype=np.int64)
    b = np.frexp(v.astype(np.float64))[1].astype(np.int64)
    too_big = (b > 0) & ((np.int64(1) << np.maximum(b - 1, 0)) > v)
    return b - too_big


def _rshift_round(v: np.ndarray, s: Any) -> np.ndarray:
    s = np.asarray(s, dtype=np.int64)
    pos, neg = np.maximum(s, 0), np.maximum(-s, 0)
    return ((v + ((np.int64(1) << pos) >> 1)) >> pos) << neg


def _isqrt(n: np.ndarray) -> np.ndarray:
    s = np.floor(np.sqrt(n.astype(np.float64))).astype(np.int64)
    for _ in range(4):
        s = s - (s * s > n)
        s = s + ((s + 1) * (s + 1) <= n)
    return s


class VectorDatapath:
    """numpy implementations of the units over rows `[R, D]`; counts from `mmfree.hw.counts`."""

    def __init__(self, ops: U.Ops, table: np.ndarray) -> None:
        self.ops = ops
        self.table = table

    def sat(self, v: np.ndarray, unit: str, bits: int = U.ACT_BITS) -> np.ndarray:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        out = np.clip(v, lo, hi)
        n = int(np.count_nonzero(out != v))
        if n:
            self.ops.saturations[unit] += n
        return out

    def rmsnorm(self, x: np.ndarray, w: np.ndarray, eps_q32: int, unit: str = "rmsnorm") -> np.ndarray:
        R, D = x.shape
        self.ops.counts.update({k: n * R for k, n in C.rmsnorm_counts(D, unit).items()})
        m = np.abs(x).max(axis=1, keepdims=True)  # [R, 1]
        k = np.maximum(_bitlen(m) - U.NORM_IN_BITS, 0)  # [R, 1]
        xs = x >> k  # [R, D]
        ms = ((xs * xs).sum(axis=1, keepdims=True) + D // 2) // D  # [R, 1]
        ms = ms + _rshift_round(np.int64(eps_q32), 2 * k)
        s = np.maximum(_isqrt(ms), 1)  # [R, 1]
        b = _bitlen(s)
        recip = ((np.int64(1) << (b + 15)) + s // 2) // s  # [R, 1]
        p = self.sat(_rshift_round(x * w[None, :], U.NORM_W_FRAC), unit)  # [R, D]
        return self.sat(_rshift_round(p * recip, b + k - 1), unit)

    def bitlinear(self, x: np.ndarray, p: BitLinearParams, eps_q32: int) -> np.ndarray:
        R, K = x.shape
        N = p.codes.shape[0]
        self.ops.counts.update({k: n * R for k, n in C.bitlinear_counts(K, N).items()})
        for key, n in C.rmsnorm_counts(K, "bitlinear.rmsnorm").items():
            self.ops.counts[key] -= n * R  # rmsnorm() below counts its own
        self.ops.counts[("memory", "weight_bytes")] += R * C.ternary_bytes(N, K)
        xn = self.rmsnorm(x, p.norm_w, eps_q32, unit="bitlinear.rmsnorm")  # [R, K]
        m = np.maximum(np.abs(xn).max(axis=1, keepdims=True), 1)  # [R, 1]
        bm = _bitlen(m)
        recip = ((np.int64(1) << (bm + 15)) + m // 2) // m
        t = xn * recip
        codes = np.clip(_rshift_round((t << 7) - t, bm + 15), -128, 127)  # [R, K]
        acc = np.rint(codes.astype(np.float64) @ p.codes_t).astype(np.int64)  # [R, N]
        acc = self.sat(acc, "ternary", U.ACC_BITS)
        num = np.int64(p.scale_q24) * m  # [R, 1]
        bn = _bitlen(num)
        mant = (_rshift_round(num, bn - 23) + 63) // 127
        e = 47 - bn
        bad = int(np.count_nonzero(e < 0))
        if bad:
            self.ops.saturations["dequant"] += bad
        return self.sat(_rshift_round(acc * mant, np.maximum(e, 0)), "dequant")

    def sigmoid(self, x: np.ndarray) -> np.ndarray:
        self.ops.counts.update({k: n * x.size for k, n in C.sigmoid_counts(1).items()})
        u = np.clip(x, -U.SIG_LIMIT, U.SIG_LIMIT - 1) + U.SIG_LIMIT
        idx, frac = u >> U.SIG_STEP_SHIFT, u & ((1 << U.SIG_STEP_SHIFT) - 1)
        lo, hi = self.table[idx], self.table[idx + 1]
        return lo + _rshift_round((hi - lo) * frac, U.SIG_STEP_SHIFT)

    def silu(self, x: np.ndarray) -> np.ndarray:
        s = self.sigmoid(x)
        self.ops.counts[("silu", "mul32x16")] += x.size
        return self.sat(_rshift_round(x * s, U.GATE_FRAC), "silu")

    def forget_gate(self, sig: np.ndarray, lb: np.ndarray | None) -> np.ndarray:
        if lb is None:
            return sig
        self.ops.counts.update({k: n * sig.size for k, n in C.forget_gate_counts(1).items()})
        return lb + _rshift_round((U.GATE_ONE - lb) * sig, U.GATE_FRAC)

    def recurrence(self, f: np.ndarray, c: np.ndarray, h: np.ndarray) -> np.ndarray:
        self.ops.counts.update({k: n * f.size for k, n in C.recurrence_counts(1).items()})
        i = _rshift_round(c * (U.GATE_ONE - f), U.GATE_FRAC)
        return self.sat(_rshift_round(f * h, U.GATE_FRAC) + i, "recurrence")

    def mul_q16(self, a: np.ndarray, b: np.ndarray, unit: str) -> np.ndarray:
        self.ops.counts[(unit, "mul32x32")] += a.size
        return self.sat(_rshift_round(a * b, U.ACT_FRAC), unit)

    def mul_gate(self, a: np.ndarray, g: np.ndarray, unit: str) -> np.ndarray:
        self.ops.counts[(unit, "mul32x16")] += a.size
        return self.sat(_rshift_round(a * g, U.GATE_FRAC), unit)

    def add(self, a: np.ndarray, b: np.ndarray, unit: str = "residual") -> np.ndarray:
        self.ops.counts[(unit, "add32")] += a.size
        return self.sat(a + b, unit)


class ScalarDatapath:
    """The same interface, evaluated element by element through the scalar references."""

    def __init__(self, ops: U.Ops, table: np.ndarray) -> None:
        self.ops = ops
        self.table = [int(v) for v in table]

    @staticmethod
    def _rows(x: np.ndarray) -> list[list[int]]:
        return [[int(v) for v in row] for row in x]

    def rmsnorm(self, x: np.ndarray, w: np.ndarray, eps_q32: int, unit: str = "rmsnorm") -> np.ndarray:
        wl = [int(v) for v in w]
        return np.array([U.rmsnorm(r, wl, eps_q32, self.ops, unit) for r in self._rows(x)], dtype=np.int64)

    def bitlinear(self, x: np.ndarray, p: BitLinearParams, eps_q32: int) -> np.ndarray:
        wl, nw = self._rows(p.codes), [int(v) for v in p.norm_w]
        self.ops.counts[("memory", "weight_bytes")] += x.shape[0] * C.ternary_bytes(*p.codes.shape)
        rows = [U.bitlinear(r, nw, wl, p.scale_q24, eps_q32, self.ops) for r in self._rows(x)]
        return np.array(rows, dtype=np.int64).reshape(x.shape[0], p.codes.shape[0])

    def _map(self, fn: Any, *arrays: np.ndarray) -> np.ndarray:
        flat = [a.reshape(-1) for a in np.broadcast_arrays(*arrays)]
        out = [fn(*(int(a[j]) for a in flat)) for j in range(flat[0].size)]
        return np.array(out, dtype=np.int64).reshape(np.broadcast_shapes(*(a.shape for a in arrays)))

    def sigmoid(self, x: np.ndarray) -> np.ndarray:
        return self._map(lambda v: U.sigmoid(v, self.table, self.ops), x)

    def silu(self, x: np.ndarray) -> np.ndarray:
        return self._map(lambda v: U.silu(v, self.table, self.ops), x)

    def forget_gate(self, sig: np.ndarray, lb: np.ndarray | None) -> np.ndarray:
        if lb is None:
            return sig
        return self._map(lambda s, b: U.forget_gate(s, b, self.ops), sig, lb)

    def recurrence(self, f: np.ndarray, c: np.ndarray, h: np.ndarray) -> np.ndarray:
        return self._map(lambda a, b, s: U.recurrence(a, b, s, self.ops), f, c, h)

    def mul_q16(self, a: np.ndarray, b: np.ndarray, unit: str) -> np.ndarray:
        return self._map(lambda x, y: U.mul_q16(x, y, self.ops, unit), a, b)

    def mul_gate(self, a: np.ndarray, g: np.ndarray, unit: str) -> np.ndarray:
        return self._map(lambda x, y: U.mul_gate(x, y, self.ops, unit), a, g)

    def add(self, a: np.ndarray, b: np.ndarray, unit: str = "residual") -> np.ndarray:
        return self._map(lambda x, y: U.add_sat(x, y, self.ops, unit), a, b)


class Engine:
    """Integer-only MatMul-free LM. `strict=True` turns any saturation into a FixedPointRangeError."""

    def __init__(self, params: HwParams, strict: bool = False) -> None:
        params.validate()
        self.params = params
        self.dims = params.dims
        self.strict = strict
        self.ops = U.Ops()
        self.tokens = 0

    @classmethod
    def from_model(cls, model: Any, strict: bool = False) -> Engine:
        """Convert a float `MMFreeForCausalLM` (see `mmfree.hw.params`)."""
        return cls(params_from_model(model), strict)

    @classmethod
    def from_export(cls, directory: str | Path, strict: bool = False) -> Engine:
        """Load the memory images written by `mmfree.hw.export.export_params`."""
        from mmfree.hw.export import load_export

        return cls(load_export(directory), strict)

    def reset_stats(self) -> None:
        self.ops = U.Ops()
        self.tokens = 0

    def init_state(self) -> list[np.ndarray]:
        """Zero recurrent state: one Q16 vector `[d']` per layer."""
        return [np.zeros(self.dims.inner, dtype=np.int64) for _ in self.params.layers]

    def forward(
        self, ids: Any, state: list[np.ndarray] | None = None, datapath: Datapath = "vector"
    ) -> np.ndarray:
        """Token ids `[T]` -> Q16 logits `[T, V]` (int64 holding int32 values). `state` is updated in place."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        V = self.dims.vocab
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            raise ValueError(f"token ids must lie in [0, {V}); got range [{ids.min()}, {ids.max()}]")
        state = self.init_state() if state is None else state
        ops = U.Ops()
        dp: Any = (VectorDatapath if datapath == "vector" else ScalarDatapath)(ops, self.params.sigmoid_table)
        logits = self._run(ids, state, dp)
        T = ids.size
        ops.counts[("memory", "embedding_bytes")] += 4 * self.dims.hidden * T
        self.ops.merge(ops)
        self.tokens += T
        if self.strict and ops.saturations:
            detail = ", ".join(f"{u}: {n}" for u, n in sorted(ops.saturations.items()))
            raise FixedPointRangeError(
                f"fixed-point saturation during inference ({detail}); the model's activations exceed the "
                "engine's formats (docs/hw.md); run without strict to count them instead"
            )
        return logits

    def _run(self, ids: np.ndarray, state: list[np.ndarray], dp: Any) -> np.ndarray:
        P, eps_n, eps_b = self.params, self.params.eps_norm_q32, self.params.eps_bitlinear_q32
        x = P.embedding[ids]  # [T, d]
        for idx, lp in enumerate(P.layers):
            xn = dp.rmsnorm(x, lp.attn_norm, eps_n)  # [T, d]
            i_raw = dp.bitlinear(xn, lp.i_proj, eps_b)  # [T, d']
            f_raw = dp.bitlinear(xn, lp.f_proj, eps_b)  # [T, d']
            g_raw = dp.bitlinear(xn, lp.g_proj, eps_b)  # [T, d']
            f = dp.forget_gate(dp.sigmoid(f_raw), lp.lower_bound)  # [T, d'] Q15
            c = dp.silu(i_raw)  # [T, d']
            h = state[idx]
            hs = []
            for t in range(ids.size):
                h = dp.recurrence(f[t], c[t], h)  # [d']
                hs.append(h)
            state[idx] = h
            hseq = np.stack(hs) if hs else np.zeros_like(c)  # [T, d']
            if lp.g_norm is not None:
                o = dp.mul_q16(dp.rmsnorm(g_raw, lp.g_norm, eps_n), dp.silu(hseq), "outgate")  # [T, d']
            else:
                o = dp.mul_gate(hseq, dp.sigmoid(g_raw), "outgate")  # [T, d']
            x = dp.add(x, dp.bitlinear(o, lp.o_proj, eps_b))  # [T, d]
            xn = dp.rmsnorm(x, lp.mlp_norm, eps_n)
            gu = dp.bitlinear(xn, lp.gate_proj, eps_b)  # [T, 2I]
            I = self.dims.intermediate
            p = dp.mul_q16(dp.silu(gu[:, :I]), gu[:, I:], "glu")  # [T, I]
            x = dp.add(x, dp.bitlinear(p, lp.down_proj, eps_b))  # [T, d]
            self._memory(dp, idx, ids.size)
        xn = dp.rmsnorm(x, P.norm, eps_n)
        dp.ops.counts[("memory", "scale_bytes")] += 4 * ids.size
        dp.ops.counts[("memory", "norm_bytes")] += 4 * 2 * self.dims.hidden * ids.size
        return dp.bitlinear(xn, P.lm_head, eps_b)  # [T, V]

    def _memory(self, dp: Any, idx: int, T: int) -> None:
        """Per-layer bytes other than ternary weights (those are counted by each BitLinear)."""
        d, dp_, I = self.dims.hidden, self.dims.inner, self.dims.intermediate
        lp = self.params.layers[idx]
        norms = 6 * d + dp_ + (dp_ if lp.g_norm is not None else 0) + I
        c = dp.ops.counts
        c[("memory", "scale_bytes")] += 4 * 6 * T
        c[("memory", "norm_bytes")] += 4 * norms * T
        if lp.lower_bound is not None:
            c[("memory", "lower_bound_bytes")] += 2 * dp_ * T
        c[("memory", "state_bytes")] += 2 * 4 * dp_ * T

    def logits_float(self, ids: Any, datapath: Datapath = "vector") -> np.ndarray:
        """Logits as float64 `[T, V]` (Q16 / 2^16)."""
        return self.forward(ids, datapath=datapath).astype(np.float64) / (1 << U.ACT_FRAC)

    def perplexity(self, ids: Any) -> float:
        """exp(mean next-token NLL) over `ids [T]` (T >= 2), from the integer logits."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size < 2:
            raise ValueError("perplexity needs at least 2 tokens")
        z = self.logits_float(ids)[:-1]  # [T-1, V]
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -logp[np.arange(ids.size - 1), ids[1:]].mean()
        return float(np.exp(nll))

    def counts_per_token(self) -> Counter:
        """Average tallies per token processed so far (exact integers for a fixed-shape model)."""
        if not self.tokens:
            return Counter()
        return Counter({k: n // self.tokens for k, n in self.ops.counts.items()})
