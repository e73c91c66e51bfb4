"""Chunked LM-head cross-entropy: the `[N, V]` logits are never materialized (peak memory O(chunk x V)).

The forward pass walks token chunks; for each chunk it builds the chunk's logits with exactly the
reference head (`head_logits`), takes the summed cross-entropy and its gradients w.r.t. the chunk's hidden
states, the weight and the norm weight, and drops the logits. The gradients are kept (`[N, D]`, `[V, D]`,
`[D]`) and scaled by the incoming gradient in backward. The ternary head ternarizes the weight once, not
per chunk (its quantizer is per tensor), and the activation quantizer is per token, so chunking is exact.
Plain PyTorch, so it runs on CPU and GPU alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmfree.ops.loss.naive import head_logits
from mmfree.ops.quant.naive import weight_quant

DEFAULT_CHUNK_TOKENS = 4096


class ChunkedHeadLoss(torch.autograd.Function):
    """(hidden `[N, D]`, weight `[V, D]`, norm_weight `[D]` | None) -> mean loss (0-d fp32)."""

    @staticmethod
    def forward(ctx, hidden, weight, norm_weight, labels, ternary, eps, ignore_index, chunk_tokens):
        N = hidden.shape[0]
        count = (labels != ignore_index).sum()  # []
        need_h, need_w, need_n = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        with torch.enable_grad():
            w_leaf = weight.detach().requires_grad_(need_w)  # [V, D]
            w_eff = weight_quant(w_leaf) if ternary else w_leaf  # [V, D], quantized once
        w_used = w_eff.detach().requires_grad_(need_w)  # [V, D]
        nw = norm_weight.detach().requires_grad_(need_n) if norm_weight is not None else None  # [D]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        dhidden = torch.zeros_like(hidden) if need_h else None  # [N, D]
        dw_eff = (
            torch.zeros(w_used.shape, dtype=torch.float32, device=hidden.device) if need_w else None
        )  # [V, D]
        dnorm = torch.zeros(nw.shape, dtype=torch.float32, device=hidden.device) if need_n else None  # [D]
        for start in range(0, N, chunk_tokens):
            h = hidden[start : start + chunk_tokens].detach().requires_grad_(need_h)  # [n, D]
            y = labels[start : start + chunk_tokens]  # [n]
            with torch.enable_grad():
                logits = _logits(h, w_used, nw, ternary, eps)  # [n, V]
                loss = F.cross_entropy(logits.float(), y, ignore_index=ignore_index, reduction="sum")
            total += loss.detach()
            inputs = [t for t, need in ((h, need_h), (w_used, need_w), (nw, need_n)) if need]
            if not inputs:
                continue
            grads = iter(torch.autograd.grad(loss, inputs))
            if need_h:
                dhidden[start : start + chunk_tokens] = next(grads)
            if need_w:
                dw_eff += next(grads)
            if need_n:
                dnorm += next(grads)
        dweight = None
        if need_w:
            # straight through the weight quantizer (identity backward of weight_quant)
            (dweight,) = torch.autograd.grad(w_eff, w_leaf, dw_eff.to(w_eff.dtype))
        ctx.save_for_backward(dhidden, dweight, dnorm, count)
        ctx.norm_dtype = norm_weight.dtype if norm_weight is not None else None
        return total / count

    @staticmethod
    def backward(ctx, dloss):
        dhidden, dweight, dnorm, count = ctx.saved_tensors
        scale = dloss / count  # []
        dh = (dhidden * scale).to(dhidden.dtype) if dhidden is not None else None
        dw = (dweight * scale).to(dweight.dtype) if dweight is not None else None
        dn = (dnorm * scale).to(ctx.norm_dtype) if dnorm is not None else None
        return dh, dw, dn, None, None, None, None, None


def _logits(
    h: torch.Tensor, w_used: torch.Tensor, nw: torch.Tensor | None, ternary: bool, eps: float
) -> torch.Tensor:
    """Chunk logits with the weight already quantized: the reference head minus its weight quantizer."""
    if not ternary:
        return head_logits(h, w_used, None, False, eps)  # [n, V]
    from mmfree.ops.norm.naive import rms_norm
    from mmfree.ops.quant.naive import act_quant

    return F.linear(act_quant(rms_norm(h, nw, eps)), w_used)  # [n, V]


def lm_head_loss_chunked(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    norm_weight: torch.Tensor | None = None,
    ternary: bool = True,
    eps: float = 1e-6,
    ignore_index: int = -100,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """Mean cross-entropy over labels != ignore_index without materializing the `[N, V]` logits.

    Args:
        hidden: `[N, D]`; weight: `[V, D]`; labels: `[N]` int64; norm_weight: `[D]` or None (ternary head);
        ternary: BitLinear head (True) or plain linear (False); chunk_tokens: tokens per chunk.
    Returns:
        0-d fp32 mean loss (nan when every label is ignored, as F.cross_entropy).
    """
    if chunk_tokens < 1:
        raise ValueError(f"lm_head_loss: chunk_tokens must be >= 1; got {chunk_tokens}")
    return ChunkedHeadLoss.apply(
        hidden, weight, norm_weight, labels, ternary, eps, ignore_index, chunk_tokens
    )
