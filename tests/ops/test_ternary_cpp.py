"""The C++ CPU ternary kernel: bit-exact against the integer reference on every instruction set this CPU
has, default CPU dispatch, one logged warning when it cannot be built, and whole-model logits equal to eager.

The first test builds the kernel (about 10 s once per machine, then cached by torch; the time is printed).
"""

from __future__ import annotations

import logging
import time

import pytest
import torch

from mmfree.ops.quant import int8_codes
from mmfree.ops.ternary import (
    CPU_ENV_VAR,
    cpu_kernel_choice,
    pack_2bit,
    ternary_matmul,
    ternary_matmul_naive,
    unpack_2bit,
)
from mmfree.ops.ternary import cpu as cpu_mod
from mmfree.ops.ternary.cpu import (
    load_cpp_kernel,
    ternary_int32_cpp,
    ternary_matmul_cpp,
    ternary_quant_matmul_cpp,
)

ISA_ORDER = ("scalar", "avx2", "avx512vnni")  # each CPU can run its best one and every one before it
SHAPES_K = (1, 3, 5, 37, 150, 1023)
SHAPES_N = (1, 7, 33)
SHAPES_M = (1, 3, 17)


@pytest.fixture(scope="module")
def isas() -> list[str]:
    """Build (or load the cached build of) the kernel once; the instruction sets it can run here."""
    start = time.perf_counter()
    assert load_cpp_kernel(), f"the C++ kernel did not build: {cpu_mod.cpp_kernel_error()}"
    best = torch.ops.mmfree_ternary.isa()
    print(f"C++ ternary kernel ready in {time.perf_counter() - start:.1f} s (best instruction set: {best})")
    return list(ISA_ORDER[: ISA_ORDER.index(best) + 1])


def _random_packed(N: int, K: int, gen: torch.Generator) -> torch.Tensor:
    """`[N, ceil(K/4)]` packed weight whose padding columns hold random codes too (as random_packed_model)."""
    Kq = (K + 3) // 4
    codes = torch.randint(-1, 2, (N, 4 * Kq), generator=gen, dtype=torch.int8)  # [N, 4 Kq]
    return pack_2bit(codes)  # same bytes per row as for K columns


def test_cpp_kernel_is_exact_on_odd_shapes(isas: list[str], gen: torch.Generator) -> None:
    for isa in isas:
        for K in SHAPES_K:
            for N in SHAPES_N:
                packed = _random_packed(N, K, gen)
                w = unpack_2bit(packed, K).long()  # [N, K]
                for M in SHAPES_M:
                    xq = torch.randint(-128, 128, (M, K), generator=gen, dtype=torch.int8)  # [M, K]
                    exact = (xq.long() @ w.t()).to(torch.int32)  # [M, N]
                    got = ternary_int32_cpp(xq, packed, K, isa)
                    assert got.dtype == torch.int32 and torch.equal(got, exact), (isa, M, N, K)
                    scale = torch.rand(M, generator=gen) + 0.01  # [M]
                    ref = ternary_matmul_naive(xq, packed, K, scale, torch.float32)  # [M, N]
                    assert torch.equal(ternary_matmul_cpp(xq, packed, K, scale, torch.float32, isa), ref), (
                        isa,
                        M,
                        N,
                        K,
                    )


@pytest.mark.parametrize("M,N,K", [(70, 5, 300), (2, 130, 4100)])
def test_cpp_kernel_extremes_and_tiles(isas: list[str], M: int, N: int, K: int, gen: torch.Generator) -> None:
    # -128 everywhere against all +1 / all -1 rows (the largest sums), more rows than one activation tile
    packed = torch.cat([pack_2bit(torch.ones(1, K, dtype=torch.int8)), _random_packed(N - 1, K, gen)])
    packed[-1] = pack_2bit(-torch.ones(1, K, dtype=torch.int8))[0]
    xq = torch.randint(-128, 128, (M, K), generator=gen, dtype=torch.int8)  # [M, K]
    xq[0] = -128
    exact = (xq.long() @ unpack_2bit(packed, K).long().t()).to(torch.int32)  # [M, N]
    assert int(exact[0, 0]) == -128 * K
    for isa in isas:
        assert torch.equal(ternary_int32_cpp(xq, packed, K, isa), exact), isa


