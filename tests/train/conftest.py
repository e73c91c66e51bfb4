"""Shared fixtures of the trainer tests: a synthetic prepared data directory and tiny run configs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

# the test modules import their helpers (`_train_synth`, `make_golden`) from this folder
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _train_synth import write_token_dir

from mmfree.train.config import TrainConfig

TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_layers": 2,
    "batch_size": 4,
    "seq_len": 32,
    "eval_tokens": 256,
    "log_every": 1,
    "progress": False,
    "tensorboard": False,
    "sample_tokens": 4,
}


@pytest.fixture(scope="session")
def token_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared data directory (vocab 300) with a learnable synthetic token stream."""
    return write_token_dir(tmp_path_factory.mktemp("tokens"))


@pytest.fixture
def tiny(token_dir: Path, tmp_path: Path) -> Any:
    """Factory of tiny TrainConfigs on `token_dir`, writing to tmp_path/run unless `out` is given."""

    def make(**overrides: Any) -> TrainConfig:
        values = {**TINY, "data": [str(token_dir)], "out": str(tmp_path / "run"), **overrides}
        return TrainConfig(**values)

    return make


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    """Runs may set torch's thread count and determinism (--threads, --deterministic); restore them."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
