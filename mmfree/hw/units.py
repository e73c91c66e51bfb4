"""Scalar references of the integer engine's functional units: the spec, one element at a time.

Every function here works on plain Python ints (lists for rows) and tallies each arithmetic operation it
performs into an `Ops` record (by unit and kind) as it performs it, and each value it had to saturate.
The vectorized engine (`mmfree.hw.engine`) must match these bit for bit, and its analytic op counts
(`mmfree.hw.counts`) must match the tallies. Fixed-point formats (docs/hw.md has the full table):

- activations / residual stream / recurrent state: signed 32-bit, Q16 (value = int / 2^16);
- gates (sigmoid outputs, forget gate f, 1 - f, lower bounds): unsigned 16-bit, Q15 (1.0 = 32768);
- BitLinear inputs: int8 codes; ternary weights {-1, 0, 1}; accumulators signed 32-bit;
- norm weights: signed 32-bit Q16; per-tensor ternary scales: signed 32-bit Q24; epsilons: Q32.

Rounding is round-half-up on every right shift (`rshift_round`); saturation clamps to the width and is
counted (never a silent wrap).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

ACT_FRAC = 16  # Q16 activations, residual stream, recurrent state
ACT_BITS = 32
GATE_FRAC = 15  # Q15 gates: 1.0 = 32768
GATE_ONE = 1 << GATE_FRAC
NORM_W_FRAC = 16  # Q16 norm weights
SCALE_FRAC = 24  # Q24 per-tensor ternary scales
EPS_FRAC = 32  # Q32 epsilons (mean squares are Q32)
NORM_IN_BITS = 24  # RMSNorm squares inputs of at most this many bits (block shift above)
ACC_BITS = 32  # ternary accumulators

# Sigmoid: piecewise linear between table points over [-16, 16), 512 segments (step 1/16).
SIG_RANGE_LOG2 = 4  # inputs clamped to [-2^4, 2^4)
SIG_SEGMENTS_LOG2 = 9
SIG_STEP_SHIFT = ACT_FRAC + SIG_RANGE_LOG2 + 1 - SIG_SEGMENTS_LOG2  # 12: fraction bits per segment
SIG_LIMIT = 1 << (ACT_FRAC + SIG_RANGE_LOG2)  # 2^20 in Q16


@dataclass
class Ops:
    """Tally of operations `(unit, kind) -> count` and saturation events `unit -> count`."""

    counts: Counter = field(default_factory=Counter)
    saturations: Counter = field(default_factory=Counter)

    def tick(self, unit: str, kind: str, n: int = 1) -> None:
        self.counts[(unit, kind)] += n

    def merge(self, other: Ops) -> None:
        self.counts.update(other.counts)
        self.saturations.update(other.saturations)


def rshift_round(v: int, s: int) -> int:
    """`v / 2^s` rounded half up for s > 0; `v * 2^-s` for s <= 0."""
    pos, neg = max(s, 0), max(-s, 0)
    return ((v + ((1 << pos) >> 1)) >> pos) << neg


def sat(v: int, bits: int, unit: str, ops: Ops, signed: bool = True) -> int:
    """Clamp v to a `bits`-wide (signed or unsigned) integer, counting a saturation event if it moved."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if v < lo or v > hi:
        ops.saturations[unit] += 1
        return lo if v < lo else hi
    return v


def sigmoid_table() -> list[int]:
    """The 513 Q15 table points sigmoid(-16 + j / 16), j = 0..512 (exported as a memory image)."""
    import math

    n = 1 << SIG_SEGMENTS_LOG2
    lo = -(1 << SIG_RANGE_LOG2)
    step = 2.0 ** (SIG_RANGE_LOG2 + 1) / n
    return [round(GATE_ONE / (1.0 + math.exp(-(lo + j * step)))) for j in range(n + 1)]


