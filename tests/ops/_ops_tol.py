"""Shared helpers of the kernel tests: scale-free error checks and whether Triton can run here."""

from __future__ import annotations

import os

import torch

# relative-to-max tolerance per dtype of the kernel's inputs (the reference runs in fp32)
TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rel: float, name: str = "") -> None:
    """max |actual - expected| <= rel * max |expected| (elementwise scale-free comparison)."""
    a, e = actual.detach().float().cpu(), expected.detach().float().cpu()
    assert a.shape == e.shape, f"{name}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    assert torch.isfinite(a).all(), f"{name}: non-finite values"
    scale = e.abs().max().clamp(min=1e-6)
    err = (a - e).abs().max()
    assert err <= rel * scale, f"{name}: max error {err:.3e} > {rel:.1e} * {scale:.3e}"


def triton_ready() -> bool:
    """True when the Triton kernels can run here (a GPU, or the CPU interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
