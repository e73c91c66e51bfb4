"""The study's report: per-run JSON results -> docs/results/study.md and docs/results/study_scaling.png.

    python -m study.report [--results docs/results/study] [--out docs/results/study.md] [--plot PNG]

Every number and every statement in the report is computed here from the result files: the run table (one
row per run, the architecture named in each), the shards each run read, the LR sweep, the scaling points
with a fit of L(C) = a * C^-b + c per architecture (once it has 3 sizes), whether the gap between the two
architectures narrows with size, and the ablations against their reference run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from study.fit import MIN_POINTS, PowerLawFit, crossings, fit_power_law
from study.plan import ARCH_NAMES, ARCHS, load_study
from study.results import best_sweep_lrs, load_results

# Zero-shot metric per task as the paper reports it (acc_norm for the first four, acc for the last two).
TASK_COLUMNS = (
    ("arc_easy", "acc_norm", "ARC-e"),
    ("arc_challenge", "acc_norm", "ARC-c"),
    ("hellaswag", "acc_norm", "HS"),
    ("openbookqa", "acc_norm", "OBQA"),
    ("piqa", "acc", "PIQA"),
    ("winogrande", "acc", "WG"),
)
CROSS_MAX = 1e26


def _f(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"


def _count(n: float) -> str:
    """A token or parameter count: 43.3M, 2.6k, 512."""
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def task_value(res: dict[str, Any], task: str, metric: str) -> float | None:
    """A task metric of a result (None when that task was not evaluated)."""
    return res.get("eval", {}).get(task, {}).get("metrics", {}).get(metric)


def avg_zero_shot(res: dict[str, Any]) -> float | None:
    """Mean of the six zero-shot accuracies (None unless all six are present)."""
    values = [task_value(res, t, m) for t, m, _ in TASK_COLUMNS]
    return None if any(v is None for v in values) else float(np.mean(values))


def val_loss(res: dict[str, Any]) -> float | None:
    val = res.get("val") or {}
    return val.get("loss")


def scaling_points(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per architecture: its best sweep run plus its `sizes` runs, finished ones only, by increasing compute."""
    best = best_sweep_lrs(results)
    points: dict[str, list[dict[str, Any]]] = {}
    for arch in ARCHS:
        runs = [
            r
            for r in results
            if r.get("batch") == "sizes" and r.get("arch") == arch and r.get("status") == "ok"
        ]
        if arch in best:
            runs.append(best[arch])
        runs = [r for r in runs if val_loss(r) is not None]
        points[arch] = sorted(runs, key=lambda r: r["flops"]["param_flops"])
    return points


def fit_arch(points: list[dict[str, Any]]) -> PowerLawFit | None:
    """The L(C) fit of one architecture's points (None below MIN_POINTS sizes)."""
    if len({p["size"] for p in points}) < MIN_POINTS:
        return None
    compute = np.array([p["flops"]["param_flops"] for p in points])  # [n]
    loss = np.array([val_loss(p) for p in points])  # [n]
    return fit_power_law(compute, loss)


