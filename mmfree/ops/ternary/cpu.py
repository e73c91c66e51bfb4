"""CPU paths for packed ternary weights (the weights stay at 2 bits in memory).

- `ternary_matmul_cpp` (the default): a C++ kernel (`cpu_kernel.cpp`) that streams the packed bytes once,
  unpacks them in SIMD registers and accumulates exact int32 dot products (AVX-512 VNNI, AVX2, or scalar,
  picked at run time). `load_cpp_kernel` builds it with `torch.utils.cpp_extension` at first use (once per
  machine, about 10 s, cached in torch's extensions dir: $TORCH_EXTENSIONS_DIR or ~/.cache/torch_extensions);
  without a C++ compiler or ninja it logs one warning saying why and the callers fall back to the eager path.
- `ternary_matmul_cpu`: unpack the codes to fp32 and multiply in fp32. Every product and partial sum is
  an integer below 2^24 (|x| <= 128, K < 2^17), so the result equals the int32 reference exactly.
- `ternary_gemv_compiled`: one row (batch-1 decoding) through a `torch.compile`d (inductor C++) loop that
  reads each packed byte once and unpacks it in registers; again exact. Compiling needs a C++ compiler
  and takes seconds per shape the first time; without one it falls back (logged once) to the eager path.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mmfree.ops.ternary.naive import SHIFTS, unpack_2bit

logger = logging.getLogger("mmfree")
EXACT_MAX_K = 1 << 17  # beyond this fp32 sums of int8 x ternary products could round
_compiled: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
_compile_failed = False
CPP_ISAS = ("auto", "avx512vnni", "avx2", "scalar")
_CPP_SOURCE = Path(__file__).with_name("cpu_kernel.cpp")
_cpp_lock = threading.Lock()
_cpp_state: dict[str, str | bool] = {"loaded": False, "error": ""}
_cpp_ops: dict[str, Callable[..., torch.Tensor]] = {}  # the op overloads, looked up once


def _quarters(xq: torch.Tensor, Kq: int) -> torch.Tensor:
    """`[M, K]` int8 -> `[M, 4, Kq]` fp32, zero-padded to 4 Kq columns (quarter j = columns j Kq ...)."""
    M, K = xq.shape
    x = torch.zeros(M, 4 * Kq, dtype=torch.float32, device=xq.device)  # [M, 4Kq]
    x[:, :K] = xq
    return x.view(M, 4, Kq)


def _gemv_planes(x4: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """`sum_j sum_i (c_j[n, i] - 1) x4[j, i]` with x4 `[4, Kq]` fp32, packed `[N, Kq]` uint8 -> `[N]`."""
    acc = (((packed >> SHIFTS[0]) & 3).to(torch.float32) * x4[0]).sum(-1)  # [N]
    for j in range(1, 4):
        acc = acc + (((packed >> SHIFTS[j]) & 3).to(torch.float32) * x4[j]).sum(-1)  # [N]
    return acc - x4.sum()


def ternary_matmul_cpu(
    xq: torch.Tensor, packed: torch.Tensor, K: int, scale: torch.Tensor, out_dtype: torch.dtype
) -> torch.Tensor:
    """`(xq @ W^T) * scale[:, None]` by unpacking to fp32: xq `[M, K]` int8, packed `[N, Kq]`, scale `[M]`."""
    if K > EXACT_MAX_K:
        from mmfree.ops.ternary.naive import ternary_matmul_naive

        return ternary_matmul_naive(xq, packed, K, scale, out_dtype)
    w = unpack_2bit(packed, K, torch.float32)  # [N, K]
    acc = xq.float() @ w.t()  # [M, N], exact integers
    return (acc * scale.float()[:, None]).to(out_dtype)


def ternary_gemv_compiled(
    xq: torch.Tensor, packed: torch.Tensor, K: int, scale: torch.Tensor, out_dtype: torch.dtype
) -> torch.Tensor:
    """As `ternary_matmul_cpu` for few rows, through the compiled byte-streaming loop (one call per row)."""
    global _compiled, _compile_failed
    if _compile_failed or K > EXACT_MAX_K:
        return ternary_matmul_cpu(xq, packed, K, scale, out_dtype)
    if _compiled is None:
        import torch._dynamo as dynamo

        # one static graph per weight shape (a model has about five); dynamic shapes run 2x slower here
        dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, 64)
        _compiled = torch.compile(_gemv_planes, dynamic=False, fullgraph=True)
    Kq = packed.shape[1]
    x4 = _quarters(xq, Kq)  # [M, 4, Kq]
    try:
        acc = torch.stack([_compiled(x4[m], packed) for m in range(xq.shape[0])])  # [M, N]
    except Exception as err:  # no C++ compiler, or inductor cannot build here
        _compile_failed = True
        logger.warning("mmfree ternary CPU kernel: torch.compile failed (%s); using the eager path", err)
        return ternary_matmul_cpu(xq, packed, K, scale, out_dtype)
    return (acc * scale.float()[:, None]).to(out_dtype)


def _build_cpp() -> None:
    """Compile (or reuse the cached build of) `cpu_kernel.cpp` and register `torch.ops.mmfree_ternary`."""
    from torch.utils import cpp_extension

    if not _CPP_SOURCE.is_file():
        raise RuntimeError(f"{_CPP_SOURCE} is missing (the install left out package data; reinstall mmfree)")
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler found ({compiler!r} is not on PATH; install g++ or set $CXX)")
    if not cpp_extension.is_ninja_available():
        raise RuntimeError("ninja is not installed (`pip install ninja`)")
    start = time.perf_counter()
    cpp_extension.load(
        name="mmfree_ternary_cpu",
        sources=[str(_CPP_SOURCE)],
        extra_cflags=["-O3", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        is_python_module=False,
        verbose=False,
    )
    _register_fakes()
    _cpp_ops["scaled"] = torch.ops.mmfree_ternary.gemm_scaled.default
    _cpp_ops["int32"] = torch.ops.mmfree_ternary.gemm_int32.default
    _cpp_ops["quant"] = torch.ops.mmfree_ternary.gemm_quant.default
    logger.info(
        "mmfree ternary C++ CPU kernel ready (%s) in %.1f s",
        torch.ops.mmfree_ternary.isa(),
        time.perf_counter() - start,
    )


def _register_fakes() -> None:
    """Shape-only versions of the C++ ops, so that torch.compile can trace a model that calls them."""

    @torch.library.register_fake("mmfree_ternary::gemm_scaled")
    def _scaled(
        xq: torch.Tensor, packed: torch.Tensor, K: int, scale: torch.Tensor, isa: str = "auto"
    ) -> torch.Tensor:
        return xq.new_empty((xq.shape[0], packed.shape[0]), dtype=torch.float32)  # [M, N]

    @torch.library.register_fake("mmfree_ternary::gemm_quant")
    def _quant(
        xn: torch.Tensor, packed: torch.Tensor, K: int, g: torch.Tensor, isa: str = "auto"
    ) -> torch.Tensor:
        return xn.new_empty((xn.shape[0], packed.shape[0]), dtype=torch.float32)  # [M, N]

    @torch.library.register_fake("mmfree_ternary::gemm_int32")
    def _int32(xq: torch.Tensor, packed: torch.Tensor, K: int, isa: str = "auto") -> torch.Tensor:
        return xq.new_empty((xq.shape[0], packed.shape[0]), dtype=torch.int32)  # [M, N]


def load_cpp_kernel() -> bool:
    """Build and load the C++ kernel once per process (thread-safe); False, after ONE warning, if it cannot.

    The first call on a machine compiles it (about 10 s); later processes reuse torch's build cache.
    """
    if _cpp_state["loaded"] or _cpp_state["error"]:
        return bool(_cpp_state["loaded"])
    with _cpp_lock:
        if not (_cpp_state["loaded"] or _cpp_state["error"]):
            try:
                _build_cpp()
                _cpp_state["loaded"] = True
            except Exception as err:  # no compiler / ninja, a failed build, an unwritable cache dir
                _cpp_state["error"] = f"{type(err).__name__}: {str(err).strip()[:400]}"
                logger.warning(
                    "mmfree ternary CPU kernel: the C++ kernel could not be built (%s); using the slower eager "
                    "path. Fix: install a C++ compiler (g++) and ninja (`pip install ninja`), or set "
                    "MMFREE_TERNARY_CPU=eager (or compiled) to choose another kernel and silence this.",
                    _cpp_state["error"],
                )
    return bool(_cpp_state["loaded"])


def cpp_kernel_error() -> str:
    """Why the C++ kernel could not be built ('' when it was built or has not been tried)."""
    return str(_cpp_state["error"])


def ternary_matmul_cpp(
    xq: torch.Tensor,
    packed: torch.Tensor,
    K: int,
    scale: torch.Tensor,
    out_dtype: torch.dtype,
    isa: str = "auto",
) -> torch.Tensor:
    """`(xq @ W^T) * scale[:, None]` through the C++ kernel (exact int32 sums); falls back to the eager path
    when the kernel cannot be built. xq `[M, K]` int8, packed `[N, Kq]` uint8, scale `[M]` -> `[M, N]`.

    isa: "auto" (the best this CPU has) or "avx512vnni" / "avx2" / "scalar" to force one (tests).
    """
    if isa not in CPP_ISAS:
        raise ValueError(f"unknown instruction set {isa!r}; choose one of {', '.join(CPP_ISAS)}")
    if not _cpp_ops and not load_cpp_kernel():
        return ternary_matmul_cpu(xq, packed, K, scale, out_dtype)
    y = _cpp_ops["scaled"](xq.contiguous(), packed.contiguous(), K, scale.float().contiguous(), isa)  # [M, N]
    return y if out_dtype == torch.float32 else y.to(out_dtype)


def ternary_quant_matmul_cpp(
    xn: torch.Tensor, packed: torch.Tensor, K: int, g: torch.Tensor, out_dtype: torch.dtype, isa: str = "auto"
) -> torch.Tensor | None:
    """`int8_codes(xn)` then `ternary_matmul_cpp(codes, packed, K, g / s)` in one C++ call, bit for bit the
    same result: xn `[M, K]` (the normalized BitLinear input), packed `[N, Kq]`, g the 0-d fp32 weight scale
    -> `[M, N]` in out_dtype. None when the kernel cannot be built (the caller takes the unfused path)."""
    if isa not in CPP_ISAS:
        raise ValueError(f"unknown instruction set {isa!r}; choose one of {', '.join(CPP_ISAS)}")
    if not _cpp_ops and not load_cpp_kernel():
        return None
    y = _cpp_ops["quant"](xn.float().contiguous(), packed.contiguous(), K, g.float(), isa)  # [M, N]
    return y if out_dtype == torch.float32 else y.to(out_dtype)


def ternary_int32_cpp(xq: torch.Tensor, packed: torch.Tensor, K: int, isa: str = "auto") -> torch.Tensor:
    """The exact int32 dot products `xq @ W^T` `[M, N]` from the C++ kernel (RuntimeError if it cannot build)."""
    if isa not in CPP_ISAS:
        raise ValueError(f"unknown instruction set {isa!r}; choose one of {', '.join(CPP_ISAS)}")
    if not _cpp_ops and not load_cpp_kernel():
        raise RuntimeError(f"the mmfree ternary C++ kernel is unavailable: {cpp_kernel_error()}")
    return _cpp_ops["int32"](xq.contiguous(), packed.contiguous(), K, isa)  # [M, N]
