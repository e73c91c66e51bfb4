"""Run a named batch of the study: train each run with the project's trainer, evaluate it, record JSON.

    python -m study.run --batch sweep|sizes|ablations|all [--only NAME ...] [--max-minutes 9]
    python -m study.run --batch all --plan          # print the runs, token budgets and time estimates
    python -m study.run --batch all --gpus 4        # one run per GPU at once (study.parallel)

Each run goes through `mmfree.train.run_training` in this process, then `mmfree.eval.evaluate` on its saved
final model (LAMBADA and the zero-shot tasks, `--limit` examples each), and is written to
`RESULTS/<name>.json` (validation loss and bits per byte from the trainer's validation over the held-out
shards, task metrics, tokens/s, FLOPs, parameter counts, the shards it read). Runs whose result exists
(status ok, or diverged) are skipped; an interrupted run resumes from its last checkpoint in `RUNS/<name>`.
With `--max-minutes`, a run is not started when its estimated time no longer fits, so one call of the
GPU machine (10 minutes at most) never stops mid-run. `--bundle FILE.tgz` packs the results folder into one
file for the trip back from the GPU machine.

Ablation settings (`gate_form`, `use_lower_bound`, `ternary_lm_head`, `lr_halving`) are TrainConfig fields.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import json
import math
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.plan import (
    ARCHS,
    RunSpec,
    describe_plan,
    estimate_seconds,
    format_plan,
    load_study,
    plan_runs,
    run_numbers,
)
from study.results import best_sweep_lrs, bundle, load_results, write_json, write_summary

CURVE_POINTS = 120
DONE = ("ok", "diverged")
CHECK_TOKENS = 262_144  # validation tokens the saved final model is scored on (the round-trip check)
CHECK_NATS = 0.25  # a saved model further than this from the trainer's validation loss fails the run


@dataclass
class Options:
    """Where things are and how to run (command-line settings, with the study config's defaults)."""

    data_dir: Path
    eval_dir: Path
    runs_dir: Path
    results_dir: Path
    tasks: list[str]
    eval_limit: int | None
    eval_batch_size: int
    eval_dtype: str
    device: str = "auto"
    compile: bool = False
    threads: int = 0
    max_minutes: float | None = None
    lr: dict[str, float] = dataclasses.field(default_factory=dict)
    force: bool = False
    progress: bool = False
    keep_checkpoints: bool = False


def resolve_lr(spec: RunSpec, opts: Options, results: list[dict[str, Any]]) -> RunSpec:
    """The run with its peak LR: its own, else --lr ARCH=VALUE, else its architecture's best sweep LR
    (times the run's lr_factor in both cases)."""
    if spec.lr is not None:
        return spec
    if spec.arch in opts.lr:
        return spec.with_lr(opts.lr[spec.arch] * spec.lr_factor)
    best = best_sweep_lrs(results).get(spec.arch)
    if best is None:
        raise ValueError(
            f"run {spec.name} takes the best sweep LR of {spec.arch}, but no finished sweep run of {spec.arch} "
            f"is in the results; run `--batch sweep` first, or pass --lr {spec.arch}=VALUE"
        )
    return spec.with_lr(float(best["lr"]) * spec.lr_factor)


def has_result(spec: RunSpec, opts: Options, results: list[dict[str, Any]]) -> bool:
    """True when the run has a finished result made at the LR it would run at now (a run that takes the
    best sweep LR is stale once an extended sweep picks another)."""
    existing = next((r for r in results if r["name"] == spec.name), None)
    if existing is None or existing.get("status") not in DONE or opts.force:
        return False
    try:
        lr = resolve_lr(spec, opts, results).lr
    except ValueError:
        return True
    return lr is None or math.isclose(float(existing.get("lr") or 0.0), lr, rel_tol=1e-9)


def train_config(spec: RunSpec, study: dict[str, Any], opts: Options, steps: int) -> Any:
    """The TrainConfig of a run, its ablation overrides included."""
    from mmfree.train.config import TrainConfig

    t = study["train"]
    checkpoints = int(t.get("checkpoints", 4))
    kwargs: dict[str, Any] = {
        "preset": "debug",
        "arch": spec.arch,
        "data": [str(opts.data_dir)],
        "out": str(opts.runs_dir / spec.name),
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "max_steps": steps,
        "batch_size": int(t["batch_size"]),
        "seq_len": int(t["seq_len"]),
        "grad_accum": int(t.get("grad_accum", 1)),
        "lr": float(spec.lr or 0.0),
        "warmup": min(steps, round(float(t.get("warmup_frac", 0.05)) * steps)),
        "weight_decay": float(t.get("weight_decay", 0.1)),
        "beta2": float(t.get("beta2", 0.95)),
        "clip": float(t.get("clip", 1.0)),
        "seed": int(t.get("seed", 0)),
        "eval_every": 0,
        "eval_tokens": int(t["eval_tokens"]),
        "log_every": max(1, min(int(t.get("log_every", 10)), steps)),
        "save_every": max(1, math.ceil(steps / max(1, checkpoints))),
        "keep": 1,
        "resume": True,
        "device": opts.device,
        "compile": opts.compile,
        "threads": opts.threads,
        "sample_prompt": "",
        "sample_tokens": 0,
        "progress": opts.progress,
        "tensorboard": False,
    }
    unknown = set(spec.overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"run {spec.name}: overrides {sorted(unknown)} are not TrainConfig fields")
    kwargs.update(spec.overrides)
    return TrainConfig(**kwargs)


def _curve(log_path: Path) -> list[list[float]]:
    """Up to CURVE_POINTS [step, tokens, train loss, lr] rows of a run's log.jsonl (evenly thinned)."""
    from mmfree.train.metrics import read_log

    if not log_path.is_file():
        return []
    rows = [[r["step"], r["tokens"], round(r["loss"], 5), r["lr"]] for r in read_log(log_path) if "loss" in r]
    if len(rows) > CURVE_POINTS:
        keep = {round(i * (len(rows) - 1) / (CURVE_POINTS - 1)) for i in range(CURVE_POINTS)}
        rows = [row for i, row in enumerate(rows) if i in keep]
    return rows


def _environment(device: str) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {"torch": torch.__version__, "python": sys.version.split()[0]}
    if torch.cuda.is_available() and device != "cpu":
        env["device"] = torch.cuda.get_device_name(0)
    else:
        env["device"] = "cpu"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if out.returncode == 0:
            env["git"] = out.stdout.strip()
    return env


def _data_info(data_dir: Path) -> dict[str, Any]:
    """Which shards the prepared directory holds (study_data.json), with the token counts of meta.json."""
    from mmfree.data.shards import load_meta

    meta = load_meta(data_dir)
    info: dict[str, Any] = {"dir": str(data_dir), "vocab_size": meta["vocab_size"]}
    study_file = data_dir / "study_data.json"
    study = json.loads(study_file.read_text(encoding="utf-8")) if study_file.is_file() else None
    for split in ("train", "val"):
        entry = {"tokens": meta["splits"][split]["tokens"], "text_bytes": meta["splits"][split]["bytes"]}
        if study is not None:
            s = study["splits"][split]
            entry.update(shards=s["shards"], num_shards=s["num_shards"], gz_bytes=s["gz_bytes"])
            entry["raw_bytes"] = s["raw_bytes"]
        else:
            entry["shards"] = "unknown (no study_data.json in the data directory)"
        info[split] = entry
    if study is not None:
        info["corpus"] = study.get("corpus")
    return info


def _stale(run_dir: Path, cfg: Any) -> bool:
    """True when `run_dir` holds a run made with other settings than `cfg` (it cannot be resumed)."""
    saved = run_dir / "config.json"
    if not saved.is_file():
        return False
    try:
        identity = json.loads(saved.read_text(encoding="utf-8"))["identity"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return True
    return identity != json.loads(json.dumps(cfg.identity()))


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def evaluate_run(final_dir: Path, opts: Options) -> tuple[dict[str, Any], float, float]:
    """Task metrics of a saved model ({task: {metrics, stderr, num_examples}}), the seconds they took, and the
    saved model's loss on the first CHECK_TOKENS validation tokens (it must agree with the trainer's)."""
    import torch

    from mmfree.eval import evaluate, load_model

    start = time.perf_counter()
    device = "cuda" if opts.device != "cpu" and torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model(str(final_dir), device=device, dtype=opts.eval_dtype)
    res = evaluate(
        model,
        tokenizer,
        opts.tasks,
        limit=opts.eval_limit,
        data_dir=str(opts.eval_dir),
        batch_size=opts.eval_batch_size,
        progress=opts.progress,
    )
    check = evaluate(model, tokenizer, [f"lm:{opts.data_dir}"], limit=CHECK_TOKENS, progress=False)
    check_loss = float(next(iter(check["results"].values()))["metrics"]["loss"])
    del model
    _free_memory()
    tasks = {
        label: {k: r[k] for k in ("metrics", "stderr", "num_examples") if k in r}
        for label, r in res["results"].items()
    }
    return tasks, time.perf_counter() - start, check_loss


def run_one(spec: RunSpec, study: dict[str, Any], opts: Options, data: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one run; the result record (status ok, diverged or failed)."""
    from mmfree.train import TrainingError, run_training

    params, budget, fl = run_numbers(study, spec, int(data["vocab_size"]), int(data["train"]["tokens"]))
    seq_len = int(study["train"]["seq_len"])
    halving = spec.arch == "mmfree" and spec.overrides.get("lr_halving", True)
    record: dict[str, Any] = {
        "name": spec.name,
        "batch": spec.batch,
        "arch": spec.arch,
        "size": spec.size,
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "params": params,
        "lr": spec.lr,
        "overrides": spec.overrides,
        "reference": spec.reference,
        "schedule": {
            "warmup_frac": study["train"].get("warmup_frac", 0.05),
            "lr_halving": bool(halving),
            "floor": 0.0 if spec.arch == "mmfree" else 0.1,
        },
        "budget": budget,
        "token_rule": dict(study["tokens"]),
        "eval_tokens": int(study["train"]["eval_tokens"]),
        "tokens": budget["tokens"],
        "batch_size": study["train"]["batch_size"],
        "seq_len": seq_len,
        "flops": fl,
        "data": data,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": _environment(opts.device),
    }
    cfg = train_config(spec, study, opts, budget["steps"])
    run_dir = Path(cfg.out)
    if run_dir.is_dir() and (opts.force or _stale(run_dir, cfg)):
        print(f"[study] {spec.name}: removing {run_dir} (--force, or made with other settings)", flush=True)
        shutil.rmtree(run_dir)
    try:
        result = run_training(cfg)
    except TrainingError as err:
        record.update(status="diverged" if "diverged" in str(err) else "failed", error=str(err), val=None)
        return record
    _free_memory()
    full_s = budget["tokens"] / max(result.tokens_per_s, 1e-9)  # the whole run's time, also when resumed
    record["train"] = {
        "seconds": full_s,
        "seconds_this_call": result.elapsed_s,
        "tokens_per_s": result.tokens_per_s,
        "param_flops_per_s": fl["param_flops"] / full_s,
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "final_train_loss": result.final_loss,
        "unigram_loss": result.unigram_loss,
        "curve": _curve(run_dir / "log.jsonl"),
    }
    record["val"] = (
        None
        if result.val is None
        else {
            "loss": result.val.loss,
            "bpb": result.val.bpb,
            "ppl": result.val.ppl,
            "tokens": result.val.tokens,
        }
    )
    record["eval"], record["eval_seconds"], check_loss = evaluate_run(result.final_dir, opts)
    record["eval_limit"] = opts.eval_limit
    record["saved_model_check"] = {"val_loss": check_loss, "tokens": CHECK_TOKENS}
    ok = record["val"] is not None and math.isfinite(record["val"]["loss"])
    record["status"] = "ok" if ok else "diverged"
    if ok and not abs(check_loss - record["val"]["loss"]) <= CHECK_NATS:
        record["status"] = "failed"
        record["error"] = (
            f"the saved model scores validation loss {check_loss:.4f} on the first {CHECK_TOKENS:,} tokens, "
            f"the trainer measured {record['val']['loss']:.4f}: the saved model is not the trained one"
        )
    if not opts.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return record


def run_batch(
    study: dict[str, Any], batch: str, opts: Options, only: list[str] | None = None
) -> list[dict[str, Any]]:
    """Run the runs of `batch` (or just `only`) that have no result yet; return the new records."""
    from mmfree.eval.runner import resolve_tasks

    specs = plan_runs(study, batch)
    if only:
        unknown = sorted(set(only) - {s.name for s in specs})
        if unknown:
            raise ValueError(
                f"--only {', '.join(unknown)}: not in batch {batch!r}; its runs are {', '.join(s.name for s in specs)}"
            )
        specs = [s for s in specs if s.name in only]
    resolve_tasks(opts.tasks, opts.eval_dir)
    data = _data_info(opts.data_dir)
    started = time.perf_counter()
    done: list[dict[str, Any]] = []
    for spec in specs:
        results = load_results(opts.results_dir)
        if has_result(spec, opts, results):
            print(f"[study] {spec.name}: result exists, skipped", flush=True)
            continue
        spec = resolve_lr(spec, opts, results)
        _, budget, fl = run_numbers(study, spec, int(data["vocab_size"]), int(data["train"]["tokens"]))
        train_s, eval_s = estimate_seconds(spec.arch, fl["param_flops"], results, study)
        if opts.max_minutes is not None:
            left = opts.max_minutes * 60 - (time.perf_counter() - started)
            if train_s + eval_s > left:
                print(
                    f"[study] {spec.name}: not started, needs about {(train_s + eval_s) / 60:.1f} min and "
                    f"{max(left, 0) / 60:.1f} min are left of --max-minutes {opts.max_minutes}",
                    flush=True,
                )
                continue
        print(
            f"[study] {spec.name}: {spec.arch} d={spec.hidden_size} L={spec.num_layers} lr={spec.lr:g} "
            f"{budget['steps']} steps, {budget['tokens']:,} tokens, about {(train_s + eval_s) / 60:.1f} min",
            flush=True,
        )
        try:
            record = run_one(spec, study, opts, data)
        except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
            traceback.print_exc()
            record = {
                "name": spec.name,
                "batch": spec.batch,
                "arch": spec.arch,
                "size": spec.size,
                "lr": spec.lr,
                "status": "failed",
                "error": f"{type(err).__name__}: {err}",
            }
        write_json(opts.results_dir / f"{spec.name}.json", record)
        done.append(record)
        val = record.get("val") or {}
        print(
            f"[study] {spec.name}: {record['status']}"
            + (
                f", val loss {val['loss']:.4f}, bpb {val['bpb']:.4f}"
                if val
                else f" ({record.get('error', '')})"
            )
            + (f", {record['train']['tokens_per_s']:,.0f} tokens/s" if "train" in record else ""),
            flush=True,
        )
    write_summary(opts.results_dir)
    return done


def _parse_lr(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        arch, sep, value = item.partition("=")
        if not sep or arch not in ARCHS:
            raise ValueError(f"--lr {item!r}: write ARCH=VALUE with ARCH one of {ARCHS}, e.g. mmfree=3e-3")
        try:
            out[arch] = float(value)
        except ValueError:
            raise ValueError(f"--lr {item!r}: {value!r} is not a number") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (defaults for paths and eval come from the study config)."""
    p = argparse.ArgumentParser(prog="python -m study.run", description=__doc__.splitlines()[0])
    p.add_argument("--batch", required=True, choices=["sweep", "sizes", "ablations", "lrcheck", "all"])
    p.add_argument("--only", action="append", default=[], help="run only this run of the batch (repeatable)")
    p.add_argument("--config", default=None, help="study config (default study/configs/study.json)")
    p.add_argument("--data-dir", default=None, help="prepared study data (from python -m study.prepare)")
    p.add_argument("--eval-dir", default=None, help="zero-shot eval data (a copy of shared/data/eval)")
    p.add_argument("--runs-dir", default=None, help="where run directories (checkpoints, final models) go")
    p.add_argument("--results-dir", default=None, help="where per-run result JSONs go")
    p.add_argument("--tasks", default=None, help="comma-separated eval tasks (default: the config's)")
    p.add_argument("--limit", type=int, default=None, help="examples per eval task (default: the config's)")
    p.add_argument("--eval-batch-size", type=int, default=None, help="requests per eval forward pass")
    p.add_argument("--eval-dtype", default=None, help="dtype of the evaluated model (default: the config's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--max-minutes", type=float, default=None, help="start no run that would end after this")
    p.add_argument("--lr", action="append", default=[], help="ARCH=LR instead of the best sweep LR")
    p.add_argument("--force", action="store_true", help="rerun runs whose results exist")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the checkpoints of finished runs")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument(
        "--gpus", default=None, help="run the batch on these GPUs at once: a count (4) or ids (0,1)"
    )
    p.add_argument("--bundle", default=None, help="also pack the results folder into this .tgz")
    p.add_argument("--plan", action="store_true", help="print the planned runs and estimates; train nothing")
    p.add_argument("--train-tokens", type=int, default=None, help="with --plan and no data: training tokens")
    p.add_argument("--vocab-size", type=int, default=16384, help="with --plan and no data: vocabulary")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    args = build_parser().parse_args(argv)
    results_dir: Path | None = None
    code = 0
    try:
        study = load_study(args.config)
        ev = study["eval"]
        results_dir = Path(args.results_dir or study.get("results_dir", "docs/results/study"))
        opts = Options(
            data_dir=Path(args.data_dir or study.get("data_dir", ".carry/study-data")),
            eval_dir=Path(args.eval_dir or study.get("eval_dir", ".carry/eval")),
            runs_dir=Path(args.runs_dir or study.get("runs_dir", "runs/study")),
            results_dir=results_dir,
            tasks=[t for t in (args.tasks.split(",") if args.tasks else ev["tasks"]) if t.strip()],
            eval_limit=args.limit if args.limit is not None else ev.get("limit"),
            eval_batch_size=args.eval_batch_size or int(ev.get("batch_size", 32)),
            eval_dtype=args.eval_dtype or str(ev.get("dtype", "float32")),
            device=args.device,
            compile=args.compile,
            threads=args.threads,
            max_minutes=args.max_minutes,
            lr=_parse_lr(args.lr),
            force=args.force,
            progress=args.progress,
            keep_checkpoints=args.keep_checkpoints,
        )
        if args.plan:
            print(format_plan(_plan_rows(study, args, opts)))
            return 0
        if args.gpus:
            _run_on_gpus(study, args, opts)
        else:
            run_batch(study, args.batch, opts, args.only or None)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = 2
    if args.bundle and results_dir is not None and results_dir.is_dir():
        print(f"[study] results packed into {bundle(results_dir, Path(args.bundle))}", flush=True)
    return code


def _child_args(args: argparse.Namespace, opts: Options) -> list[str]:
    """The options each child process of `--gpus` gets: this call's settings, resolved."""
    out = [
        "--data-dir", str(opts.data_dir), "--eval-dir", str(opts.eval_dir), "--runs-dir", str(opts.runs_dir),
        "--results-dir", str(opts.results_dir), "--tasks", ",".join(opts.tasks),
        "--eval-batch-size", str(opts.eval_batch_size), "--eval-dtype", opts.eval_dtype,
        "--device", opts.device, "--threads", str(opts.threads),
    ]  # fmt: skip
    if args.config:
        out += ["--config", args.config]
    if opts.eval_limit is not None:
        out += ["--limit", str(opts.eval_limit)]
    for arch, lr in opts.lr.items():
        out += ["--lr", f"{arch}={lr}"]
    for flag, on in (
        ("--compile", opts.compile),
        ("--force", opts.force),
        ("--keep-checkpoints", opts.keep_checkpoints),
    ):
        if on:
            out.append(flag)
    return out


def _run_on_gpus(study: dict[str, Any], args: argparse.Namespace, opts: Options) -> None:
    """`--gpus`: the batch's runs spread over several GPUs, one child process per run (study.parallel)."""
    from mmfree.eval.runner import resolve_tasks
    from study.parallel import parse_gpus, run_parallel

    gpus = parse_gpus(args.gpus)
    specs = plan_runs(study, args.batch)
    unknown = sorted(set(args.only) - {s.name for s in specs})
    if unknown:
        raise ValueError(f"--only {', '.join(unknown)}: not in batch {args.batch!r}")
    resolve_tasks(opts.tasks, opts.eval_dir)
    left = run_parallel(
        study,
        args.batch,
        gpus,
        _child_args(args, opts),
        opts.results_dir,
        opts.runs_dir,
        _data_info(opts.data_dir),
        opts.lr,
        lambda spec, results: has_result(spec, opts, results),
        only=args.only or None,
        max_minutes=opts.max_minutes,
    )
    if left:
        print(f"[study] left for the next call: {', '.join(left)}", flush=True)


def _plan_rows(study: dict[str, Any], args: argparse.Namespace, opts: Options) -> list[dict[str, Any]]:
    """The --plan table's rows, from the prepared data's counts or from --train-tokens/--vocab-size."""
    if (opts.data_dir / "meta.json").is_file():
        data = _data_info(opts.data_dir)
        vocab, train_tokens = int(data["vocab_size"]), int(data["train"]["tokens"])
    elif args.train_tokens:
        vocab, train_tokens = args.vocab_size, args.train_tokens
    else:
        raise FileNotFoundError(
            f"no prepared data in {opts.data_dir}: run `python -m study.prepare` or pass --train-tokens N"
        )
    return describe_plan(study, args.batch, vocab, train_tokens, load_results(opts.results_dir))


if __name__ == "__main__":
    sys.exit(main())
