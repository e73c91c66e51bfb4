"""Several BitLinears that read the same input (the MLGRU's i, f and g projections), fused in backward.

Each projection has its own RMSNorm weight, but their norms share `rstd` (it depends on the input alone).
The input gradient is the sum over projections of each norm's backward, and that backward is linear in
its incoming gradient. So one kernel reads the input once with the P projections' `dXn_p`, writes one
`dX` and the P norm-weight partials. Done one projection at a time, the same work reads the input P
times, writes P gradients and adds them in P - 1 more passes.
Forward and the weight gradients are the single BitLinear's (`triton.py`).
The executable spec is P calls of `naive.bitlinear_naive`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mmfree.ops.bitlinear.triton import _ternary_entry, dequant, dequantized_weight, int8_linear, norm_quant
from mmfree.ops.norm.triton import _block_n, _num_warps, sm_count


@triton.jit
def _rms_shared_bwd_kernel(
    X, W, DXN, RSTD, DX, DWP, M, N, rows_per_program, programs,
    P: tl.constexpr, PP: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    # rows row0 .. row0 + rows_per_program: dX = rstd (dxhat - xhat mean(dxhat xhat)), dxhat = sum_p dXn_p w_p;
    # this program's partial dW_p = sum over its rows of dXn_p xhat, stored at DWP[p, pid]
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    m = cols < N
    pi = tl.arange(0, PP).to(tl.int64)
    wm = (pi < P)[:, None] & m[None, :]
    w = tl.load(W + pi[:, None] * N + cols[None, :], mask=wm, other=0.0).to(tl.float32)  # [PP, BN]
    dw = tl.zeros([PP, BLOCK_N], dtype=tl.float32)
    for r in range(0, rows_per_program):
        row = (pid * rows_per_program + r).to(tl.int64)
        if row < M:
            xhat = tl.load(X + row * N + cols, mask=m, other=0.0).to(tl.float32) * tl.load(RSTD + row)
            dxn = tl.load(DXN + (pi[:, None] * M + row) * N + cols[None, :], mask=wm, other=0.0).to(
                tl.float32
            )
            dw += dxn * xhat[None, :]
            dxhat = tl.sum(dxn * w, axis=0)  # [BN]
            c = tl.sum(dxhat * xhat, axis=0) / N
            dx = tl.load(RSTD + row) * (dxhat - xhat * c)
            tl.store(DX + row * N + cols, dx.to(DX.dtype.element_ty), mask=m)
    tl.store(DWP + (pi[:, None] * programs + pid) * N + cols[None, :], dw, mask=wm)


def rms_shared_bwd(
    dxn: torch.Tensor, x: torch.Tensor, norm_weights: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """dxn `[P, M, K]` (each projection's gradient of its normalized input), x `[M, K]`, norm_weights
    `[P, K]`, rstd `[M]` -> dx `[M, K]` (x's dtype) and the norm weights' gradients `[P, K]` fp32."""
    P, M, K = dxn.shape
    programs = max(1, min(M, sm_count(x.device.index or 0) * 4 if x.is_cuda else 4))
    rows = triton.cdiv(max(M, 1), programs)
    dx = torch.empty_like(x)  # [M, K]
    dw_part = torch.empty(P, programs, K, dtype=torch.float32, device=x.device)  # [P, programs, K]
    if M == 0:
        return dx, torch.zeros(P, K, dtype=torch.float32, device=x.device)
    block = _block_n(K)
    _rms_shared_bwd_kernel[(programs,)](
        x, norm_weights, dxn, rstd, dx, dw_part, M, K, rows, programs,
        P=P, PP=triton.next_power_of_2(P), BLOCK_N=block, num_warps=_num_warps(block),
    )  # fmt: skip
    return dx, dw_part.sum(dim=1)


class SharedInputBitLinearFunction(torch.autograd.Function):
    """P bias-free BitLinears over one input x `[M, K]` -> P outputs `[M, N_p]`; params: nw_0, w_0, nw_1, ..."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        nws, ws = params[0::2], params[1::2]
        need_dx = ctx.needs_input_grad[0] or any(ctx.needs_input_grad[2::2])
        ys, saved, caches = [], [], []
        rstd = x.new_empty(0)
        for nw, w in zip(nws, ws):
            q, s, rstd = norm_quant(x, nw, eps)  # [M, K] int8, [M], [M] (rstd: the same for every p)
            codes, g, cache = _ternary_entry(w, x.dtype if need_dx else None)  # [N, K] int8, [], {}
            ys.append(int8_linear(q, s, codes, g, None, x.dtype))  # [M, N]
            saved += [q, s, codes, g]
            caches.append(cache)
        ctx.save_for_backward(x, rstd, torch.stack(nws), *saved)
        ctx.caches = caches
        ctx.dtypes = [(nw.dtype, w.dtype) for nw, w in zip(nws, ws)]
        return tuple(ys)

    @staticmethod
    def backward(ctx, *dys: torch.Tensor):
        x, rstd, nw_stack, *saved = ctx.saved_tensors
        P = len(ctx.caches)
        dt = dys[0].dtype
        grads: list[torch.Tensor | None] = []
        dxn = torch.empty(P, *x.shape, dtype=dt, device=x.device)  # [P, M, K]
        for p in range(P):
            q, s, codes, g = saved[4 * p : 4 * p + 4]
            dy = dys[p].contiguous()  # [M, N]
            torch.matmul(dy, dequantized_weight(codes, g, dt, ctx.caches[p]), out=dxn[p])
            grads.append((dy.t() @ dequant(q, s, dt)).to(ctx.dtypes[p][1]))  # dW_p [N, K]
        dx, dnw = rms_shared_bwd(dxn, x, nw_stack, rstd)  # [M, K], [P, K]
        out: list[torch.Tensor | None] = [dx, None]
        for p in range(P):
            out += [dnw[p].to(ctx.dtypes[p][0]), grads[p]]
        return tuple(out)


def bitlinear_shared_triton(
    x: torch.Tensor, norm_weights: list[torch.Tensor], weights: list[torch.Tensor], eps: float
) -> list[torch.Tensor]:
    """P BitLinears of one input: x `[..., K]`, norm_weights P x `[K]`, weights P x `[N_p, K]`, no biases,
    one norm epsilon -> P outputs `[..., N_p]` in x's dtype."""
    K = x.shape[-1]
    if not weights or len(norm_weights) != len(weights):
        raise ValueError(
            f"bitlinear_shared: need as many norm weights as weights; got {len(norm_weights)}, {len(weights)}"
        )
    for nw, w in zip(norm_weights, weights):
        if w.ndim != 2 or w.shape[1] != K or tuple(nw.shape) != (K,):
            raise ValueError(
                f"bitlinear_shared: each weight must be [N, {K}] with a [{K}] norm weight; "
                f"got {tuple(w.shape)} and {tuple(nw.shape)}"
            )
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"bitlinear_shared (triton): x must be fp32, fp16 or bf16; got {x.dtype}")
    rows = x.reshape(-1, K).contiguous()  # [M, K]
    params = [t for pair in zip(norm_weights, weights) for t in pair]
    ys = SharedInputBitLinearFunction.apply(rows, eps, *params)
    return [y.reshape(*x.shape[:-1], y.shape[-1]) for y in ys]
