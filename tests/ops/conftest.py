"""Ops tests: run the Triton kernels through the CPU interpreter when no GPU is present.

TRITON_INTERPRET is read when a kernel is decorated (when `mmfree.ops.*.triton` is first imported), so it
is set here, at collection time, before any test module imports a kernel file. It only affects explicit
`backend="triton"` calls on CPU tensors; the torch backend and `auto` on CPU are unchanged.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
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
