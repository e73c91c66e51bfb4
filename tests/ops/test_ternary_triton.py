"""Triton packed-ternary GEMV and GEMM kernels against the integer reference (interpreter and GPU)."""

from __future__ import annotations

import pytest
import torch

from tests.ops.conftest import triton_ready

pytestmark = pytest.mark.skipif(not triton_ready(), reason="needs Triton and a GPU or TRITON_INTERPRET=1")


def _case(M: int, N: int, K: int, device: str, gen: torch.Generator):
    from mmfree.ops.ternary import pack_2bit

    codes = torch.randint(-1, 2, (N, K), generator=gen, dtype=torch.int8)  # [N, K]
    xq = torch.randint(-128, 128, (M, K), generator=gen, dtype=torch.int8)  # [M, K]
    scale = torch.rand(M, generator=gen) + 0.5  # [M]
    exact = (xq.double() @ codes.double().t()) * scale.double()[:, None]  # [M, N]
    return xq.to(device), pack_2bit(codes).to(device), scale.to(device), exact


@pytest.mark.interpret
@pytest.mark.parametrize(
    "kernel,M,N,K", [("gemv", 1, 19, 37), ("gemv", 3, 40, 150), ("gemm", 5, 19, 37), ("gemm", 18, 33, 150)]
)
def test_kernels_match_reference_small(
    kernel: str, M: int, N: int, K: int, device: str, gen: torch.Generator
) -> None:
    from mmfree.ops.ternary.triton import ternary_matmul_triton

    xq, packed, scale, exact = _case(M, N, K, device, gen)
    got = ternary_matmul_triton(xq, packed, K, scale, torch.float32, kernel=kernel)
    torch.testing.assert_close(got.double().cpu(), exact, rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("M", [1, 4, 16, 100, 2048])
@pytest.mark.parametrize("N,K", [(1024, 1024), (5632, 2048), (2560, 6912), (32000, 2560)])
def test_kernels_real_shapes(M: int, N: int, K: int, gen: torch.Generator) -> None:
    from mmfree.ops.ternary.triton import ternary_matmul_triton

    xq, packed, scale, exact = _case(M, N, K, "cuda", gen)
    for kernel in ("gemv", "gemm") if M <= 16 else ("gemm",):
        got = ternary_matmul_triton(xq, packed, K, scale, torch.float32, kernel=kernel)
        torch.testing.assert_close(got.double().cpu(), exact, rtol=1e-6, atol=1e-3)
        bf = ternary_matmul_triton(xq, packed, K, scale, torch.bfloat16, kernel=kernel)
        torch.testing.assert_close(bf.double().cpu(), exact, rtol=1e-2, atol=1e-2)
