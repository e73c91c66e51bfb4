"""Ops tests: fixtures for the kernel tests (tests/conftest.py sets TRITON_INTERPRET=1 without a GPU)."""

from __future__ import annotations

import os
import sys
import time

import pytest
import torch

# the test modules import their shared helpers (`_ops_tol`) from this folder, whatever pytest's import mode
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def gen() -> torch.Generator:
    """A generator seeded from the clock (fresh inputs each run); the seed is printed on failure."""
    seed = time.time_ns() % (2**31)
    print(f"seed={seed}")
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def device() -> str:
    """Where the interpreter-marked tests put their tensors: CPU under the interpreter, else the GPU."""
    return "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"


def triton_ready() -> bool:
    """True when the Triton kernels can run here (kept here too for test modules importing it from conftest)."""
    from _ops_tol import triton_ready as ready

    return ready()
