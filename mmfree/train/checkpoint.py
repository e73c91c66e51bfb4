"""Run directories and checkpoints: atomic writes, keep-last-k, resume, and the guards that protect saved work.

Layout of a run directory `OUT`:

    OUT/config.json                    the run's settings (TrainConfig as JSON; `identity` holds the defining ones)
    OUT/checkpoints/step-00000100/     one checkpoint: state.pt (torch.save of a plain dict, loadable with
                                       weights_only=True) holding model, optimizer, scheduler, RNG states, data
                                       positions, step and the run's identity
    OUT/log.jsonl, OUT/loss.png, OUT/tb/, OUT/data/ (raw inputs prepared here), OUT/final/ (Hugging Face dir)

A checkpoint is written into `checkpoints/.tmp-*`, fsync'd, then renamed into place; an interrupted write
leaves only a temp directory, which is ignored and cleaned up later. Older checkpoints are deleted only
after a newer one is complete.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

CONFIG_FILE = "config.json"
CKPT_DIR = "checkpoints"
STATE_FILE = "state.pt"
_PREFIX = "step-"


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp file in the same directory, fsync'd, then os.replace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the complete directory `tmp` to `target`, replacing an existing `target` only after the move."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = out / CKPT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX) :]))


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = checkpoints(out)
    return found[-1] if found else None


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(now))
    return [f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k)]


def check_out_dir(out: Path, identity: dict[str, Any], resume: bool) -> Path | None:
    """Check that a run may start in `out` (read-only); return the checkpoint to resume from, if any.

    A fresh run needs a missing or empty directory; `resume` needs the same run identity as the one saved in
    `out/config.json`. Raises FileExistsError / ValueError with the fix, before anything is written.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; choose a directory")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not resume:
        if entries:
            raise FileExistsError(
                f"--out {out} is not empty ({', '.join(entries[:4])}{', ...' if len(entries) > 4 else ''}); "
                "pass --resume to continue the run there, or choose another --out"
            )
        return None
    if not entries:
        return None
    config_path = out / CONFIG_FILE
    if not config_path.is_file():
        raise ValueError(
            f"--resume: {out} holds files but no {CONFIG_FILE}, so it is not an mmfree run directory; "
            "choose another --out"
        )
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))["identity"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"--resume: {config_path} is unreadable ({err}); choose another --out") from None
    diffs = _differences(saved, json.loads(json.dumps(identity)))
    if diffs:
        raise ValueError(
            f"--resume: the run in {out} was made with a different config ({'; '.join(diffs)}); "
            "resume with the same settings, or start a new run with another --out"
        )
    return latest_checkpoint(out)


def write_run_config(out: Path, config: dict[str, Any], identity: dict[str, Any]) -> None:
    """Save the run's settings to out/config.json (atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_FILE, json.dumps({"identity": identity, "config": config}, indent=2))


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA RNG states as plain types and tensors (weights_only-loadable)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write `state` as checkpoint `step` atomically, then delete all but the newest `keep` checkpoints."""
    root = out / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{_PREFIX}{step:08d}-"))
    try:
        with open(tmp / STATE_FILE, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(tmp)
        target = root / f"{_PREFIX}{step:08d}"
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint's state dict (on CPU)."""
    file = path / STATE_FILE
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(
            f"checkpoint {file} is unreadable ({err}); delete that directory to resume from the previous one"
        ) from None
