"""Analytic operation counts of the integer engine: per unit call, and per token for a model shape.

The per-call formulas are the ones the scalar references (`mmfree.hw.units`) tally element by element
(a test checks they agree); `per_token_counts` sums them over one decode step of a whole model, so the
cost model can price presets too large to run. Counts are keyed `(unit, kind)`; kinds name the
operation and its width (`add32`, `mul32x16`, `lut16`, `div64`, `sqrt64`, ...). Bytes moved per token
are keyed `("memory", what)`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

MUL_KINDS = ("mul16x16", "mul32x16", "mul32x32")


@dataclass(frozen=True)
class ModelDims:
    """The shape facts the engine and the cost model need."""

    vocab: int
    hidden: int
    layers: int
    inner: int  # MLGRU width d * expand_ratio
    intermediate: int  # GLU width I
    gate_form: str = "official"
    lower_bound: bool = True

    @classmethod
    def from_config(cls, config: Any) -> ModelDims:
        """From an `MMFreeConfig` (or anything with its field names)."""
        return cls(
            vocab=config.vocab_size,
            hidden=config.hidden_size,
            layers=config.num_hidden_layers,
            inner=config.hidden_size * config.expand_ratio,
            intermediate=config.intermediate_size,
            gate_form=config.gate_form,
            lower_bound=bool(config.use_lower_bound),
        )


def rmsnorm_counts(D: int, unit: str = "rmsnorm") -> Counter:
    return Counter({(unit, "cmp32"): D, (unit, "mul32x32"): 2 * D, (unit, "add64"): D + 1,
                    (unit, "div64"): 2, (unit, "sqrt64"): 1, (unit, "mul32x16"): D})  # fmt: skip


def bitlinear_counts(K: int, N: int) -> Counter:
    """One BitLinear row: its RMSNorm, int8 quantizer, ternary accumulate and rescale."""
    c = rmsnorm_counts(K, "bitlinear.rmsnorm")
    c.update({("actquant", "cmp32"): K, ("actquant", "div64"): 1, ("actquant", "mul32x16"): K,
              ("actquant", "add64"): K, ("ternary", "add32"): N * K,
              ("dequant", "mul32x32"): 1, ("dequant", "div64"): 1, ("dequant", "mul32x16"): N})  # fmt: skip
    return c


def sigmoid_counts(n: int) -> Counter:
    return Counter({("sigmoid", "cmp32"): 2 * n, ("sigmoid", "add32"): n, ("sigmoid", "lut16"): 2 * n,
                    ("sigmoid", "add16"): 2 * n, ("sigmoid", "mul16x16"): n})  # fmt: skip


def silu_counts(n: int) -> Counter:
    c = sigmoid_counts(n)
    c[("silu", "mul32x16")] += n
    return c


def forget_gate_counts(n: int) -> Counter:
    return Counter({("forget_gate", "add16"): 2 * n, ("forget_gate", "mul16x16"): n})


def recurrence_counts(n: int) -> Counter:
    return Counter(
        {("recurrence", "add16"): n, ("recurrence", "mul32x16"): 2 * n, ("recurrence", "add32"): n}
    )


def ternary_bytes(N: int, K: int) -> int:
    """Bytes of a 2-bit packed `[N, K]` ternary matrix (4 codes per byte)."""
    return (N * K + 3) // 4


def layer_counts(dims: ModelDims, layer_idx: int) -> Counter:
    """One token through one block (both mixers, both residual adds), plus the bytes it reads and writes."""
    d, dp, I = dims.hidden, dims.inner, dims.intermediate
    c = Counter()
    c.update(rmsnorm_counts(d))  # attn_norm
    for _ in range(3):  # i_proj, f_proj, g_proj
        c.update(bitlinear_counts(d, dp))
    c.update(sigmoid_counts(dp))  # forget gate sigmoid
    if dims.lower_bound and layer_idx > 0:
        c.update(forget_gate_counts(dp))
    c.update(silu_counts(dp))  # SiLU(i)
    c.update(recurrence_counts(dp))
    if dims.gate_form == "official":
        c.update(rmsnorm_counts(dp))  # g_norm
        c.update(silu_counts(dp))  # swish(h)
        c[("outgate", "mul32x32")] += dp
    else:
        c.update(sigmoid_counts(dp))
        c[("outgate", "mul32x16")] += dp
    c.update(bitlinear_counts(dp, d))  # o_proj
    c[("residual", "add32")] += d
    c.update(rmsnorm_counts(d))  # mlp_norm
    c.update(bitlinear_counts(d, 2 * I))  # gate_proj
    c.update(silu_counts(I))
    c[("glu", "mul32x32")] += I
    c.update(bitlinear_counts(I, d))  # down_proj
    c[("residual", "add32")] += d
    weights = 3 * ternary_bytes(dp, d) + ternary_bytes(d, dp) + ternary_bytes(2 * I, d) + ternary_bytes(d, I)
    c[("memory", "weight_bytes")] += weights
    c[("memory", "scale_bytes")] += 4 * 6
    norms = 2 * d + 3 * d + dp + (dp if dims.gate_form == "official" else 0) + d + I
    c[("memory", "norm_bytes")] += 4 * norms
    if dims.lower_bound and layer_idx > 0:
        c[("memory", "lower_bound_bytes")] += 2 * dp
    c[("memory", "state_bytes")] += 2 * 4 * dp  # read and write the Q16 state
    return c


def per_token_counts(dims: ModelDims) -> Counter:
    """All operations and bytes of one decode step (embedding row to logits)."""
    c = Counter({("memory", "embedding_bytes"): 4 * dims.hidden})
    for idx in range(dims.layers):
        c.update(layer_counts(dims, idx))
    c.update(rmsnorm_counts(dims.hidden))  # final norm
    c.update(bitlinear_counts(dims.hidden, dims.vocab))  # ternary LM head
    c[("memory", "weight_bytes")] += ternary_bytes(dims.vocab, dims.hidden)
    c[("memory", "scale_bytes")] += 4
    c[("memory", "norm_bytes")] += 4 * 2 * dims.hidden
    return c


def by_kind(counts: Counter) -> dict[str, int]:
    """Totals per operation kind (memory entries excluded)."""
    out: Counter = Counter()
    for (unit, kind), n in counts.items():
        if unit != "memory":
            out[kind] += n
    return dict(sorted(out.items()))


def by_unit(counts: Counter) -> dict[str, dict[str, int]]:
    """Nested `{unit: {kind: count}}` (memory included, as `memory: {what: bytes}`)."""
    out: dict[str, dict[str, int]] = {}
    for (unit, kind), n in sorted(counts.items()):
        out.setdefault(unit, {})[kind] = int(n)
    return out


def ternary_mults(counts: Counter) -> int:
    """Multiplications performed inside the ternary matrix unit (0 by construction; tests assert it)."""
    return sum(n for (unit, kind), n in counts.items() if unit == "ternary" and kind.startswith("mul"))
