"""The study's plan: its JSON config, the runs of each batch, parameter and FLOP counts, time estimates.

Batches (run in this order; each later one reads the results of the earlier ones):
* `sweep`: every architecture at the sweep size (the smallest) at each of its peak LRs;
* `sizes`: every architecture at the other sizes, each at its best sweep LR (the sweep size's point of the
  scaling law is the best sweep run itself, so it is not trained twice);
* `ablations`: MatMul-free variants at the ablation size (the middle one), each against `mmfree-<size>`;
* `lrcheck` (optional config section `lr_check`): every architecture at one size (the largest) at multiples
  of its best sweep LR, to show whether the sweep's choice still holds at that size.

Token budget of a run: `min(per_param * non-embedding params, max_epochs * training tokens)`, rounded down to
whole optimizer steps, so no run sees its data more than `max_epochs` times. The parameter count is the
MatMul-free model's of that size for every run of the size, so both architectures (and every ablation) at
one size train on the same tokens.

FLOPs (what is counted): `param_flops = 6 * (N_nonemb + d * V) * D`, i.e. the forward and backward matrix
products of every non-embedding weight plus the LM head's d x V product, per trained token D (label tokens
= steps * batch * seq_len). The embedding lookup is free. `attention_flops = 6 * L * T * d * D` is the
Transformer++ attention (QK^T and AV, causal average) and is recorded apart; the MLGRU recurrence is O(d) per
token and not counted. The scaling law uses `param_flops`, which is the same for both architectures at a
given size, so "equal compute" means equal parameter FLOPs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARCHS = ("mmfree", "transformer")
ARCH_NAMES = {"mmfree": "MatMul-free", "transformer": "Transformer++"}
BATCHES = ("sweep", "sizes", "ablations", "lrcheck")
# Throughputs assumed before anything was measured (parameter FLOP/s on one H200, deliberately low).
DEFAULT_RATES = {"mmfree": 40e12, "transformer": 80e12}
DEFAULT_EVAL_S = 90.0
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "study.json"
MODEL_OVERRIDES = ("gate_form", "use_lower_bound", "ternary_lm_head")
SCHEDULE_OVERRIDES = ("lr_halving",)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the study (lr None: the architecture's best sweep LR times lr_factor, resolved later)."""

    name: str
    batch: str
    arch: str
    size: str
    hidden_size: int
    num_layers: int
    lr: float | None
    overrides: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    lr_factor: float = 1.0

    def with_lr(self, lr: float) -> RunSpec:
        """This run at peak LR `lr` (already multiplied by lr_factor)."""
        return dataclasses.replace(self, lr=lr)