def gap_statement(points: dict[str, list[dict[str, Any]]], fits: dict[str, PowerLawFit | None]) -> list[str]:
    """Plain sentences on the MatMul-free minus Transformer++ loss gap, computed from the points and fits."""
    by_size = {arch: {p["size"]: p for p in pts} for arch, pts in points.items()}
    common = [s for s in by_size.get("mmfree", {}) if s in by_size.get("transformer", {})]
    common.sort(key=lambda s: by_size["mmfree"][s]["flops"]["param_flops"])
    if len(common) < 2:
        return [
            f"Sizes with both architectures finished: {len(common)}. At least two are needed to say whether the "
            "gap narrows with size; no statement yet."
        ]
    gaps = [val_loss(by_size["mmfree"][s]) - val_loss(by_size["transformer"][s]) for s in common]
    listing = ", ".join(f"{g:+.4f} at {s}" for s, g in zip(common, gaps, strict=True))
    steps = [b - a for a, b in itertools.pairwise(gaps)]
    monotone = all(d < 0 for d in steps) or all(d > 0 for d in steps)
    how = "monotonically" if monotone else "not monotonically"
    if gaps[-1] < gaps[0]:
        trend = (
            f"MatMul-free gains on Transformer++ as the models grow ({gaps[0]:+.4f} -> {gaps[-1]:+.4f}, {how}): "
            "the paper's trend."
        )
    elif gaps[-1] > gaps[0]:
        trend = (
            f"MatMul-free loses ground to Transformer++ as the models grow ({gaps[0]:+.4f} -> {gaps[-1]:+.4f}, "
            f"{how}): against the paper's trend of a gap that narrows with size."
        )
    else:
        trend = f"The gap is the same at the smallest and the largest size ({gaps[0]:+.4f})."
    lines = [
        f"Validation-loss gap, MatMul-free minus Transformer++ (nats/token; positive = MatMul-free worse): {listing}.",
        trend,
    ]
    if all(g > 0 for g in gaps):
        lines.append(
            "MatMul-free has the higher (worse) validation loss at every size with both architectures."
        )
    elif all(g < 0 for g in gaps):
        lines.append(
            "MatMul-free has the lower (better) validation loss at every size with both architectures."
        )
    else:
        lines.append(
            "The sign of the gap changes between sizes: which architecture is ahead depends on size."
        )
    fm, ft = fits.get("mmfree"), fits.get("transformer")
    if fm is not None and ft is not None:
        cmin = min(p["flops"]["param_flops"] for pts in points.values() for p in pts)
        cross = crossings(fm, ft, cmin, CROSS_MAX)
        if cross:
            lines.append(
                "The two fitted curves cross at C = "
                + ", ".join(f"{c:.2e}" for c in cross)
                + " FLOPs (an extrapolation of 3-point fits: indicative only)."
            )
        else:
            lines.append(f"The two fitted curves do not cross between {cmin:.1e} and {CROSS_MAX:.0e} FLOPs.")
        lines.append(
            f"Fitted irreducible losses c: MatMul-free {fm.c:.3f}, Transformer++ {ft.c:.3f}; exponents b: "
            f"{fm.b:.3f} and {ft.b:.3f}."
        )
    return lines


def _data_key(res: dict[str, Any]) -> tuple[str, str]:
    data = res.get("data") or {}
    return (
        str((data.get("train") or {}).get("shards", "?")),
        str((data.get("val") or {}).get("shards", "?")),
    )


