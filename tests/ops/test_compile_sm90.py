"""The element-wise and norm training kernels compile for an H200 (sm_90) on a machine without a GPU.

The interpreter runs a kernel's Python, so it accepts code that Triton's compiler rejects (a plain global
float inside `@triton.jit`, for one). Here each kernel is lowered to PTX for sm_90 by Triton's own
compiler, in every dtype and constexpr branch it is launched with, in a child process without
TRITON_INTERPRET (under it the kernels are interpreter objects that cannot be compiled). No GPU involved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from mmfree.ops.bitlinear.shared import _rms_shared_bwd_kernel
from mmfree.ops.glu.triton import _swiglu_bwd_kernel, _swiglu_fwd_kernel
from mmfree.ops.quant.triton import _ternarize_kernel


def ptx(kernel, ptrs, consts, warps):
    sig = {n: "constexpr" if n in consts else ptrs.get(n, "i32") for n in kernel.arg_names}
    cx = {(kernel.arg_names.index(k),): v for k, v in consts.items()}
    src = ASTSource(fn=kernel, signature=sig, constexprs=cx)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps}).asm["ptx"]


for dt in ("bf16", "fp32"):
    out = [
        ptx(_swiglu_fwd_kernel, {"Y": f"*{dt}", "OUT": f"*{dt}"}, {"BLOCK": 2048}, 8),
        ptx(_swiglu_bwd_kernel, {"Y": f"*{dt}", "DOUT": f"*{dt}", "DY": f"*{dt}"}, {"BLOCK": 2048}, 8),
    ]
    for wq in (True, False):
        ptrs = {"W": f"*{dt}", "INV": "*fp32", "G": "*fp32", "CODES": "*i8", "WQ": f"*{dt}" if wq else "*i8"}
        out.append(ptx(_ternarize_kernel, ptrs, {"WRITE_WQ": wq, "BLOCK": 4096}, 8))
    for nw in ("bf16", "fp32"):
        ptrs = {"X": f"*{dt}", "W": f"*{nw}", "DXN": f"*{dt}", "RSTD": "*fp32", "DX": f"*{dt}", "DWP": "*fp32"}
        out.append(ptx(_rms_shared_bwd_kernel, ptrs, {"P": 3, "PP": 4, "BLOCK_N": 2048}, 8))
    assert all(".target sm_90" in p for p in out), dt
    print("compiled", dt, len(out))
"""


def test_elementwise_kernels_compile_for_sm90() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("compiled") == 2
