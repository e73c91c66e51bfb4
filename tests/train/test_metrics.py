"""Metrics: bits per byte, the add-one unigram baseline, JSONL logs across a resume."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmfree.train.metrics import RunLog, bits_per_byte, read_log, unigram_loss


def test_bits_per_byte() -> None:
    assert bits_per_byte(math.log(2), 10, 10) == pytest.approx(1.0)
    assert bits_per_byte(2.0, 100, 400) == pytest.approx(2.0 * 100 / (400 * math.log(2)))


def test_unigram_loss_matches_a_direct_count() -> None:
    train = np.array([3, 3, 3, 4, 5, 5], dtype=np.uint16)
    val = np.array([3, 5, 6, 6], dtype=np.uint16)
    vocab = 8
    counts = Counter(train.tolist())
    expected = -sum(math.log((counts[t] + 1) / (len(train) + vocab)) for t in val.tolist()) / len(val)
    assert unigram_loss(train, val, vocab) == pytest.approx(expected)


def test_log_truncates_after_resume_step(tmp_path: Path) -> None:
    log = RunLog(tmp_path, enabled=True, tensorboard=False, resume_step=None)
    for step in range(1, 6):
        log.write({"step": step, "loss": float(step)})
    log.close()
    with open(tmp_path / "log.jsonl", "a") as fh:
        fh.write('{"step": 6, "lo')  # torn line of a killed process
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl")] == [1, 2, 3, 4, 5]
    log = RunLog(tmp_path, enabled=True, tensorboard=False, resume_step=3)
    log.write({"step": 4, "loss": 40.0})
    log.close()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]
    assert json.loads(lines[-1])["loss"] == 40.0


def test_disabled_log_writes_nothing(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "r", enabled=False, tensorboard=True, resume_step=None)
    log.write({"step": 1})
    log.close()
    assert not (tmp_path / "r").exists()
