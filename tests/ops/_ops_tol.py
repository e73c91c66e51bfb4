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


def untied_columns(x: torch.Tensor, norm_weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`[K]` bool: the input columns where the fused kernel's int8 codes of `[..., K]` x equal the reference's.

    The kernel sums the RMSNorm in another order, so a code at a rounding tie can land one step apart (about
    1.6e-6 of the codes in fp32: 1 in 624,000 over 400 seeds). A weight gradient takes its column k from the
    codes of column k, so one flip moves that whole column by a step times dy, beyond a tight tolerance.
    Tests compare weight gradients on these columns; flips must be rare and of one step."""
    from mmfree.ops.bitlinear.triton import norm_quant
    from mmfree.ops.norm.naive import rms_norm
    from mmfree.ops.quant import int8_codes

    rows = x.reshape(-1, x.shape[-1])  # [M, K]
    q, _, _ = norm_quant(rows, norm_weight, eps)  # [M, K]
    q_ref, _ = int8_codes(rms_norm(rows.float(), norm_weight.float(), eps))  # [M, K]
    diff = (q.int() - q_ref.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.02, "activation codes off beyond rounding ties"
    return ~(diff > 0).any(0).cpu()


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


def check_mlgru_form(gen, device, B, T, D, dtype, full, tol_h, tol_g, **triton_kwargs) -> None:
    """`mlgru_triton(..., **triton_kwargs)` against the sequential reference on fresh random inputs: h, the
    final state and the gradients of f_raw, c_raw, the lower bound and h0 (with resets and masks if full)."""
    from mmfree.ops.mlgru import mlgru_gated_naive
    from mmfree.ops.mlgru.triton import mlgru_triton

    f_raw, c_raw, lb, h0, reset, mask = mlgru_inputs(gen, B, T, D, dtype, device, full)
    w_h = torch.randn(B, T, D, generator=gen).to(device)  # [B, T, D]
    w_fin = torch.randn(B, D, generator=gen).to(device)  # [B, D]

    def kernel(*args):
        return mlgru_triton(*args, **triton_kwargs)

    def reference(f, c, lb_, h0_, r, m):
        return mlgru_gated_naive(f.float(), c.float(), lb_, h0_, r, m, parallel=False)

    tensors = [f_raw, c_raw, lb, h0]
    h, final, grads = run_with_grads(kernel, tensors, reset, mask, w_h, w_fin)
    h_ref, final_ref, grads_ref = run_with_grads(reference, tensors, reset, mask, w_h, w_fin)
    assert h.dtype == dtype and final.dtype == torch.float32
    assert_close_scaled(h, h_ref, tol_h, "h")
    assert_close_scaled(final, final_ref, tol_h, "final_state")
    for name, g, g_ref in zip(("df_raw", "dc_raw", "dlower_bound", "dinitial_state"), grads, grads_ref):
        if g_ref is None:
            assert g is None, name
        else:
            assert_close_scaled(g, g_ref, tol_g, name)