def rmsnorm(x: list[int], w: list[int], eps_q32: int, ops: Ops, unit: str = "rmsnorm") -> list[int]:
    """Fixed-point RMSNorm `x * w / sqrt(mean(x^2) + eps)`: Q16 in, Q16 weights, Q16 out.

    Block shift k so squared inputs have <= 24 bits; 64-bit sum of squares; one integer division for the
    mean, an integer square root (digit recurrence) and one division for a normalized 16-bit reciprocal.
    """
    D = len(x)
    m = 0
    for v in x:
        ops.tick(unit, "cmp32")
        m = max(m, abs(v))
    k = max(0, m.bit_length() - NORM_IN_BITS)
    acc = 0
    for v in x:
        xs = v >> k
        ops.tick(unit, "mul32x32")
        ops.tick(unit, "add64")
        acc += xs * xs
    ops.tick(unit, "div64")
    ms = (acc + D // 2) // D  # Q(32 - 2k)
    ops.tick(unit, "add64")
    ms += rshift_round(eps_q32, 2 * k)
    ops.tick(unit, "sqrt64")
    s = max(_isqrt(ms), 1)  # rms in Q(16 - k)
    b = s.bit_length()
    ops.tick(unit, "div64")
    recip = ((1 << (b + 15)) + s // 2) // s  # in [2^15, 2^16]: 1/s = recip * 2^-(b + 15)
    out = []
    for v, wv in zip(x, w):
        ops.tick(unit, "mul32x32")
        p = sat(rshift_round(v * wv, NORM_W_FRAC), ACT_BITS, unit, ops)
        ops.tick(unit, "mul32x16")
        out.append(sat(rshift_round(p * recip, b + k - 1), ACT_BITS, unit, ops))
    return out


def _isqrt(n: int) -> int:
    import math

    return math.isqrt(n)


def actquant(v: list[int], ops: Ops, unit: str = "actquant") -> tuple[list[int], int]:
    """Per-token absmax int8 quantization of a Q16 row: codes `round(v * 127 / max|v|)` and max|v| (Q16)."""
    m = 0
    for x in v:
        ops.tick(unit, "cmp32")
        m = max(m, abs(x))
    m = max(m, 1)
    bm = m.bit_length()
    ops.tick(unit, "div64")
    recip = ((1 << (bm + 15)) + m // 2) // m  # 1/m = recip * 2^-(bm + 15)
    codes = []
    for x in v:
        ops.tick(unit, "mul32x16")
        t = x * recip
        ops.tick(unit, "add64")  # t * 127 = (t << 7) - t
        codes.append(max(-128, min(127, rshift_round((t << 7) - t, bm + 15))))
    return codes, m


def ternary_matvec(codes: list[int], weight: list[list[int]], ops: Ops, unit: str = "ternary") -> list[int]:
    """int8 codes `[K]` times ternary rows `[N][K]`: add, subtract or skip; int32 accumulators, no multiply."""
    out = []
    for row in weight:
        acc = 0
        for c, w in zip(codes, row):
            ops.tick(unit, "add32")
            if w == 1:
                acc += c
            elif w == -1:
                acc -= c
        out.append(sat(acc, ACC_BITS, unit, ops))
    return out


def dequant(acc: list[int], m: int, g_q24: int, ops: Ops, unit: str = "dequant") -> list[int]:
    """int32 accumulators -> Q16 outputs `acc * g * max|x| / 127` through a 17-bit mantissa and a shift."""
    ops.tick(unit, "mul32x32")
    num = g_q24 * m  # Q40
    bn = num.bit_length()
    t = rshift_round(num, bn - 23)
    ops.tick(unit, "div64")
    mant = (t + 63) // 127
    e = 47 - bn
    if e < 0:
        ops.saturations[unit] += 1
        e = 0
    out = []
    for a in acc:
        ops.tick(unit, "mul32x16")
        out.append(sat(rshift_round(a * mant, e), ACT_BITS, unit, ops))
    return out


def bitlinear(
    x: list[int], norm_w: list[int], weight: list[list[int]], g_q24: int, eps_q32: int, ops: Ops
) -> list[int]:
    """BitLinear on a Q16 row: RMSNorm -> int8 codes -> ternary accumulate -> Q16 rescale."""
    xn = rmsnorm(x, norm_w, eps_q32, ops, unit="bitlinear.rmsnorm")
    codes, m = actquant(xn, ops)
    return dequant(ternary_matvec(codes, weight, ops), m, g_q24, ops)


def sigmoid(x: int, table: list[int], ops: Ops, unit: str = "sigmoid") -> int:
    """Piecewise-linear sigmoid of a Q16 value -> Q15 gate in [0, 32768]."""
    ops.tick(unit, "cmp32", 2)
    xc = max(-SIG_LIMIT, min(SIG_LIMIT - 1, x))
    ops.tick(unit, "add32")
    u = xc + SIG_LIMIT
    idx, frac = u >> SIG_STEP_SHIFT, u & ((1 << SIG_STEP_SHIFT) - 1)
    ops.tick(unit, "lut16", 2)
    lo, hi = table[idx], table[idx + 1]
    ops.tick(unit, "add16")
    ops.tick(unit, "mul16x16")
    ops.tick(unit, "add16")
    return lo + rshift_round((hi - lo) * frac, SIG_STEP_SHIFT)


def silu(x: int, table: list[int], ops: Ops, unit: str = "silu") -> int:
    """SiLU of a Q16 value: `x * sigmoid(x)` with the sigmoid unit, Q16 out."""
    s = sigmoid(x, table, ops)
    ops.tick(unit, "mul32x16")
    return sat(rshift_round(x * s, GATE_FRAC), ACT_BITS, unit, ops)


def forget_gate(sig: int, lb: int | None, ops: Ops, unit: str = "forget_gate") -> int:
    """`f = lb + (1 - lb) * sigmoid` in Q15 (f = sigmoid without a lower bound)."""
    if lb is None:
        return sig
    ops.tick(unit, "add16")
    ops.tick(unit, "mul16x16")
    ops.tick(unit, "add16")
    return lb + rshift_round((GATE_ONE - lb) * sig, GATE_FRAC)


def recurrence(f: int, c: int, h: int, ops: Ops, unit: str = "recurrence") -> int:
    """One MLGRU state update `h' = f * h + (1 - f) * c`: f Q15, c and h Q16, h' Q16 saturated to 32 bits."""
    ops.tick(unit, "add16")
    omf = GATE_ONE - f
    ops.tick(unit, "mul32x16", 2)
    i = rshift_round(c * omf, GATE_FRAC)
    fh = rshift_round(f * h, GATE_FRAC)
    ops.tick(unit, "add32")
    return sat(fh + i, ACT_BITS, unit, ops)


def mul_q16(a: int, b: int, ops: Ops, unit: str) -> int:
    """Product of two Q16 values, Q16 out (saturated to 32 bits)."""
    ops.tick(unit, "mul32x32")
    return sat(rshift_round(a * b, ACT_FRAC), ACT_BITS, unit, ops)


def mul_gate(a: int, g: int, ops: Ops, unit: str) -> int:
    """Q16 value times a Q15 gate, Q16 out."""
    ops.tick(unit, "mul32x16")
    return sat(rshift_round(a * g, GATE_FRAC), ACT_BITS, unit, ops)


def add_sat(a: int, b: int, ops: Ops, unit: str = "residual") -> int:
    """Residual add of two Q16 values, saturated to 32 bits."""
    ops.tick(unit, "add32")
    return sat(a + b, ACT_BITS, unit, ops)
