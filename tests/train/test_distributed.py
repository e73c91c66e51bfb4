"""Two CPU processes (gloo, torchrun --standalone) train like one process at the same global batch: DDP and
FSDP2. Only rank 0 writes the log, checkpoints and the final model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from mmfree.train import run_training
from mmfree.train.metrics import read_log

pytestmark = pytest.mark.slow

ARGS = {
    "max_steps": 4,
    "save_every": 2,
    "eval_every": 2,
    "batch_size": 4,
    "grad_accum": 2,
    "sample_prompt": "",
}


def _torchrun(data: Path, out: Path, parallel: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "mmfree.cli", "train", "--data", str(data), "--out", str(out), "--parallel", parallel,
        "--device", "cpu", "--hidden-size", "32", "--num-layers", "2", "--seq-len", "32", "--eval-tokens", "256",
        "--log-every", "1", "--no-progress", "--no-tensorboard", "--threads", "1", "--sample-prompt", "",
        "--max-steps", "4", "--save-every", "2", "--eval-every", "2", "--batch-size", "4", "--grad-accum", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def single(token_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY

    out = tmp_path_factory.mktemp("single") / "run"
    run_training(_config(token_dir, out, TINY))
    return out


def _config(data: Path, out: Path, tiny: dict[str, Any]) -> Any:
    from mmfree.train import TrainConfig

    return TrainConfig(**{**tiny, **ARGS, "data": [str(data)], "out": str(out), "threads": 1})


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one(parallel: str, single: Path, token_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / parallel
    done = _torchrun(token_dir, out, parallel)
    assert done.returncode == 0, done.stderr[-4000:]
    one, two = read_log(single / "log.jsonl"), read_log(out / "log.jsonl")
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-4)
    assert [r["val_loss"] for r in two if "val_loss" in r] == pytest.approx(
        [r["val_loss"] for r in one if "val_loss" in r], rel=1e-4
    )
    assert [r["tokens"] for r in two] == [r["tokens"] for r in one]
    a, b = load_file(single / "final" / "model.safetensors"), load_file(out / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(b[key].shape == a[key].shape for key in a)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]
