"""Shared helpers of the kernel tests: scale-free error checks, whether Triton can run here, MLGRU inputs."""

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


def mlgru_inputs(gen: torch.Generator, B: int, T: int, D: int, dtype: torch.dtype, device: str, full: bool):
    """Random MLGRU inputs (f_raw, c_raw, lower_bound, h0, reset, mask); without `full` only f_raw, c_raw."""
    f_raw = torch.randn(B, T, D, generator=gen).to(device, dtype)  # [B, T, D]
    c_raw = torch.randn(B, T, D, generator=gen).to(device, dtype)  # [B, T, D]
    lb = torch.rand(D, generator=gen).to(device) * 0.8 if full else None  # [D]
    h0 = torch.randn(B, D, generator=gen).to(device) if full else None  # [B, D]
    reset = (torch.rand(B, T, generator=gen) < 0.08).to(device) if full else None  # [B, T]
    mask = None
    if full:
        mask = torch.ones(B, T)  # [B, T]
        mask[0, : T // 5] = 0.0  # left padding on the first row
        mask = mask.to(device)
    return f_raw, c_raw, lb, h0, reset, mask


def run_with_grads(fn, tensors, reset, mask, w_h, w_fin):
    """h, final state and the gradients of `tensors` (f_raw, c_raw, lb, h0) under a random linear loss."""
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]
    h, final = fn(*leaves, reset, mask)
    ((h.float() * w_h).sum() + (final * w_fin).sum()).backward()
    return h, final, [t.grad if t is not None else None for t in leaves]
