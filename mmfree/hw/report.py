"""The cost-model report: a table and a plot of tokens/s and J/token per preset, against the paper's FPGA.

    python -m mmfree.hw.report [--gpu docs/results/hw_gpu_energy.json] [--out docs/results/hw_cost.png]

The GPU file (optional) is the JSON that `benchmarks/gpu_energy.py --output` writes on the H200:
`{"device": ..., "presets": {"1.3b": {"tokens_per_s": ..., "joules_per_token": ...}, ...}}`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmfree.hw.cost import PAPER_FPGA, PRESET_NAMES, CostModel, preset_table


def report_rows(gpu: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (preset, source): the cost model dynamic-only, with the paper's 13 W, the GPU if measured."""
    rows = []
    static = CostModel(static_power_w=PAPER_FPGA["watts"])
    for label, model in (("cost model (dynamic)", CostModel()), ("cost model + 13 W static", static)):
        for preset, est in preset_table(model).items():
            rows.append({"source": label, "preset": preset, "tokens_per_s": est["tokens_per_s"],
                         "joules_per_token": est["joules_per_token"], "bound": est["bound"]})  # fmt: skip
    rows.append({"source": "paper FPGA", "preset": PAPER_FPGA["preset"], "tokens_per_s": PAPER_FPGA["tokens_per_s"],
                 "joules_per_token": PAPER_FPGA["joules_per_token"], "bound": "measured"})  # fmt: skip
    for preset, est in ((gpu or {}).get("presets") or {}).items():
        rows.append({"source": f"GPU ({gpu.get('device', 'H200')})", "preset": preset,
                     "tokens_per_s": float(est["tokens_per_s"]), "joules_per_token": float(est["joules_per_token"]),
                     "bound": "measured"})  # fmt: skip
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| source | preset | tokens/s | J/token | bound |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['preset']} | {r['tokens_per_s']:.4g} | {r['joules_per_token']:.3g} | {r['bound']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: str | Path) -> Path:
    """Two log-scale panels (tokens/s, J/token) over the presets, one series per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    xs = {p: i for i, p in enumerate(PRESET_NAMES)}
    sources = list(dict.fromkeys(r["source"] for r in rows))
    markers = {"paper FPGA": "*", "cost model (dynamic)": "o", "cost model + 13 W static": "s"}
    for src in sources:
        pts = [r for r in rows if r["source"] == src and r["preset"] in xs]
        x = [xs[r["preset"]] for r in pts]
        style = "-" if len(pts) > 1 else ""
        for ax, key in zip(axes, ("tokens_per_s", "joules_per_token")):
            ax.plot(x, [r[key] for r in pts], style, marker=markers.get(src, "^"), markersize=10 if
                    src == "paper FPGA" else 6, label=src)  # fmt: skip
    for ax, title in zip(axes, ("tokens / s (batch 1 decode)", "joules / token")):
        ax.set_xticks(range(len(PRESET_NAMES)), PRESET_NAMES)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Integer-only MatMul-free LM: cost model (Horowitz 45 nm energies) vs the paper's FPGA")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gpu", default="docs/results/hw_gpu_energy.json", help="measured GPU JSON, if present"
    )
    parser.add_argument("--out", default="docs/results/hw_cost.png", help="PNG to write")
    args = parser.parse_args(argv)
    gpu = json.loads(Path(args.gpu).read_text()) if Path(args.gpu).is_file() else None
    rows = report_rows(gpu)
    plot(rows, args.out)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
