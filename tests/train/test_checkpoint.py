"""Checkpoints and run directories: atomic writes, keep-last-k, RNG round trips, the guards on --out."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfree.train import checkpoint as ckpt


def test_save_keeps_last_k_and_ignores_partial_writes(tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / ".tmp-step-00000009-x").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-00000009").mkdir()  # no state.pt: an incomplete one is never listed
    for step in (2, 4, 6):
        ckpt.save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((3,), float(step))}, keep=2)
    names = [p.name for p in ckpt.checkpoints(tmp_path)]
    assert names == ["step-00000004", "step-00000006"]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert state["step"] == 6 and torch.equal(state["w"], torch.full((3,), 6.0))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoints" / "step-00000001"
    bad.mkdir(parents=True)
    (bad / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable"):
        ckpt.load_checkpoint(bad)


def test_rng_state_round_trip(tmp_path: Path) -> None:
    state = ckpt.rng_state()
    ckpt.save_checkpoint(tmp_path, 1, {"rng": state}, keep=1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    ckpt.set_rng_state(ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_fresh_run_needs_an_empty_out(tmp_path: Path) -> None:
    assert ckpt.check_out_dir(tmp_path / "new", {"a": 1}, resume=False) is None
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="--resume"):
        ckpt.check_out_dir(tmp_path, {"a": 1}, resume=False)
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_resume_checks_the_run_identity(tmp_path: Path) -> None:
    ckpt.write_run_config(tmp_path, {"x": 1}, {"batch_size": 16, "seed": 0})
    assert ckpt.check_out_dir(tmp_path, {"batch_size": 16, "seed": 0}, resume=True) is None
    with pytest.raises(ValueError, match="batch_size: saved 16, now 8"):
        ckpt.check_out_dir(tmp_path, {"batch_size": 8, "seed": 0}, resume=True)
    assert json.loads((tmp_path / "config.json").read_text())["identity"]["batch_size"] == 16
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not an mmfree run directory"):
        ckpt.check_out_dir(other, {"seed": 0}, resume=True)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    ckpt.atomic_write_text(path, "old")
    ckpt.atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
