"""Cost model: hand-priced counts, parameter errors, analytic counts against real models, the report."""

from __future__ import annotations

from collections import Counter

import pytest

from mmfree.hw import counts as C
from mmfree.hw.cost import CostModel, preset_dims, preset_table
from mmfree.hw.report import plot, report_rows


def test_energy_and_time_of_hand_made_counts() -> None:
    counts = Counter({("ternary", "add32"): 1000, ("glu", "mul32x32"): 10, ("memory", "weight_bytes"): 800,
                      ("memory", "state_bytes"): 64})  # fmt: skip
    model = CostModel(
        clock_hz=1e6, ternary_lanes=10, vector_lanes=5, dram_bandwidth_gbs=1e-6, static_power_w=2.0
    )
    est = model.estimate(counts)
    dynamic = 1000 * 0.1e-12 + 10 * 3.1e-12 + 100 * 1.3e-9 + 8 * 10e-12  # Horowitz 45 nm figures
    assert est["compute_s"] == pytest.approx((100 + 2) / 1e6)
    assert est["memory_s"] == pytest.approx(800 / 1e3) and est["bound"] == "memory"
    assert est["joules_per_token"] == pytest.approx(dynamic + 2.0 * 0.8)
    assert est["tokens_per_s"] == pytest.approx(1 / 0.8)


def test_overrides_and_their_errors() -> None:
    m = CostModel.parse(["clock_hz=1e8", "ternary_lanes=1024", "weights_on_chip=true"])
    assert m.clock_hz == 1e8 and m.ternary_lanes == 1024 and m.weights_on_chip is True
    with pytest.raises(ValueError, match="unknown cost-model parameter 'clock_mhz'"):
        CostModel.parse(["clock_mhz=60"])
    with pytest.raises(ValueError, match="name=value"):
        CostModel.parse(["clock_hz"])
    with pytest.raises(ValueError, match="not a valid"):
        CostModel.parse(["vector_lanes=many"])
    with pytest.raises(ValueError, match="> 0"):
        CostModel.parse(["dram_bandwidth_gbs=0"])


def test_analytic_counts_match_a_built_model() -> None:
    from mmfree.layers import BitLinear
    from mmfree.models import MMFreeConfig, MMFreeForCausalLM

    model = MMFreeForCausalLM(MMFreeConfig.from_preset("debug"))
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, BitLinear))
    counts = C.per_token_counts(preset_dims("debug"))
    assert counts[("ternary", "add32")] == weights  # one add/sub per ternary weight per token
    assert counts[("memory", "weight_bytes")] >= weights // 4
    assert C.ternary_mults(counts) == 0


def test_presets_scale_and_levers_move_the_right_way() -> None:
    table = preset_table()
    tps = [table[p]["tokens_per_s"] for p in ("debug", "370m", "1.3b", "2.7b")]
    jpt = [table[p]["joules_per_token"] for p in ("debug", "370m", "1.3b", "2.7b")]
    assert tps == sorted(tps, reverse=True) and jpt == sorted(jpt)
    faster = preset_table(CostModel(ternary_lanes=1024), ("1.3b",))["1.3b"]
    assert faster["tokens_per_s"] > table["1.3b"]["tokens_per_s"]


def test_report_plot_written(tmp_path) -> None:
    gpu = {"device": "test", "presets": {"1.3b": {"tokens_per_s": 50.0, "joules_per_token": 8.0}}}
    rows = report_rows(gpu)
    assert {r["source"] for r in rows} >= {"paper FPGA", "GPU (test)", "cost model (dynamic)"}
    out = plot(rows, tmp_path / "hw.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
