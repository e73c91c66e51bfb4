"""A real SIGKILL: `python -m mmfree.cli train` is killed after its first checkpoint, resumed, and ends
bitwise equal (losses, LRs, final weights) to an uninterrupted run on CPU with one thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mmfree.train.metrics import read_log

pytestmark = pytest.mark.slow


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mmfree.cli", "train", "--data", str(data), "--out", str(out),
        "--hidden-size", "32", "--num-layers", "2", "--batch-size", "4", "--seq-len", "32",
        "--max-steps", "40", "--save-every", "4", "--keep", "2", "--eval-every", "20", "--eval-tokens", "128",
        "--log-every", "1", "--threads", "1", "--deterministic", "--no-progress", "--no-tensorboard",
        "--sample-tokens", "2", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_sigkill_then_resume_matches_uninterrupted_run(token_dir: Path, tmp_path: Path) -> None:
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(token_dir, killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    first = killed / "checkpoints" / "step-00000004" / "state.pt"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "final").exists()

    done = subprocess.run(_cmd(token_dir, killed, "--resume"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unigram baseline" in done.stdout
    subprocess.run(_cmd(token_dir, ref), env=_env(), check=True, capture_output=True)

    def steps(run: Path) -> list[tuple]:
        return [(r["step"], r["loss"], r["lr"], r.get("val_loss")) for r in read_log(run / "log.jsonl")]

    assert steps(killed) == steps(ref)
    assert len(steps(ref)) == 40
    a, b = load_file(ref / "final" / "model.safetensors"), load_file(killed / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
