"""Golden losses: the trainer reproduces the committed first 20 losses of a fixed tiny CPU fp32 run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from make_golden import GOLDEN, GOLDEN_CONFIG, golden_losses


def test_trainer_reproduces_golden_losses(tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert golden["config"] == GOLDEN_CONFIG, "golden file is stale: rerun tests/train/make_golden.py"
    assert len(golden["losses"]) == 20
    losses = golden_losses(tmp_path)
    assert losses == pytest.approx(golden["losses"], rel=2e-5, abs=2e-5)
