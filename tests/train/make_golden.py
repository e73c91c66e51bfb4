"""Regenerate tests/train/golden/debug_loss.json: the first 20 losses of a fixed tiny run on CPU fp32.

Run `python tests/train/make_golden.py` only when a change to the training numerics is intended, and say so
in the commit. The run: the debug preset shrunk by GOLDEN_CONFIG, on the synthetic stream of
`_train_synth.write_token_dir` (seed 0), one thread, deterministic algorithms.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GOLDEN = Path(__file__).resolve().parent / "golden" / "debug_loss.json"
GOLDEN_CONFIG: dict[str, Any] = {
    "preset": "debug",
    "arch": "mmfree",
    "hidden_size": 32,
    "num_layers": 2,
    "batch_size": 4,
    "seq_len": 32,
    "max_steps": 20,
    "warmup": 2,
    "seed": 0,
    "threads": 1,
    "deterministic": True,
    "eval_every": 0,
    "eval_tokens": 256,
    "save_every": 0,
    "log_every": 1,
    "progress": False,
    "tensorboard": False,
    "sample_prompt": "",
}


def golden_losses(workdir: Path) -> list[float]:
    """Train the golden run in `workdir` and return its per-step losses."""
    from _train_synth import write_token_dir

    from mmfree.train import TrainConfig, run_training
    from mmfree.train.metrics import read_log

    data = write_token_dir(workdir / "tokens")
    cfg = TrainConfig(**GOLDEN_CONFIG, data=[str(data)], out=str(workdir / "run"))
    run_training(cfg)
    return [r["loss"] for r in read_log(workdir / "run" / "log.jsonl")]


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        losses = golden_losses(Path(tmp))
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    record = {"config": GOLDEN_CONFIG, "torch": torch.__version__, "losses": losses}
    GOLDEN.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(losses)} losses to {GOLDEN}")


if __name__ == "__main__":
    main()