def test_cpu_dispatch_defaults_to_cpp(isas: list[str], monkeypatch: pytest.MonkeyPatch, gen) -> None:
    monkeypatch.delenv(CPU_ENV_VAR, raising=False)
    assert cpu_kernel_choice() == "cpp"
    monkeypatch.setenv(CPU_ENV_VAR, "eager")
    assert cpu_kernel_choice() == "eager" and cpu_kernel_choice("cpp") == "cpp"
    monkeypatch.setenv(CPU_ENV_VAR, "fast")
    with pytest.raises(ValueError, match=CPU_ENV_VAR):
        cpu_kernel_choice()
    with pytest.raises(ValueError, match="instruction set"):
        ternary_matmul_cpp(
            torch.zeros(1, 4, dtype=torch.int8),
            _random_packed(2, 4, gen),
            4,
            torch.ones(1),
            torch.float32,
            "sse9",
        )
    monkeypatch.delenv(CPU_ENV_VAR)
    K, N, M = 37, 9, 3
    packed = _random_packed(N, K, gen)
    xq = torch.randint(-128, 128, (M, K), generator=gen, dtype=torch.int8)  # [M, K]
    scale = torch.rand(M, generator=gen)  # [M]
    for dtype in (torch.float32, torch.bfloat16):
        got = ternary_matmul(xq, packed, K, scale, dtype)
        assert got.dtype == dtype and torch.equal(got, ternary_matmul_naive(xq, packed, K, scale, dtype))


@pytest.mark.parametrize("M,K", [(1, 37), (3, 150), (17, 1023)])
def test_fused_quantization_equals_int8_codes_then_gemm(isas: list[str], M: int, K: int, gen) -> None:
    """gemm_quant (int8 quantization in the C++ call) against `int8_codes` + gemm_scaled: the same bits,
    rows with rounding ties (values k + 0.5 at amax 127) and an all-zero row included."""
    packed = _random_packed(33, K, gen)
    g = torch.rand((), generator=gen) + 0.01  # 0-d fp32 weight scale
    xn = torch.randn(M, K, generator=gen) * torch.rand(M, 1, generator=gen) * 10  # [M, K]
    xn[0, : min(K, 8)] = torch.tensor([127.0, -0.5, 1.5, 2.5, -3.5, 64.5, -126.5, 0.5])[: min(K, 8)]
    if M > 1:
        xn[1] = 0.0
    q, s = int8_codes(xn)  # [M, K], [M, 1]
    for isa in isas:
        want = ternary_matmul_cpp(q, packed, K, g / s.squeeze(-1), torch.float32, isa=isa)  # [M, 33]
        got = ternary_quant_matmul_cpp(xn, packed, K, g, torch.float32, isa=isa)
        assert got is not None and torch.equal(got, want), isa
    got16 = ternary_quant_matmul_cpp(xn.bfloat16(), packed, K, g, torch.bfloat16)
    q16, s16 = int8_codes(xn.bfloat16())
    want16 = ternary_matmul_cpp(q16, packed, K, g / s16.squeeze(-1), torch.bfloat16)
    assert got16 is not None and got16.dtype == torch.bfloat16 and torch.equal(got16, want16)


def test_build_failure_warns_once_and_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, gen: torch.Generator
) -> None:
    monkeypatch.setattr(cpu_mod, "_cpp_state", {"loaded": False, "error": ""})
    monkeypatch.setattr(cpu_mod, "_cpp_ops", {})
    monkeypatch.setattr(cpu_mod.shutil, "which", lambda name: None)  # no compiler on PATH
    K, N = 10, 6
    packed = _random_packed(N, K, gen)
    xq = torch.randint(-128, 128, (2, K), generator=gen, dtype=torch.int8)  # [2, K]
    scale = torch.rand(2, generator=gen)  # [2]
    with caplog.at_level(logging.WARNING, logger="mmfree"):
        for _ in range(3):
            got = ternary_matmul(xq, packed, K, scale, cpu_kernel="cpp")
            assert torch.equal(got, ternary_matmul_naive(xq, packed, K, scale, torch.float32))
    warnings = [r for r in caplog.records if "could not be built" in r.getMessage()]
    assert len(warnings) == 1
    assert "no C++ compiler" in warnings[0].getMessage() and "pip install ninja" in warnings[0].getMessage()
    with pytest.raises(RuntimeError, match="unavailable"):
        ternary_int32_cpp(xq, packed, K)
    assert ternary_quant_matmul_cpp(xq.float(), packed, K, scale[0], torch.float32) is None


def test_build_reports_missing_ninja(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    with pytest.raises(RuntimeError, match="ninja"):
        cpu_mod._build_cpp()


def test_packed_model_logits_cpp_equal_eager(isas: list[str]) -> None:
    from mmfree.infer.packed import random_packed_model, set_cpu_kernel
    from mmfree.models import MMFreeConfig

    # widths 44 and 90: rows of 11 and 23 bytes, K = 90 not a multiple of 4
    config = MMFreeConfig(vocab_size=97, hidden_size=44, num_hidden_layers=2, intermediate_size=90)
    model = random_packed_model(config)
    ids = torch.randint(0, 97, (2, 9))
    with torch.no_grad():
        set_cpu_kernel(model, "eager")
        ref = model(ids).logits  # [2, 9, V]
        ref_step = model(ids[:1, :1]).logits  # [1, 1, V]
        set_cpu_kernel(model, "cpp")
        got = model(ids).logits
        got_step = model(ids[:1, :1]).logits
    assert ref.abs().max() > 0
    assert torch.equal(got, ref) and torch.equal(got_step, ref_step)