def load_study(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read and check a study config (default study/configs/study.json)."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    if not file.is_file():
        raise FileNotFoundError(f"study config {file} not found; pass --config PATH")
    try:
        study = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: invalid JSON ({err})") from None
    check_study(study, str(file))
    return study


def check_study(study: dict[str, Any], where: str = "study config") -> None:
    """Raise ValueError naming the first missing or inconsistent entry of a study config."""
    for key in ("train", "tokens", "sizes", "sweep", "scaling", "ablations", "eval"):
        if key not in study:
            raise ValueError(f"{where}: missing section {key!r}")
    sizes = study["sizes"]
    for name, size in sizes.items():
        if not isinstance(size, dict) or {"hidden_size", "num_layers"} - set(size):
            raise ValueError(f"{where}: size {name!r} needs hidden_size and num_layers")
    sweep = study["sweep"]
    if sweep.get("size") not in sizes:
        raise ValueError(f"{where}: sweep.size {sweep.get('size')!r} is not one of the sizes {list(sizes)}")
    for arch in study["scaling"].get("archs", []):
        if arch not in ARCHS:
            raise ValueError(f"{where}: unknown architecture {arch!r}; use {ARCHS}")
        if not sweep.get("lr", {}).get(arch):
            raise ValueError(f"{where}: sweep.lr has no learning rates for {arch!r}")
    for name in study["scaling"].get("sizes", []):
        if name not in sizes:
            raise ValueError(f"{where}: scaling size {name!r} is not one of the sizes {list(sizes)}")
    abl = study["ablations"]
    if abl.get("size") not in sizes or abl.get("arch") not in ARCHS:
        raise ValueError(f"{where}: ablations need a size from {list(sizes)} and an arch from {ARCHS}")
    allowed = set(MODEL_OVERRIDES) | set(SCHEDULE_OVERRIDES)
    for variant, changes in abl.get("variants", {}).items():
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(
                f"{where}: ablation {variant!r} changes {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
    check = study.get("lr_check")
    if check is not None:
        if check.get("size") not in sizes or not check.get("factors"):
            raise ValueError(f"{where}: lr_check needs a size from {list(sizes)} and a list of factors")
        if any(not isinstance(f, (int, float)) or f <= 0 for f in check["factors"]):
            raise ValueError(f"{where}: lr_check.factors must be positive numbers, got {check['factors']}")
    tokens = study["tokens"]
    if tokens.get("per_param", 0) <= 0 or tokens.get("max_epochs", 0) <= 0:
        raise ValueError(f"{where}: tokens.per_param and tokens.max_epochs must be > 0")


def lr_tag(lr: float) -> str:
    """A short, file-name-safe LR label: 0.0015 -> '1.5e-3'."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def plan_runs(study: dict[str, Any], batch: str) -> list[RunSpec]:
    """The runs of `batch` (sweep, sizes, ablations or all), in the order they should run."""
    if batch == "all":
        return [run for b in BATCHES for run in plan_runs(study, b)]
    if batch not in BATCHES:
        raise ValueError(f"unknown batch {batch!r}; use one of {', '.join((*BATCHES, 'all'))}")
    sizes = study["sizes"]
    archs = study["scaling"]["archs"]
    runs: list[RunSpec] = []
    if batch == "sweep":
        size = study["sweep"]["size"]
        shape = sizes[size]
        for arch in archs:
            for lr in study["sweep"]["lr"][arch]:
                name = f"sweep-{arch}-{size}-lr{lr_tag(lr)}"
                runs.append(RunSpec(name, batch, arch, size, shape["hidden_size"], shape["num_layers"], lr))
    elif batch == "sizes":
        for size in study["scaling"]["sizes"]:
            if size == study["sweep"]["size"]:
                continue
            shape = sizes[size]
            for arch in archs:
                runs.append(
                    RunSpec(
                        f"{arch}-{size}", batch, arch, size, shape["hidden_size"], shape["num_layers"], None
                    )
                )
    elif batch == "lrcheck":
        check = study.get("lr_check")
        if check is None:
            return runs
        shape = sizes[check["size"]]
        for arch in archs:
            for factor in check["factors"]:
                runs.append(
                    RunSpec(
                        f"lrcheck-{arch}-{check['size']}-x{float(factor):g}",
                        batch,
                        arch,
                        check["size"],
                        shape["hidden_size"],
                        shape["num_layers"],
                        None,
                        reference=f"{arch}-{check['size']}",
                        lr_factor=float(factor),
                    )
                )
    else:
        abl = study["ablations"]
        size, arch = abl["size"], abl["arch"]
        shape = sizes[size]
        for variant, changes in abl["variants"].items():
            runs.append(
                RunSpec(
                    f"abl-{variant}",
                    batch,
                    arch,
                    size,
                    shape["hidden_size"],
                    shape["num_layers"],
                    None,
                    dict(changes),
                    reference=f"{arch}-{size}" if size != study["sweep"]["size"] else None,
                )
            )
    return runs


def count_params(
    arch: str, hidden_size: int, num_layers: int, vocab_size: int, overrides: dict[str, Any] | None = None
) -> dict[str, int]:
    """Exact parameter counts (built on the meta device): total, embedding, lm_head, non_embedding."""
    import torch
    from transformers import LlamaForCausalLM

    from mmfree.models import MMFreeConfig, MMFreeForCausalLM, baseline_config

    model_overrides = {k: v for k, v in (overrides or {}).items() if k in MODEL_OVERRIDES}
    cfg = MMFreeConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, vocab_size=vocab_size, **model_overrides
    )
    with torch.device("meta"):
        model = MMFreeForCausalLM(cfg) if arch == "mmfree" else LlamaForCausalLM(baseline_config(cfg))
    counts = {"total": 0, "embedding": 0, "lm_head": 0}
    for name, param in model.named_parameters():
        counts["total"] += param.numel()
        if name.startswith("lm_head"):
            counts["lm_head"] += param.numel()
        elif "embed" in name:
            counts["embedding"] += param.numel()
    counts["non_embedding"] = counts["total"] - counts["embedding"] - counts["lm_head"]
    return counts


def token_budget(study: dict[str, Any], non_embedding: int, train_tokens: int) -> dict[str, Any]:
    """Trained tokens of a run: steps, tokens, epochs, and whether the data cap bound it."""
    train = study["train"]
    per_step = int(train["batch_size"]) * int(train.get("grad_accum", 1)) * int(train["seq_len"])
    wanted = study["tokens"]["per_param"] * non_embedding
    cap = study["tokens"]["max_epochs"] * train_tokens
    steps = int(min(wanted, cap) // per_step)
    if steps < 1:
        raise ValueError(
            f"the token budget ({min(wanted, cap):,.0f}) is less than one step of {per_step} tokens; "
            "use more data or a smaller batch"
        )
    tokens = steps * per_step
    return {
        "steps": steps,
        "tokens": tokens,
        "tokens_per_step": per_step,
        "epochs": tokens / max(train_tokens, 1),
        "data_capped": cap < wanted,
        "tokens_per_param": tokens / max(non_embedding, 1),
    }


def run_budget(study: dict[str, Any], spec: RunSpec, vocab_size: int, train_tokens: int) -> dict[str, Any]:
    """The token budget of a run, sized by the MatMul-free model of its size (no ablation changes), so both
    architectures and every ablation at one size train on exactly the same tokens."""
    reference = count_params("mmfree", spec.hidden_size, spec.num_layers, vocab_size)
    return token_budget(study, reference["non_embedding"], train_tokens)


def flops(
    arch: str,
    params: dict[str, int],
    hidden_size: int,
    num_layers: int,
    vocab: int,
    seq_len: int,
    tokens: int,
) -> dict[str, Any]:
    """Training FLOPs of a run (see the module docstring for what is counted)."""
    param_flops = 6.0 * (params["non_embedding"] + hidden_size * vocab) * tokens
    attention = 6.0 * num_layers * seq_len * hidden_size * tokens if arch == "transformer" else 0.0
    return {
        "param_flops": param_flops,
        "attention_flops": attention,
        "total_flops": param_flops + attention,
        "convention": "param_flops = 6 * (N_nonemb + d * V) * D; attention_flops = 6 * L * T * d * D "
        "(Transformer++ only); the scaling law uses param_flops",
    }


def estimate_seconds(
    arch: str,
    param_flops: float,
    known: list[dict[str, Any]] | None = None,
    study: dict[str, Any] | None = None,
) -> tuple[float, float]:
    """(training seconds, eval seconds) expected for a run of `arch` with `param_flops`.

    Uses the measured parameter-FLOP rate of the largest finished run of the same architecture that is not
    larger than this one (small models run at lower utilization, so this errs long), else DEFAULT_RATES.
    """
    rate, best = DEFAULT_RATES[arch], -1.0
    evals = []
    for res in known or []:
        if res.get("arch") != arch or res.get("status") != "ok":
            continue
        f, seconds = res["flops"]["param_flops"], res["train"]["seconds"]
        if seconds > 0 and best < f <= param_flops * 1.01:
            best, rate = f, f / seconds
        evals.append(float(res.get("eval_seconds", 0.0)))
    floor = float(((study or {}).get("assumed_rates") or {}).get(arch, 0.0))
    rate = max(rate, floor)  # the config's measured large-run rate: small runs' rates would overestimate
    return param_flops / rate, max(evals) if evals else DEFAULT_EVAL_S


def run_numbers(
    study: dict[str, Any], spec: RunSpec, vocab_size: int, train_tokens: int
) -> tuple[dict[str, int], dict[str, Any], dict[str, float]]:
    """(parameter counts, token budget, FLOPs) of one run of the study."""
    params = count_params(spec.arch, spec.hidden_size, spec.num_layers, vocab_size, spec.overrides)
    budget = run_budget(study, spec, vocab_size, train_tokens)
    seq_len = int(study["train"]["seq_len"])
    fl = flops(spec.arch, params, spec.hidden_size, spec.num_layers, vocab_size, seq_len, budget["tokens"])
    return params, budget, fl


def describe_plan(
    study: dict[str, Any],
    batch: str,
    vocab_size: int,
    train_tokens: int,
    known: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per planned run: shape, parameters, tokens, FLOPs and estimated minutes (for --plan)."""
    rows = []
    for spec in plan_runs(study, batch):
        params, budget, fl = run_numbers(study, spec, vocab_size, train_tokens)
        train_s, eval_s = estimate_seconds(spec.arch, fl["param_flops"], known, study)
        rows.append(
            {
                "name": spec.name,
                "batch": spec.batch,
                "arch": spec.arch,
                "d": spec.hidden_size,
                "L": spec.num_layers,
                "non_embedding": params["non_embedding"],
                "steps": budget["steps"],
                "tokens": budget["tokens"],
                "epochs": budget["epochs"],
                "param_flops": fl["param_flops"],
                "est_minutes": (train_s + eval_s) / 60.0,
            }
        )
    return rows


def format_plan(rows: list[dict[str, Any]]) -> str:
    """The plan as a plain-text table with the total estimated minutes."""
    head = f"{'run':<28} {'arch':<12} {'d':>4} {'L':>3} {'N_nonemb':>10} {'steps':>6} {'tokens':>11} {'ep':>5} {'C':>9} {'min':>5}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['name']:<28} {r['arch']:<12} {r['d']:>4} {r['L']:>3} {r['non_embedding'] / 1e6:>9.2f}M "
            f"{r['steps']:>6} {r['tokens']:>11,} {r['epochs']:>5.2f} {r['param_flops']:>9.2e} {r['est_minutes']:>5.1f}"
        )
    total = sum(r["est_minutes"] for r in rows)
    lines.append(
        f"{len(rows)} runs, about {total:.0f} GPU minutes (estimate; {math.ceil(total / 9)} calls of <= 9 min)"
    )
    return "\n".join(lines)
