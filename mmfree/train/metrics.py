"""Training logs (JSONL and optional TensorBoard) and the numbers reported about a run.

`log.jsonl` holds one JSON object per logged step: `step`, `loss`, `lr`, `tokens`, `tokens_per_s`,
`grad_norm`, `elapsed_s`, and at evaluations `val_loss`, `val_ppl`, `val_bpb`. On resume the lines after the
checkpoint's step are dropped (they are recomputed identically), so a resumed log reads like an
uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from mmfree.train.checkpoint import atomic_write_text

LOG_FILE = "log.jsonl"
TB_DIR = "tb"
logger = logging.getLogger("mmfree.train")


def bits_per_byte(loss_nats: float, tokens: int, num_bytes: int) -> float:
    """Bits per UTF-8 byte from a per-token loss in nats: loss * tokens / (ln 2 * bytes)."""
    if num_bytes <= 0:
        return float("nan")
    return loss_nats * tokens / (math.log(2) * num_bytes)


def unigram_loss(train: Any, val: Any, vocab_size: int, max_tokens: int = 50_000_000) -> float:
    """Cross-entropy (nats/token) on `val` of the add-one-smoothed unigram distribution of `train` tokens.

    Counts the first `max_tokens` of each (both are TokenArray-like: length and step-1 slicing).
    """
    train_ids = np.asarray(train[: min(len(train), max_tokens)], dtype=np.int64)  # [N]
    val_ids = np.asarray(val[: min(len(val), max_tokens)], dtype=np.int64)  # [M]
    if len(val_ids) == 0:
        raise ValueError("the validation split is empty; cannot score the unigram baseline")
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64)[:vocab_size]  # [V]
    log_probs = np.log(counts + 1.0) - math.log(len(train_ids) + vocab_size)  # [V]
    return float(-log_probs[val_ids].mean())


class RunLog:
    """Appends step records to out/log.jsonl and TensorBoard (only on the writing rank)."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.path = out / LOG_FILE
        self.writer: Any = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self._truncate(resume_step)
        elif self.path.exists():
            self.path.unlink()
        self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.info(
                    "tensorboard is not installed: skipping TensorBoard logs (pip install tensorboard)"
                )
            else:
                purge = resume_step + 1 if resume_step is not None else None
                self.writer = SummaryWriter(str(out / TB_DIR), purge_step=purge)

    def _truncate(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = [line for line in read_log(self.path) if line.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (must hold `step`)."""
        if not self.enabled:
            return
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(
                        f"train/{key}" if not key.startswith("val") else f"val/{key}", value, record["step"]
                    )
            self.writer.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self.fh.close()
        if self.writer is not None:
            self.writer.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a log.jsonl (a torn last line from a killed process is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
