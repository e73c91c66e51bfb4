"""Study results on disk: per-run JSON records, the summary, the best sweep LRs, and the bundle.

Each run writes `RESULTS/<name>.json`; `summary.json` beside them lists every run in one line. `bundle`
packs the folder into one .tgz so it can come back from the GPU machine as a single file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every per-run result JSON in `results_dir` (not the summary)."""
    if not results_dir.is_dir():
        return []
    out = []
    for path in sorted(results_dir.glob("*.json")):
        if path.name == SUMMARY:
            continue
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
            record = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(record, dict) and "name" in record:
                out.append(record)
    return out


def best_sweep_lrs(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per architecture: the finished sweep run with the lowest validation loss ({arch: result})."""
    best: dict[str, dict[str, Any]] = {}
    for res in results:
        if res.get("batch") != "sweep" or res.get("status") != "ok" or res.get("val") is None:
            continue
        arch = res["arch"]
        if arch not in best or res["val"]["loss"] < best[arch]["val"]["loss"]:
            best[arch] = res
    return best


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write a JSON file atomically (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_summary(results_dir: Path) -> dict[str, Any]:
    """summary.json: one line per run (status, val loss and bpb, tokens, FLOPs, minutes) and the best LRs."""
    results = load_results(results_dir)
    rows = []
    for r in sorted(results, key=lambda r: (r.get("batch", ""), r["name"])):
        rows.append(
            {
                "name": r["name"],
                "batch": r.get("batch"),
                "arch": r.get("arch"),
                "status": r.get("status"),
                "val_loss": (r.get("val") or {}).get("loss"),
                "val_bpb": (r.get("val") or {}).get("bpb"),
                "tokens": r.get("tokens"),
                "param_flops": r.get("flops", {}).get("param_flops"),
                "minutes": round((r.get("train", {}).get("seconds", 0) + r.get("eval_seconds", 0)) / 60, 2),
            }
        )
    best = {arch: {"run": r["name"], "lr": r["lr"]} for arch, r in best_sweep_lrs(results).items()}
    summary = {"runs": rows, "best_sweep_lr": best}
    write_json(results_dir / "summary.json", summary)
    return summary


def bundle(results_dir: Path, target: Path) -> Path:
    """Pack `results_dir` into one .tgz (paths relative to the repo root, so `tar xzf` in the repo restores it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    root = Path.cwd()
    arcname = (
        results_dir.resolve().relative_to(root)
        if results_dir.resolve().is_relative_to(root)
        else results_dir.name
    )
    with tarfile.open(target, "w:gz") as tar:
        tar.add(results_dir, arcname=str(arcname))
    return target