def run_table(results: list[dict[str, Any]], data_ids: dict[tuple[str, str], str]) -> list[str]:
    """Markdown table, one row per run (architecture named in each row)."""
    head = [
        "run", "architecture", "batch", "d", "L", "non-emb params", "peak LR", "tokens", "epochs",
        "C (param FLOPs)", "tokens/s", "train min", "val loss", "val bpb", "LAMBADA acc", "LAMBADA ppl",
        *[c for _, _, c in TASK_COLUMNS], "avg acc", "data", "status",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {"sweep": 0, "sizes": 1, "ablations": 2, "lrcheck": 3}
    for r in sorted(results, key=lambda r: (order.get(r.get("batch", ""), 3), r.get("arch", ""), r["name"])):
        train = r.get("train") or {}
        val = r.get("val") or {}
        params = r.get("params") or {}
        cells = [
            r["name"],
            ARCH_NAMES.get(r.get("arch", ""), r.get("arch", "?")),
            r.get("batch", "?"),
            str(r.get("hidden_size", "-")),
            str(r.get("num_layers", "-")),
            _count(params["non_embedding"]) if params else "-",
            f"{r['lr']:g}" if r.get("lr") else "-",
            _count(r["tokens"]) if r.get("tokens") else "-",
            f"{r['budget']['epochs']:.2f}" if r.get("budget") else "-",
            f"{r['flops']['param_flops']:.2e}" if r.get("flops") else "-",
            f"{train['tokens_per_s']:,.0f}" if train else "-",
            f"{train['seconds'] / 60:.1f}" if train else "-",
            _f(val.get("loss")),
            _f(val.get("bpb")),
            _f(task_value(r, "lambada", "acc"), 3),
            _f(task_value(r, "lambada", "perplexity"), 1),
            *[_f(task_value(r, t, m), 3) for t, m, _ in TASK_COLUMNS],
            _f(avg_zero_shot(r), 3),
            data_ids.get(_data_key(r), "?"),
            r.get("status", "?")
            + (f": {r['error'][:80]}" if r.get("status") != "ok" and r.get("error") else ""),
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return lines


def sweep_section(results: list[dict[str, Any]], study: dict[str, Any] | None) -> list[str]:
    """LR sweep: validation loss per LR and architecture, the chosen LR, and a grid-edge warning."""
    lines = ["## LR sweep", ""]
    best = best_sweep_lrs(results)
    for arch in ARCHS:
        runs = sorted(
            (r for r in results if r.get("batch") == "sweep" and r.get("arch") == arch), key=lambda r: r["lr"]
        )
        if not runs:
            lines.append(f"- {ARCH_NAMES[arch]}: no sweep run yet.")
            continue
        listing = ", ".join(
            f"{r['lr']:g}: {_f(val_loss(r)) if r.get('status') == 'ok' else r.get('status')}" for r in runs
        )
        lines.append(
            f"- {ARCH_NAMES[arch]} (size {runs[0].get('size', '?')}), val loss by peak LR: {listing}."
        )
        if arch in best:
            chosen = best[arch]["lr"]
            grid = sorted((study or {}).get("sweep", {}).get("lr", {}).get(arch, [r["lr"] for r in runs]))
            edge = chosen in (grid[0], grid[-1]) and len(grid) > 1
            lines.append(
                f"  Chosen: {chosen:g}"
                + (
                    " (at the edge of the grid: the optimum may lie beyond it; extend the sweep)."
                    if edge
                    else "."
                )
            )
    return [*lines, ""]


def scaling_section(
    points: dict[str, list[dict[str, Any]]], fits: dict[str, PowerLawFit | None]
) -> list[str]:
    """Scaling points per architecture, the fits, and the gap statement."""
    lines = ["## Scaling (validation loss against parameter FLOPs)", ""]
    sizes_done = {arch: len({p["size"] for p in pts}) for arch, pts in points.items()}
    if min(sizes_done.values(), default=0) < MIN_POINTS:
        lines.append(
            "Fewer than 3 sizes are done for "
            + ", ".join(f"{ARCH_NAMES[a]} ({n})" for a, n in sizes_done.items() if n < MIN_POINTS)
            + ": no fit for that architecture yet. What exists is shown below."
        )
        lines.append("")
    lines += [
        "| architecture | size | d | L | non-emb params | C (param FLOPs) | val loss | val bpb | run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, pts in points.items():
        for p in pts:
            lines.append(
                f"| {ARCH_NAMES[arch]} | {p['size']} | {p['hidden_size']} | {p['num_layers']} | "
                f"{_count(p['params']['non_embedding'])} | {p['flops']['param_flops']:.2e} | "
                f"{_f(val_loss(p))} | {_f(p['val']['bpb'])} | {p['name']} |"
            )
    lines.append("")
    for arch, fit in fits.items():
        if fit is not None:
            exact = (
                " (3 points, 3 parameters: the curve interpolates them; rmse 0 says nothing of its quality)"
                if fit.n == MIN_POINTS
                else ""
            )
            lines.append(
                f"- {ARCH_NAMES[arch]}: L(C) = {fit.a:.4g} * C^-{fit.b:.4f} + {fit.c:.4f}, rmse {fit.rmse:.2e} "
                f"over {fit.n} points{exact}."
            )
    lines += ["", *gap_statement(points, fits), ""]
    return lines


def _delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a - b:+.4f}"


def ablation_section(results: list[dict[str, Any]]) -> list[str]:
    """Each ablation against its reference run (differences in loss, bpb and average zero-shot accuracy)."""
    lines = ["## Ablations", ""]
    abl = [r for r in results if r.get("batch") == "ablations"]
    if not abl:
        return [*lines, "No ablation run yet.", ""]
    by_name = {r["name"]: r for r in results}
    lines += [
        "| run | architecture | change | val loss | vs reference | val bpb | vs reference | avg acc | vs reference | reference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(abl, key=lambda r: r["name"]):
        ref = by_name.get(r.get("reference") or "")
        change = ", ".join(f"{k}={v}" for k, v in (r.get("overrides") or {}).items()) or "-"

        rl, rb, ra = val_loss(r), (r.get("val") or {}).get("bpb"), avg_zero_shot(r)
        fl = val_loss(ref) if ref else None
        fb = (ref.get("val") or {}).get("bpb") if ref else None
        fa = avg_zero_shot(ref) if ref else None
        lines.append(
            f"| {r['name']} | {ARCH_NAMES.get(r.get('arch', ''), '?')} | {change} | {_f(rl)} | {_delta(rl, fl)} | "
            f"{_f(rb)} | {_delta(rb, fb)} | {_f(ra, 3)} | {_delta(ra, fa)} | "
            f"{r.get('reference') or '-'}{'' if ref else ' (not run yet)'} |"
        )
    return [*lines, ""]


def lr_check_section(results: list[dict[str, Any]]) -> list[str]:
    """The LR check at the largest size: each architecture at multiples of its sweep LR against its run there."""
    runs = [r for r in results if r.get("batch") == "lrcheck"]
    if not runs:
        return []
    by_name = {r["name"]: r for r in results}
    lines = [
        "## LR check at the largest size",
        "",
        "Each architecture trained again at the largest size with its peak LR scaled; a lower loss than the "
        "size run's means the sweep's LR (chosen at the smallest size) does not carry over to this size.",
        "",
        "| run | architecture | peak LR | val loss | vs size run | size run (its LR, val loss) |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r.get("arch", ""), r.get("lr") or 0.0)):
        ref = by_name.get(r.get("reference") or "")
        rl, fl = val_loss(r), val_loss(ref) if ref else None
        ref_text = (
            f"{ref['name']} ({ref.get('lr'):g}, {_f(fl)})" if ref else f"{r.get('reference')} (not run yet)"
        )
        lines.append(
            f"| {r['name']} | {ARCH_NAMES.get(r.get('arch', ''), '?')} | {r.get('lr') or 0:g} | {_f(rl)} | "
            f"{_delta(rl, fl)} | {ref_text} |"
        )
    for arch in sorted({r.get("arch", "") for r in runs}):
        group = [r for r in runs if r.get("arch") == arch and val_loss(r) is not None]
        ref = by_name.get(next((r.get("reference") for r in group), "") or "")
        if ref is not None and val_loss(ref) is not None:
            group.append(ref)
        if group:
            best = min(group, key=lambda r: val_loss(r))
            lines.append(
                f"- {ARCH_NAMES.get(arch, arch)}: best at the largest size is peak LR {best.get('lr'):g} "
                f"({best['name']}, val loss {_f(val_loss(best))})."
            )
    return [*lines, ""]


def data_section(results: list[dict[str, Any]], data_ids: dict[tuple[str, str], str]) -> list[str]:
    """Which corpus shards each run read (one line per distinct data set, naming its runs)."""
    lines = ["## Data used by each run", ""]
    for key, ident in data_ids.items():
        runs = [r["name"] for r in results if _data_key(r) == key]
        sample = next(r for r in results if _data_key(r) == key).get("data") or {}
        train, val = sample.get("train") or {}, sample.get("val") or {}
        gz = (train.get("gz_bytes") or 0) + (val.get("gz_bytes") or 0)
        lines.append(
            f"- **{ident}**: train shards `{key[0]}` ({train.get('tokens', 0):,} tokens"
            + (f", {train['raw_bytes'] / 1e6:.1f} MB raw" if train.get("raw_bytes") else "")
            + f"), validation shards `{key[1]}` ({val.get('tokens', 0):,} tokens), of "
            f"`{sample.get('corpus', '?')}`; {gz / 1e6:.1f} MB of gzip'd shards read. Runs: {', '.join(sorted(runs))}."
        )
    return [*lines, ""]


def plot(
    results: list[dict[str, Any]],
    points: dict[str, list[dict[str, Any]]],
    fits: dict[str, PowerLawFit | None],
    path: Path,
) -> bool:
    """Scaling points and fits, the LR sweep, and training curves into one PNG; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    colors = {"mmfree": "tab:red", "transformer": "tab:blue"}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    for arch, pts in points.items():
        if not pts:
            continue
        c = np.array([p["flops"]["param_flops"] for p in pts])  # [n]
        loss = np.array([val_loss(p) for p in pts])  # [n]
        ax.scatter(c, loss, color=colors[arch], label=ARCH_NAMES[arch], zorder=3)
        for p in pts:
            ax.annotate(
                p["size"],
                (p["flops"]["param_flops"], val_loss(p)),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
        fit = fits.get(arch)
        if fit is not None:
            grid = np.logspace(math.log10(c.min() / 2), math.log10(c.max() * 4), 200)  # [200]
            ax.plot(
                grid,
                fit(grid),
                color=colors[arch],
                ls="--",
                label=f"fit: {fit.a:.3g} C^-{fit.b:.3f} + {fit.c:.3f}",
            )
    ax.set(xscale="log", xlabel="C = parameter FLOPs", ylabel="validation loss (nats/token)", title="Scaling")
    ax.legend(fontsize=8)
    ax = axes[1]
    for arch in ARCHS:
        runs = sorted(
            (
                r
                for r in results
                if r.get("batch") == "sweep" and r.get("arch") == arch and val_loss(r) is not None
            ),
            key=lambda r: r["lr"],
        )
        if runs:
            ax.plot(
                [r["lr"] for r in runs],
                [val_loss(r) for r in runs],
                "o-",
                color=colors[arch],
                label=ARCH_NAMES[arch],
            )
    ax.set(xscale="log", xlabel="peak LR", ylabel="validation loss", title="LR sweep (smallest size)")
    ax.legend(fontsize=8)
    ax = axes[2]
    styles = (":", "--", "-", "-.")
    for arch, pts in points.items():
        for rank, p in enumerate(pts):
            curve = np.array(
                (p.get("train") or {}).get("curve") or [[0, 0, 0, 0]], dtype=np.float64
            )  # [k, 4]
            if curve.shape[0] > 1:
                ax.plot(
                    curve[:, 1],
                    curve[:, 2],
                    color=colors[arch],
                    ls=styles[rank % len(styles)],
                    lw=1,
                    label=f"{ARCH_NAMES[arch]} {p['size']}",
                )
    ax.set(xlabel="training tokens", ylabel="training loss", title="Training curves (scaling runs)")
    if ax.lines:
        ax.legend(fontsize=7)
        lows = [float(np.min(line.get_ydata())) for line in ax.lines]
        ax.set_ylim(min(lows) - 0.2, min(lows) + 4.0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def build_report(results_dir: Path, out: Path, png: Path, config: str | None = None) -> str:
    """Write the markdown report (and the plot next to it); return the markdown."""
    results = load_results(results_dir)
    study = None
    try:
        study = load_study(config)
    except (FileNotFoundError, ValueError):
        study = None
    points = scaling_points(results)
    fits = {arch: fit_arch(pts) for arch, pts in points.items()}
    data_ids = {
        key: f"D{i + 1}"
        for i, key in enumerate(dict.fromkeys(_data_key(r) for r in results if r.get("data")))
    }
    planned = {}
    if study is not None:
        from study.plan import plan_runs

        planned = {
            b: [s.name for s in plan_runs(study, b)] for b in ("sweep", "sizes", "ablations", "lrcheck")
        }
    names = {r["name"]: r.get("status") for r in results}
    lines = [
        "# Quality study: MatMul-free against Transformer++ at equal compute",
        "",
        f"Written by `python -m study.report` from {len(results)} result file(s) in `{results_dir}` on "
        f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; every number below is computed from them.",
        "",
        "## Status",
        "",
    ]
    for batch, runs in planned.items():
        if not runs:
            continue
        ok = sum(names.get(n) == "ok" for n in runs)
        other = [f"{n} ({names[n]})" for n in runs if n in names and names[n] != "ok"]
        lines.append(
            f"- {batch}: {ok} of {len(runs)} runs done"
            + (f"; not ok: {', '.join(other)}" if other else "")
            + "."
        )
    if not results:
        lines += ["", "No run has finished yet: nothing to report.", ""]
    lines += [""]
    if results:
        sample = next((r for r in results if r.get("budget")), None)
        if sample:
            rule = sample.get("token_rule") or {}
            lines += [
                "## Setup",
                "",
                f"- Batch {sample.get('batch_size')} x {sample.get('seq_len')} tokens per step; token budget "
                f"min({rule.get('per_param', '?')} x non-embedding params, {rule.get('max_epochs', '?')} epochs of "
                "the training shards), in whole steps; validation over the first `eval_tokens` of the held-out "
                "split in the trainer's windows (MatMul-free state reset at each EOS).",
                f"- FLOPs: {sample['flops']['convention']}.",
                f"- Zero-shot tasks: first {sample.get('eval_limit')} examples each; ARC-e, ARC-c, HellaSwag, OBQA "
                "acc_norm; PIQA, WinoGrande acc; LAMBADA (OpenAI) acc and perplexity; avg acc = mean of the six.",
                "",
            ]
        lines += ["## All runs", "", *run_table(results, data_ids), ""]
        lines += data_section(results, data_ids)
        lines += sweep_section(results, study)
        lines += scaling_section(points, fits)
        lines += ablation_section(results)
        lines += lr_check_section(results)
    drew = plot(results, points, fits, png) if results else False
    if drew:
        rel = png.relative_to(out.parent) if png.is_relative_to(out.parent) else png
        lines += [f"![scaling]({rel})", ""]
    elif results:
        lines += ["(No plot: matplotlib is not installed.)", ""]
    text = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    """Command line: write the report and plot."""
    p = argparse.ArgumentParser(prog="python -m study.report", description=__doc__.splitlines()[0])
    p.add_argument("--results", default="docs/results/study", help="folder of per-run result JSONs")
    p.add_argument("--out", default="docs/results/study.md", help="markdown report to write")
    p.add_argument("--plot", default="docs/results/study_scaling.png", help="PNG to write")
    p.add_argument("--config", default=None, help="study config (for the planned runs; default the study's)")
    args = p.parse_args(argv)
    results_dir = Path(args.results)
    if results_dir.exists() and not results_dir.is_dir():
        print(f"error: --results {results_dir} is a file; pass the folder of per-run JSONs", file=sys.stderr)
        return 2
    try:
        build_report(results_dir, Path(args.out), Path(args.plot), args.config)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    drew = Path(args.plot).is_file() and any(results_dir.glob("*.json"))
    print(f"wrote {args.out}" + (f" and {args.plot}" if drew else " (no plot: no results yet)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
