"""The dp4a helper of the fused decode kernels against int64 arithmetic on the bytes of random words.

Under TRITON_INTERPRET=1 this checks the spelled-out sum (the interpreter has no inline assembly); on a GPU
(`-m gpu`) the same test checks the one-instruction `dp4a.s32.s32`.
"""

from __future__ import annotations

import os

import pytest
import torch
from _ops_tol import triton_ready

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
from mmfree.ops.ternary.fused_parts import _dp4a  # noqa: E402

needs_triton = pytest.mark.skipif(not triton_ready(), reason="needs Triton and a GPU or TRITON_INTERPRET=1")


def _signed_bytes(w: torch.Tensor) -> torch.Tensor:
    """`[n]` int32 words -> `[n, 4]` int64 signed bytes, least significant first."""
    u = w.to(torch.int64) & 0xFFFFFFFF  # [n]
    b = torch.stack([(u >> (8 * t)) & 0xFF for t in range(4)], dim=1)  # [n, 4]
    return torch.where(b >= 128, b - 256, b)


@triton.jit
def _dp4a_kernel(A, B, C, Out, n, ASM: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = _dp4a(tl.load(A + i, mask=m), tl.load(B + i, mask=m), tl.load(C + i, mask=m), ASM)
    tl.store(Out + i, x, mask=m)


def _run_dp4a(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, asm: bool) -> torch.Tensor:
    out = torch.empty_like(c)
    _dp4a_kernel[(triton.cdiv(c.numel(), 128),)](a, b, c, out, c.numel(), ASM=asm, BLOCK=128)
    return out


def _check(device: str, gen: torch.Generator, asm: bool) -> None:
    n = 1000
    a = torch.randint(-(2**31), 2**31, (n,), generator=gen, dtype=torch.int64).to(torch.int32)  # [n]
    b = torch.randint(-(2**31), 2**31, (n,), generator=gen, dtype=torch.int64).to(torch.int32)  # [n]
    c = torch.randint(-(2**20), 2**20, (n,), generator=gen, dtype=torch.int64).to(torch.int32)  # [n]
    a[:4] = torch.tensor([0x03030303, -1, -(2**31), 0x7F807F80], dtype=torch.int32)  # codes, all -1, extremes
    b[:4] = torch.tensor([-1, -1, -(2**31), 0x7F807F80], dtype=torch.int32)
    want = c.to(torch.int64) + (_signed_bytes(a) * _signed_bytes(b)).sum(1)  # [n]
    got = _run_dp4a(a.to(device), b.to(device), c.to(device), asm).cpu()
    assert torch.equal(got.to(torch.int64), want)


@pytest.mark.interpret
@needs_triton
def test_dp4a_sum_matches_byte_arithmetic(gen: torch.Generator) -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("the spelled-out sum runs under the interpreter; the GPU test checks the instruction")
    _check("cpu", gen, asm=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("asm", [True, False])
def test_dp4a_instruction_matches_byte_arithmetic(gen: torch.Generator, asm: bool) -> None:
    _check("cuda", gen, asm=asm)
