"""Run a study batch on several GPUs at once: one run per GPU, each in its own `python -m study.run` process.

    python -m study.run --batch all --gpus 0,1,2,3 --max-minutes 8.5

The scheduler keeps every listed GPU busy with the next run that is ready: a run that takes its
architecture's best sweep LR waits until no sweep run of that architecture is pending or running. Each run
is one child process (`--only NAME`, `CUDA_VISIBLE_DEVICES` set to its GPU) writing its result JSON as a
sequential call would, and its log to `RUNS/<name>.log`. With `--max-minutes`, a run is started only when
its estimated time still fits; a run left over is reported and taken by the next call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from study.plan import RunSpec, estimate_seconds, plan_runs, run_numbers
from study.results import best_sweep_lrs, load_results, write_summary

POLL_S = 2.0


@dataclass
class _Child:
    """One run in flight."""

    spec: RunSpec
    gpu: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float


def parse_gpus(text: str) -> list[str]:
    """`--gpus` as a list of device ids: "4" means 0..3, "0,2" means GPUs 0 and 2."""
    text = text.strip()
    if text.isdigit() and "," not in text:
        count = int(text)
        if count < 1:
            raise ValueError(f"--gpus {text}: give a GPU count of at least 1, or a list like 0,1")
        return [str(i) for i in range(count)]
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids or not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(
            f"--gpus {text!r}: give a count (4) or distinct device ids separated by commas (0,1)"
        )
    return ids


def _ready(
    spec: RunSpec, lr_overrides: dict[str, float], waiting: list[RunSpec], results: list[dict]
) -> bool:
    """True when the run's LR is known: its own, an override, or a finished sweep of its architecture."""
    if spec.lr is not None or spec.arch in lr_overrides:
        return True
    if any(s.batch == "sweep" and s.arch == spec.arch for s in waiting):
        return False
    return spec.arch in best_sweep_lrs(results)


def _estimate(spec: RunSpec, study: dict[str, Any], data: dict[str, Any], results: list[dict]) -> float:
    """Expected seconds of a run (training and evaluation), from the measured rates of finished runs."""
    _, _, fl = run_numbers(study, spec, int(data["vocab_size"]), int(data["train"]["tokens"]))
    train_s, eval_s = estimate_seconds(spec.arch, fl["param_flops"], results, study)
    return train_s + eval_s


def _summary(results_dir: Path, name: str) -> str:
    path = results_dir / f"{name}.json"
    if not path.is_file():
        return "no result written (see its log)"
    rec = json.loads(path.read_text(encoding="utf-8"))
    val = rec.get("val") or {}
    text = rec.get("status", "?")
    if val:
        text += f", val loss {val['loss']:.4f}, bpb {val['bpb']:.4f}"
    if "train" in rec:
        text += f", {rec['train']['tokens_per_s']:,.0f} tokens/s"
    if "error" in rec:
        text += f" ({rec['error']})"
    return text


def run_parallel(
    study: dict[str, Any],
    batch: str,
    gpus: list[str],
    child_args: list[str],
    results_dir: Path,
    runs_dir: Path,
    data: dict[str, Any],
    lr_overrides: dict[str, float],
    finished: Callable[[RunSpec, list[dict[str, Any]]], bool],
    only: list[str] | None = None,
    max_minutes: float | None = None,
) -> list[str]:
    """Run the batch's unfinished runs over `gpus`; return the names of the runs left for a later call.

    `child_args` are the `python -m study.run` options every child gets (paths, eval settings, --lr ...);
    the scheduler adds `--batch`, `--only` and the GPU. `finished(spec, results)` says whether a run's
    result exists at the LR it would run at (checked once the run is ready, i.e. its LR is known).
    """
    specs = plan_runs(study, batch)
    if only:
        specs = [s for s in specs if s.name in only]
    waiting = list(specs)
    runs_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    running: list[_Child] = []
    skipped: set[str] = set()
    while waiting or running:
        for child in list(running):
            if child.proc.poll() is None:
                continue
            child.log.close()
            running.remove(child)
            minutes = (time.perf_counter() - child.started) / 60
            print(
                f"[study] {child.spec.name} (GPU {child.gpu}, {minutes:.1f} min, exit {child.proc.returncode}): "
                f"{_summary(results_dir, child.spec.name)}",
                flush=True,
            )
        results = load_results(results_dir)
        free = [g for g in gpus if g not in {c.gpu for c in running}]
        left_s = None if max_minutes is None else max_minutes * 60 - (time.perf_counter() - start)
        for spec in list(waiting):
            if not free:
                break
            pending = waiting + [c.spec for c in running]
            if not _ready(spec, lr_overrides, [s for s in pending if s is not spec], results):
                continue
            if finished(spec, results):
                print(f"[study] {spec.name}: result exists, skipped", flush=True)
                waiting.remove(spec)
                continue
            need = _estimate(spec, study, data, results)
            if left_s is not None and need > left_s:
                if spec.name not in skipped:
                    print(
                        f"[study] {spec.name}: not started, needs about {need / 60:.1f} min and "
                        f"{max(left_s, 0) / 60:.1f} min are left of --max-minutes {max_minutes}",
                        flush=True,
                    )
                skipped.add(spec.name)
                waiting.remove(spec)
                continue
            gpu = free.pop(0)
            waiting.remove(spec)
            log_path = runs_dir / f"{spec.name}.log"
            cmd = [sys.executable, "-m", "study.run", "--batch", spec.batch, "--only", spec.name, *child_args]
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu, PYTHONUNBUFFERED="1")
            log = log_path.open("wb")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append(_Child(spec, gpu, proc, log, time.perf_counter()))
            print(
                f"[study] {spec.name}: started on GPU {gpu}, about {need / 60:.1f} min (log {log_path})",
                flush=True,
            )
        if not running and waiting:
            names = ", ".join(s.name for s in waiting)
            print(
                f"[study] cannot start {names}: their sweep LR is unknown (run --batch sweep first)",
                flush=True,
            )
            skipped.update(s.name for s in waiting)
            break
        if running:
            time.sleep(POLL_S)
    write_summary(results_dir)
    return sorted(skipped)
