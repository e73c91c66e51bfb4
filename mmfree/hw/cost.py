"""Cost model: per-token op and byte counts -> tokens/s and joules per token for an accelerator.

Energies are the 45 nm, 0.9 V figures of M. Horowitz, "Computing's Energy Problem (and what we can do
about it)", ISSCC 2014 (8-bit add 0.03 pJ, 32-bit add 0.1 pJ, 8-bit mult 0.2 pJ, 32-bit mult 3.1 pJ,
16-bit float add 0.4 / mult 1.1 pJ, 32-bit float add 0.9 / mult 3.7 pJ, 64-bit read of an 8 KB SRAM
10 pJ, 64-bit DRAM access 1.3-2.6 nJ). Widths the table does not list are interpolated: adds linear in
width, multiplies quadratic (an array multiplier's area); iterative divide / square root as one 64-bit
add per result bit; a sigmoid-table read as a quarter of a 64-bit SRAM read. Throughput: the ternary
adds run on `ternary_lanes` adders, the other arithmetic on `vector_lanes`, both at `clock_hz`;
parameter bytes stream from DRAM at `dram_bandwidth_gbs`, overlapped with compute, so the step takes
the longer of the two. `static_power_w` adds board/leakage power times that time (0: dynamic only).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmfree.hw.counts import ModelDims, per_token_counts

# The paper's FPGA figure for the 1.3B model (PAPER.md): about 24 tokens/s at 13 W.
PAPER_FPGA = {"preset": "1.3b", "tokens_per_s": 24.0, "watts": 13.0, "joules_per_token": 13.0 / 24.0}
PRESET_NAMES = ("debug", "370m", "1.3b", "2.7b")
_ON_CHIP = ("state_bytes",)


@dataclass
class CostModel:
    """Accelerator parameters (all overridable by name; unknown names are an error)."""

    clock_hz: float = 60e6  # core clock (the paper's FPGA runs at 60 MHz)
    ternary_lanes: int = 512  # ternary add/sub units working in parallel
    vector_lanes: int = 64  # lanes for the row-wise ops (norms, gates, recurrence, rescale)
    dram_bandwidth_gbs: float = 19.2  # GB/s of parameter streaming (one DDR4-2400 64-bit channel)
    weights_on_chip: bool = False  # price parameter reads as SRAM instead of DRAM (small models)
    static_power_w: float = 0.0  # board / leakage power added over the step time
    e_add8_pj: float = 0.03  # Horowitz 2014
    e_add16_pj: float = 0.05  # interpolated (linear in width)
    e_add32_pj: float = 0.1  # Horowitz 2014
    e_add64_pj: float = 0.2  # extrapolated (linear in width)
    e_mul8x8_pj: float = 0.2  # Horowitz 2014
    e_mul16x16_pj: float = 0.8  # interpolated (quadratic in width)
    e_mul32x16_pj: float = 1.55  # interpolated (half a 32x32 array)
    e_mul32x32_pj: float = 3.1  # Horowitz 2014
    e_div_pj: float = 12.8  # 64 iterations of a 64-bit add
    e_sqrt_pj: float = 12.8  # 64 iterations of a 64-bit add
    e_lut_pj: float = 2.5  # a 16-bit read of a small table (quarter of a 64-bit 8 KB SRAM read)
    e_sram_64b_pj: float = 10.0  # Horowitz 2014: 64-bit read, 8 KB SRAM
    e_dram_64b_pj: float = 1300.0  # Horowitz 2014: 64-bit DRAM access, 1.3-2.6 nJ (low end)

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None) -> CostModel:
        """Defaults with named fields replaced; values may be strings (`"clock_hz": "1e8"`)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in (overrides or {}).items():
            if name not in fields:
                raise ValueError(f"unknown cost-model parameter {name!r}; known: {', '.join(fields)}")
            default = fields[name].default
            try:
                if isinstance(default, bool):
                    text = str(raw).lower()
                    if text not in ("true", "false", "1", "0"):
                        raise ValueError(text)
                    values[name] = text in ("true", "1")
                else:
                    values[name] = type(default)(float(raw)) if isinstance(default, int) else float(raw)
            except ValueError:
                raise ValueError(
                    f"cost-model parameter {name}={raw!r} is not a valid {type(default).__name__}"
                ) from None
        model = cls(**values)
        for name in ("clock_hz", "ternary_lanes", "vector_lanes", "dram_bandwidth_gbs"):
            if not getattr(model, name) > 0:
                raise ValueError(f"cost-model parameter {name} must be > 0; got {getattr(model, name)}")
        return model

    @classmethod
    def parse(cls, items: list[str] | None) -> CostModel:
        """From `["name=value", ...]` (the CLI's `--cost`)."""
        overrides = {}
        for item in items or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(
                    f"cost-model override {item!r} must look like name=value (e.g. clock_hz=1e8)"
                )
            overrides[name.strip()] = value.strip()
        return cls.from_overrides(overrides)

    def op_energy_pj(self, kind: str) -> float:
        """Energy of one operation of `kind` (e.g. `add32`, `mul32x16`, `lut16`, `div64`)."""
        table = {"add8": self.e_add8_pj, "add16": self.e_add16_pj, "add32": self.e_add32_pj,
                 "add64": self.e_add64_pj, "cmp32": self.e_add32_pj, "mul8x8": self.e_mul8x8_pj,
                 "mul16x16": self.e_mul16x16_pj, "mul32x16": self.e_mul32x16_pj,
                 "mul32x32": self.e_mul32x32_pj, "div64": self.e_div_pj, "sqrt64": self.e_sqrt_pj,
                 "lut16": self.e_lut_pj}  # fmt: skip
        if kind not in table:
            raise ValueError(f"the cost model has no energy for operation kind {kind!r}")
        return table[kind]

    def estimate(self, counts: Counter) -> dict[str, float]:
        """Price one token's counts: tokens/s, joules/token and their parts."""
        ternary = sum(n for (unit, _), n in counts.items() if unit == "ternary")
        vector = sum(n for (unit, _), n in counts.items() if unit not in ("ternary", "memory"))
        compute_s = (ternary / self.ternary_lanes + vector / self.vector_lanes) / self.clock_hz
        param_bytes = sum(
            n for (unit, what), n in counts.items() if unit == "memory" and what not in _ON_CHIP
        )
        chip_bytes = sum(n for (unit, what), n in counts.items() if unit == "memory" and what in _ON_CHIP)
        memory_s = 0.0 if self.weights_on_chip else param_bytes / (self.dram_bandwidth_gbs * 1e9)
        step_s = max(compute_s, memory_s)
        e_ops = (
            sum(n * self.op_energy_pj(kind) for (unit, kind), n in counts.items() if unit != "memory") * 1e-12
        )
        e_param = self.e_sram_64b_pj if self.weights_on_chip else self.e_dram_64b_pj
        e_mem = (param_bytes / 8 * e_param + chip_bytes / 8 * self.e_sram_64b_pj) * 1e-12
        e_static = self.static_power_w * step_s
        total = e_ops + e_mem + e_static
        return {
            "tokens_per_s": 1.0 / step_s,
            "joules_per_token": total,
            "compute_s": compute_s,
            "memory_s": memory_s,
            "bound": "compute" if compute_s >= memory_s else "memory",
            "energy_ops_j": e_ops,
            "energy_memory_j": e_mem,
            "energy_static_j": e_static,
            "watts": total / step_s,
            "param_bytes": float(param_bytes),
        }


def preset_dims(name: str) -> ModelDims:
    """Model shape of a named preset (`debug`, `370m`, `1.3b`, `2.7b`, `13b`)."""
    from mmfree.models.configuration import MMFreeConfig

    return ModelDims.from_config(MMFreeConfig.from_preset(name))


def preset_table(model: CostModel | None = None, presets: tuple[str, ...] = PRESET_NAMES) -> dict[str, dict]:
    """`{preset: estimate}` from analytic per-token counts (no model is built)."""
    model = model or CostModel()
    return {name: model.estimate(per_token_counts(preset_dims(name))) for name in presets}
