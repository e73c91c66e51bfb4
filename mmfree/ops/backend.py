"""Backend choice for every op: `auto | triton | torch`, forced with the env var MMFREE_BACKEND.

auto picks Triton for CUDA tensors when Triton imports, PyTorch elsewhere. Under TRITON_INTERPRET=1 an
explicit `triton` runs the kernels on CPU through Triton's interpreter (that is how CI tests them).
A fallback from a requested backend is logged once per op, never silent.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from typing import Literal

import torch

Backend = Literal["auto", "triton", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "triton", "torch")
ENV_VAR = "MMFREE_BACKEND"

logger = logging.getLogger("mmfree")
_warned: set[str] = set()


@functools.cache
def triton_available() -> bool:
    """True when the `triton` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpret_mode() -> bool:
    """True when Triton kernels run through the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def requested_backend(backend: str | None = None) -> str:
    """The backend asked for: the argument if given, else $MMFREE_BACKEND, else `auto`."""
    choice = (backend or os.environ.get(ENV_VAR) or "auto").lower()
    if choice not in BACKENDS:
        raise ValueError(
            f"unknown mmfree backend {choice!r} (from {'argument' if backend else ENV_VAR}); "
            f"choose one of {', '.join(BACKENDS)}"
        )
    return choice


def log_once(key: str, message: str, level: int = logging.WARNING) -> None:
    """Log `message` on the "mmfree" logger the first time `key` is seen in this process, never again."""
    if key not in _warned:
        _warned.add(key)
        logger.log(level, "mmfree %s: %s", key.split("|")[0], message)


def _warn_once(op: str, message: str) -> None:
    log_once(op, message)


def use_triton(op: str, *tensors: torch.Tensor, backend: str | None = None) -> bool:
    """Decide whether `op` runs its Triton kernel on these tensors.

    `torch` never does; `auto` does for CUDA tensors when Triton is importable; `triton` does for CUDA
    tensors, or for CPU tensors under TRITON_INTERPRET=1, and otherwise falls back with a logged warning.
    """
    choice = requested_backend(backend)
    if choice == "torch":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if not triton_available():
        if choice == "triton" or on_cuda:
            _warn_once(
                op, "Triton is not installed; using the PyTorch reference (pip install 'mmfree[triton]')"
            )
        return False
    if on_cuda:
        return True
    if choice == "triton":
        if interpret_mode():
            return True
        _warn_once(
            op, "backend 'triton' needs CUDA tensors or TRITON_INTERPRET=1; using the PyTorch reference"
        )
    return False
