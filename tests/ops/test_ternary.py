"""Packed ternary layouts (2-bit and base-3) and the CPU matmul paths against the integer reference."""

from __future__ import annotations

import pytest
import torch

from mmfree.ops.ternary import (
    pack_2bit,
    pack_base3,
    packed_cols,
    ternary_matmul,
    ternary_matmul_naive,
    unpack_2bit,
    unpack_base3,
)
from mmfree.ops.ternary.cpu import ternary_gemv_compiled


def _codes(N: int, K: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(-1, 2, (N, K), generator=gen, dtype=torch.int8)  # [N, K]


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (13, 37), (32, 64), (3, 130)])
def test_pack_roundtrip_is_bit_exact(shape: tuple[int, int], gen: torch.Generator) -> None:
    codes = _codes(*shape, gen)
    p2 = pack_2bit(codes)
    assert p2.dtype == torch.uint8 and p2.shape == (shape[0], (shape[1] + 3) // 4)
    assert torch.equal(unpack_2bit(p2, shape[1]), codes)
    p3 = pack_base3(codes)
    assert p3.shape == (shape[0], (shape[1] + 4) // 5) and int(p3.max()) <= 242
    assert torch.equal(unpack_base3(p3, shape[1]), codes)
    # 1.6-bit on disk -> 2-bit in memory gives the same bytes as packing directly
    assert torch.equal(pack_2bit(unpack_base3(p3, shape[1])), p2)


def test_layout_is_quarter_planar() -> None:
    # K = 8: byte i holds columns i, i + 2, i + 4, i + 6 in bits 0-1, 2-3, 4-5, 6-7 (code = w + 1)
    w = torch.tensor([[1, 0, -1, 1, 0, 0, -1, -1]], dtype=torch.int8)
    byte0 = (1 + 1) | ((-1 + 1) << 2) | ((0 + 1) << 4) | ((-1 + 1) << 6)
    byte1 = (0 + 1) | ((1 + 1) << 2) | ((0 + 1) << 4) | ((-1 + 1) << 6)
    assert pack_2bit(w).tolist() == [[byte0, byte1]]
    # padding columns hold w = 0 (code 1)
    assert pack_2bit(torch.tensor([[-1]], dtype=torch.int8)).tolist() == [
        [0 | (1 << 2) | (1 << 4) | (1 << 6)]
    ]


def test_bad_codes_and_shapes_raise() -> None:
    with pytest.raises(ValueError, match="lie in"):
        pack_2bit(torch.tensor([[2, 0]], dtype=torch.int8))
    with pytest.raises(ValueError, match="integer"):
        pack_2bit(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="bytes per row"):
        unpack_2bit(torch.zeros(2, 3, dtype=torch.uint8), 5)
    with pytest.raises(ValueError, match="corrupt"):
        unpack_base3(torch.full((1, 1), 250, dtype=torch.uint8), 5)
    with pytest.raises(ValueError, match="does not match"):
        ternary_matmul(
            torch.zeros(1, 8, dtype=torch.int8), torch.zeros(3, 1, dtype=torch.uint8), 8, torch.ones(1)
        )


@pytest.mark.parametrize("M,N,K", [(1, 9, 37), (5, 17, 64), (3, 33, 130)])
def test_cpu_paths_equal_integer_reference(M: int, N: int, K: int, gen: torch.Generator) -> None:
    codes = _codes(N, K, gen)
    xq = torch.randint(-128, 128, (M, K), generator=gen, dtype=torch.int8)  # [M, K]
    scale = torch.rand(M, generator=gen) + 0.1  # [M]
    exact = (xq.long() @ codes.long().t()).float() * scale[:, None]  # [M, N]
    packed = pack_2bit(codes)
    assert packed.shape[1] == packed_cols(K)
    torch.testing.assert_close(
        ternary_matmul_naive(xq, packed, K, scale, torch.float32), exact, rtol=0, atol=0
    )
    torch.testing.assert_close(ternary_matmul(xq, packed, K, scale, backend="torch"), exact, rtol=0, atol=0)


def test_compiled_cpu_gemv_is_exact(gen: torch.Generator) -> None:
    N, K = 24, 44
    codes = _codes(N, K, gen)
    xq = torch.randint(-128, 128, (2, K), generator=gen, dtype=torch.int8)  # [2, K]
    scale = torch.ones(2)
    got = ternary_gemv_compiled(xq, pack_2bit(codes), K, scale, torch.float32)
    torch.testing.assert_close(got, (xq.long() @ codes.long().t()).float(), rtol=0, atol=0)
