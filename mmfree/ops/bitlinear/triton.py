"""Fused BitLinear in Triton: RMSNorm + int8 activation quant in one pass, int8 x ternary GEMM, STE backward.

Forward: one kernel normalizes each row and writes its int8 codes `[M, K]` plus the per-row scale
`s = 127 / max|xn|` (round half to even, like `torch.round`); the weight is ternarized once per optimizer
step (cached on the parameter, keyed on `(data_ptr, _version, optimizer steps taken)`, so gradient-
accumulation micro-batches reuse it: see `ternarize`); the product runs on int8 tensor cores (exact int32 accumulation) with `g / s_row` and the bias
applied in the epilogue. `INT8_GEMM` picks the product: "triton" (fused epilogue), "torch"
(`torch._int_mm` + a scale pass) or "bf16" (dequantized codes in the input dtype); "auto" uses "triton"
on GPUs with int8 tensor cores (capability >= 8.0) and "bf16" elsewhere.

Backward (straight-through both quantizers): `dXn = dY @ W_q` with the dequantized weight `W_q = codes_w * g`
cached next to the codes (written by the same pass that ternarizes the weight, `mmfree.ops.quant.triton`,
once per optimizer step, in the input's dtype), `dW = dY^T @ x_q` with
`x_q` dequantized from the saved codes, then the RMSNorm backward recomputes the normalized input from `x`.
Five launches in all (two cuBLAS products, the dequantization, the norm backward and its dweight sum).
Saved: x, the int8 codes, the scales and rstd (no bf16/fp32 normalized copy).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch.optim.optimizer import register_optimizer_step_post_hook

from mmfree.ops.backend import interpret_mode
from mmfree.ops.norm.triton import rms_gate_bwd
from mmfree.ops.quant.naive import ternary_codes
from mmfree.ops.quant.triton import ternarize_triton

INT8_GEMM: str = "auto"
_STEPS = [0]  # optimizer steps taken by any torch optimizer in this process (part of the cache key)


def _count_step(*_: object) -> None:
    _STEPS[0] += 1


def invalidate_weight_cache() -> None:
    """Drop every cached ternarized weight (call after changing weights through `.data` or outside an
    optimizer: such writes are invisible to the cache key)."""
    _count_step()


# Every optimizer step of the process invalidates the cache: fused optimizers (AdamW(fused=True)) update
# parameters without bumping their `_version`, so the version alone would keep stale codes forever.
register_optimizer_step_post_hook(_count_step)
_MODES = ("auto", "triton", "torch", "bf16")
_ROUND_MAGIC = 12582912.0  # 1.5 * 2**23: (y + c) - c rounds fp32 |y| < 2**22 half to even


@triton.jit
def _norm_quant_kernel(
    X,
    W,
    Q,
    S,
    RSTD,
    stride_x,
    stride_q,
    K,
    eps,
    HAS_W: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_K)
    m = cols < K
    x = tl.load(X + row * stride_x + cols, mask=m, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / K + eps)
    xn = x * rstd
    if HAS_W:
        xn = xn * tl.load(W + cols, mask=m, other=0.0).to(tl.float32)
    # the reference quantizes the normalized value after rounding it to the input dtype
    xn = xn.to(X.dtype.element_ty).to(tl.float32)
    s = 127.0 / tl.maximum(tl.max(tl.abs(xn), axis=0), 1e-5)
    q = (xn * s + 12582912.0) - 12582912.0
    q = tl.minimum(tl.maximum(q, -128.0), 127.0)
    tl.store(Q + row * stride_q + cols, q.to(tl.int8), mask=m)
    tl.store(S + row, s)
    tl.store(RSTD + row, rstd)


@triton.jit
def _int8_matmul_kernel(
    A,
    B,
    C,
    S,
    G,
    BIAS,
    M,
    N,
    K,
    stride_am,
    stride_bn,
    stride_cm,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    # C[m, n] = (sum_k A[m, k] B[n, k]) * g / s[m] + bias[n]; A int8 codes, B ternary int8 codes
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    width = GROUP_M * grid_n
    group = pid // width
    first_m = group * GROUP_M
    size_m = tl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    a_ptr = A + rm[:, None] * stride_am + rk[None, :]
    b_ptr = B + rn[None, :] * stride_bn + rk[:, None]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)
    for k0 in range(0, tl.cdiv(K, BLOCK_K)):
        kk = k0 * BLOCK_K + rk
        a = tl.load(a_ptr, mask=(rm[:, None] < M) & (kk[None, :] < K), other=0)
        b = tl.load(b_ptr, mask=(rn[None, :] < N) & (kk[:, None] < K), other=0)
        acc = tl.dot(a, b, acc, out_dtype=tl.int32)
        a_ptr += BLOCK_K
        b_ptr += BLOCK_K
    g = tl.load(G)
    s = tl.load(S + rm, mask=rm < M, other=1.0)
    out = acc.to(tl.float32) * (g / s)[:, None]
    if HAS_BIAS:
        out = out + tl.load(BIAS + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    cm = (rm[:, None] < M) & (rn[None, :] < N)
    tl.store(C + rm[:, None] * stride_cm + rn[None, :], out.to(C.dtype.element_ty), mask=cm)


@triton.jit
def _dequant_kernel(Q, S, OUT, M, K, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    # OUT[m, k] = Q[m, k] / S[m] (the fake-quantized activation x_q), tiled
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rk = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    m = (rm[:, None] < M) & (rk[None, :] < K)
    q = tl.load(Q + rm[:, None] * K + rk[None, :], mask=m, other=0).to(tl.float32)
    s = tl.load(S + rm, mask=rm < M, other=1.0)
    tl.store(OUT + rm[:, None] * K + rk[None, :], (q / s[:, None]).to(OUT.dtype.element_ty), mask=m)


def norm_quant(
    x: torch.Tensor, norm_weight: torch.Tensor | None, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RMSNorm + per-row int8 quant of `[M, K]` rows -> codes `[M, K]` int8, scales `[M]`, rstd `[M]` (fp32)."""
    M, K = x.shape
    q = torch.empty(M, K, dtype=torch.int8, device=x.device)  # [M, K]
    s = torch.empty(M, dtype=torch.float32, device=x.device)  # [M]
    rstd = torch.empty(M, dtype=torch.float32, device=x.device)  # [M]
    if M > 0:
        block = triton.next_power_of_2(K)
        _norm_quant_kernel[(M,)](
            x,
            norm_weight if norm_weight is not None else x,
            q,
            s,
            rstd,
            x.stride(0),
            q.stride(0),
            K,
            eps,
            HAS_W=norm_weight is not None,
            BLOCK_K=block,
            num_warps=min(max(block // 256, 1), 16),
        )
    return q, s, rstd


def _ternary_entry(
    weight: torch.Tensor, wq_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor, dict[torch.dtype, torch.Tensor]]:
    """(codes, g, dequantized-weight cache by dtype) of a weight, rebuilt when the weight changes; a rebuild
    also writes `W_q` in wq_dtype in the same pass (`mmfree.ops.quant.triton`) when wq_dtype is given."""
    key = (weight.data_ptr(), weight._version, _STEPS[0], tuple(weight.shape), weight.device)
    cached = getattr(weight, "_mmfree_ternary", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2], cached[3]
    if weight.is_cuda or interpret_mode():
        codes, g, wq = ternarize_triton(weight, wq_dtype)  # [N, K] int8, [], [N, K] or None
    else:  # a CPU weight outside the interpreter (`ternarize` called directly): the reference; a backward
        codes, g = ternary_codes(weight.detach())  # builds W_q itself (`dequantized_weight`)
        wq = None
    entry = (key, codes, g, {wq_dtype: wq} if wq is not None else {})
    weight._mmfree_ternary = entry
    return entry[1], entry[2], entry[3]


def ternarize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary codes `[N, K]` int8 and the fp32 scale `g` (0-d) of a weight, cached per optimizer step.

    The cache lives on the tensor and is keyed on `(data_ptr, _version, optimizer steps)`: an in-place write
    bumps the version, and any torch optimizer's step (fused ones included, which leave `_version` alone)
    bumps the global step count through a step post-hook; micro-batches of one step reuse the codes.
    Writes through `.data` are invisible to both: call `invalidate_weight_cache()` after them.
    """
    codes, g, _ = _ternary_entry(weight)
    return codes, g


def dequantized_weight(
    codes: torch.Tensor, g: torch.Tensor, dtype: torch.dtype, cache: dict[torch.dtype, torch.Tensor]
) -> torch.Tensor:
    """`codes * g` `[N, K]` in `dtype`, built once per (weight version, dtype) and kept in `cache`."""
    wq = cache.get(dtype)
    if wq is None:
        with torch.no_grad():
            wq = (codes.to(torch.float32) * g).to(dtype)  # [N, K]
        cache[dtype] = wq
    return wq


@functools.cache
def _has_int8_tensor_cores(index: int) -> bool:
    return torch.cuda.get_device_capability(index)[0] >= 8


def _gemm_mode(device: torch.device) -> str:
    mode = INT8_GEMM
    if mode not in _MODES:
        raise ValueError(f"mmfree.ops.bitlinear.triton.INT8_GEMM must be one of {_MODES}; got {mode!r}")
    if mode != "auto":
        return mode
    if device.type == "cuda":
        return "triton" if _has_int8_tensor_cores(device.index or 0) else "bf16"
    return "triton"  # the CPU interpreter


def _gemm_config(M: int, N: int, device: torch.device) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages), fixed by shape (no autotuning). From M = 65 rows:
    the fastest of nine tiles on an H200 at the 370M / 1.3B training shapes (M = 16384; `benchmarks/
    kernels.py --sweep-int8`, 2026-11-29): 128x128x64, 4 warps, 4 stages, 1.20-1.46x a bf16 matmul of the
    same shape and 1.3x the earlier 128x128x128 / 8 warps over the six shapes."""
    if device.type != "cuda":
        return 32, 32, 32, 4, 1
    if M <= 64:
        return 16 if M <= 16 else 64, 128, 128, 4, 4
    return 128, 128, 64, 4, 4


def int8_linear(
    q: torch.Tensor,
    s: torch.Tensor,
    codes: torch.Tensor,
    g: torch.Tensor,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """`(q / s) @ (codes * g)^T + bias`: q `[M, K]` int8, s `[M]`, codes `[N, K]` int8, g 0-d -> `[M, N]`."""
    M, K = q.shape
    N = codes.shape[0]
    mode = _gemm_mode(q.device)
    if mode == "torch" and (M <= 16 or K % 8 or N % 8):
        mode = "triton"
    if mode == "bf16":
        dt = out_dtype if out_dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float32
        y = (q.to(dt) @ codes.to(dt).t()).float() * (g / s)[:, None]  # [M, N]
        if bias is not None:
            y = y + bias.float()
        return y.to(out_dtype)
    if mode == "torch":
        y = torch._int_mm(q, codes.t()).float() * (g / s)[:, None]  # [M, N]
        if bias is not None:
            y = y + bias.float()
        return y.to(out_dtype)
    y = torch.empty(M, N, dtype=out_dtype, device=q.device)  # [M, N]
    if M == 0:
        return y
    bm, bn, bk, warps, stages = _gemm_config(M, N, q.device)
    grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
    _int8_matmul_kernel[grid](
        q,
        codes,
        y,
        s,
        g.reshape(1),
        bias if bias is not None else s,
        M,
        N,
        K,
        q.stride(0),
        codes.stride(0),
        y.stride(0),
        HAS_BIAS=bias is not None,
        BLOCK_M=bm,
        BLOCK_N=bn,
        BLOCK_K=bk,
        GROUP_M=8,
        num_warps=warps,
        num_stages=stages,
    )
    return y


def dequant(q: torch.Tensor, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`q / s[:, None]` in `dtype`: the fake-quantized activations `[M, K]` for the weight gradient."""
    M, K = q.shape
    out = torch.empty(M, K, dtype=dtype, device=q.device)  # [M, K]
    if M > 0:
        grid = (triton.cdiv(M, 32), triton.cdiv(K, 128))
        _dequant_kernel[grid](q, s, out, M, K, BLOCK_M=32, BLOCK_K=128)
    return out


class BitLinearFunction(torch.autograd.Function):
    """Fused BitLinear over rows: x `[M, K]` -> `[M, N]`."""

    @staticmethod
    def forward(ctx, x, norm_weight, weight, bias, eps):
        q, s, rstd = norm_quant(x, norm_weight, eps)  # [M, K] int8, [M], [M]
        wq_dtype = x.dtype if ctx.needs_input_grad[0] or ctx.needs_input_grad[1] else None  # W_q for dX
        codes, g, wq_cache = _ternary_entry(weight, wq_dtype)  # [N, K] int8, [], {dtype: [N, K]}
        y = int8_linear(q, s, codes, g, bias, x.dtype)  # [M, N]
        ctx.save_for_backward(x, norm_weight, q, s, rstd, codes, g)
        ctx.wq_cache = wq_cache
        ctx.weight_dtype = weight.dtype
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        x, norm_weight, q, s, rstd, codes, g = ctx.saved_tensors
        dy = dy.contiguous()  # [M, N]
        dt = dy.dtype
        dx = dnw = dw = db = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            dxn = dy @ dequantized_weight(codes, g, dt, ctx.wq_cache)  # [M, K]
            nw_dtype = norm_weight.dtype if norm_weight is not None else torch.float32
            dx, _, dnw = rms_gate_bwd(dxn, x, None, norm_weight, rstd, nw_dtype)
        if ctx.needs_input_grad[2]:
            dw = (dy.t() @ dequant(q, s, dt)).to(ctx.weight_dtype)  # [N, K]
        if ctx.has_bias and ctx.needs_input_grad[3]:
            db = dy.float().sum(0).to(dt)  # [N]
        return dx, dnw, dw, db, None


def bitlinear_triton(
    x: torch.Tensor,
    norm_weight: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Fused BitLinear: RMSNorm -> int8 activation quant -> ternary weight -> linear (STE backward).

    Args:
        x: `[..., K]` input; norm_weight: `[K]` or None; weight: `[N, K]` master weight; bias: `[N]` or None.
    Returns:
        `[..., N]` in x's dtype.
    """
    K = x.shape[-1]
    if weight.ndim != 2 or weight.shape[1] != K:
        raise ValueError(f"bitlinear: weight must be [N, {K}]; got {tuple(weight.shape)}")
    N = weight.shape[0]
    if norm_weight is not None and tuple(norm_weight.shape) != (K,):
        raise ValueError(f"bitlinear: norm_weight must be [{K}]; got {tuple(norm_weight.shape)}")
    if bias is not None and tuple(bias.shape) != (N,):
        raise ValueError(f"bitlinear: bias must be [{N}]; got {tuple(bias.shape)}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"bitlinear (triton): x must be fp32, fp16 or bf16; got {x.dtype}")
    rows = x.reshape(-1, K).contiguous()  # [M, K]
    y = BitLinearFunction.apply(rows, norm_weight, weight, bias, eps)  # [M, N]
    return y.reshape(*x.shape[:-1], N)
