"""Shared test fixtures: paths to ../shared and small helpers.

Without a GPU, TRITON_INTERPRET=1 is set here, before any test module can import Triton (it is read when
a kernel is decorated), so the `interpret`-marked tests run the kernels on CPU through Triton's interpreter.
It only changes explicit `backend="triton"` calls; `auto` on CPU stays on the PyTorch references.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMFREE_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True)
def _fresh_seed() -> None:
    """A different seed each test run (inputs are fresh random draws), printed on failure by pytest -ra."""
    torch.manual_seed(int.from_bytes(os.urandom(4), "little"))


@pytest.fixture
def shared_dir() -> Path:
    """The project's read-only shared data; tests needing it are skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set MMFREE_SHARED)")
    return SHARED
