"""The element-wise, norm and tiled MLGRU training kernels, the "prequant" and "fold" decode kernels and the
greedy token pick compile for an H200 (sm_90) on a machine without a GPU.

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
from mmfree.ops.mlgru import triton_tiled as tt
from mmfree.ops.quant.triton import _ternarize_kernel
from mmfree.ops.ternary import fold as fd
from mmfree.ops.ternary import prequant as pq


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
    flags = {"HAS_H0": True, "HAS_LB": True, "HAS_RESET": True, "HAS_MASK": True}
    scan = {"F": f"*{dt}", "C": f"*{dt}", "LB": "*fp32", "H0": "*fp32", "RESET": "*i8", "MASK": "*fp32",
            "H": f"*{dt}", "FINAL": "*fp32", "DO": f"*{dt}", "DFINAL": "*fp32", "DF": f"*{dt}", "DC": f"*{dt}",
            "DH0": "*fp32", "DLB": "*fp32"}
    # (EVEN, tile): the compiler's columns, one, two per thread; segments on warps; 0-2 tiles loaded ahead
    for even, t in ((True, (32, 32, 4, 1)), (False, (32, 32, 4, 1, 1, 0)), (True, (32, 64, 1, 2, 1, 2)),
                    (False, (32, 32, 1, 0)), (True, (64, 64, 4, 2, 4)), (False, (64, 32, 2, 0, 2, 2))):
        fast = t[3] != 1  # the MUFU sigmoid or the plain formula
        for kernel, back in ((tt._fwd_tiled_kernel, False), (tt._bwd_tiled_kernel, True)):
            tile = {"D": 1024, "FAST": fast, "EVEN": even, "HAS_DFINAL": back, **flags, **tt.tile_constexprs(t, back)}
            if not back:
                del tile["HAS_DFINAL"]
            out.append(ptx(kernel, scan, tile, t[2]))
    assert all(".target sm_90" in p for p in out), dt
    print("compiled", dt, len(out))

# the "prequant" decode kernels (launched with programmatic dependent launch by default)
BF = "*bf16"
qp = {"X": BF, "H": BF, "W1": BF, "WA": BF, "WB": BF, "WC": BF, "Q": "*i8", "S": "*fp32", "QS": "*i32"}
quant = {"PDL": True, "T": 512, "EA": 16, "EB": 0}
out = [ptx(pq._quant_kernel, {**qp, "H": "*fp32"}, {**quant, "MODE": 2}, 16),
       ptx(pq._quant_kernel, {**qp, "H": "*fp32"}, {**quant, "MODE": 2, "EA": 8, "EB": 2}, 16),  # two pieces
       ptx(pq._quant_kernel, qp, {**quant, "MODE": 1, "T": 128}, 4),
       ptx(pq._quant_kernel, {**qp, "H": "*fp32"}, {**quant, "MODE": 3, "EA": 8, "EB": 2}, 16)]  # "silu"
gemv = {"ASM": True, "PDL": True, "LATE": False, "QNEXT": False, "ONE": False, "BLOCK_N": 16, "BLOCK_Q": 256}
one = {**gemv, "ONE": True, "QNEXT": True, "BLOCK_N": 4, "BLOCK_Q": 4096}  # a whole 13B row in one tile
words = {"X": BF, "Q": "*i32", "S": "*fp32", "QS": "*i32", "SH": "*fp32"}
out.append(ptx(pq._mlgru_in_kernel, {**words, "PI": "*i32", "PF": "*i32", "PG": "*i32", "GI": "*fp32",
               "GF": "*fp32", "GG": "*fp32", "LB": "*fp32", "H": "*fp32", "OUT": BF},
               {**gemv, "HAS_LB": True, "OFFICIAL": False, "SILU": False}, 4))
out.append(ptx(pq._mlgru_in_kernel, {**words, "PI": "*i32", "PF": "*i32", "PG": "*i32", "GI": "*fp32",
               "GF": "*fp32", "GG": "*fp32", "LB": "*fp32", "H": "*fp32", "OUT": BF},
               {**gemv, "HAS_LB": True, "OFFICIAL": True, "QNEXT": True, "LATE": True, "SILU": True}, 4))
out.append(ptx(pq._bitlinear_kernel, {**words, "P": "*i32", "G": "*fp32", "Y": BF}, {**gemv, "RESIDUAL": True,
               "BQ2": 0, "LANES": 0}, 4))
out.append(ptx(pq._glu_in_kernel, {**words, "P": "*i32", "G": "*fp32", "U": BF}, gemv, 4))
out.append(ptx(pq._glu_in_kernel, {**words, "P": "*i32", "G": "*fp32", "U": BF}, {**gemv, "QNEXT": True}, 4))
out.append(ptx(pq._bitlinear_kernel, {**words, "P": "*i32", "G": "*fp32", "Y": BF},
               {**gemv, "RESIDUAL": True, "LATE": True, "QNEXT": True, "BQ2": 0, "LANES": 0}, 4))
out.append(ptx(pq._mlgru_in_kernel, {**words, "PI": "*i32", "PF": "*i32", "PG": "*i32", "GI": "*fp32",
               "GF": "*fp32", "GG": "*fp32", "LB": "*fp32", "H": "*fp32", "OUT": BF},
               {**one, "HAS_LB": True, "OFFICIAL": False, "SILU": False}, 4))
out.append(ptx(pq._bitlinear_kernel, {**words, "P": "*i32", "G": "*fp32", "Y": BF}, {**one, "RESIDUAL": True,
               "BQ2": 0, "LANES": 0}, 4))
out.append(ptx(pq._bitlinear_kernel, {**words, "P": "*i32", "G": "*fp32", "Y": BF},  # "wsplit": 1024 + 256 bytes
               {**one, "RESIDUAL": True, "BLOCK_N": 8, "BLOCK_Q": 1024, "BQ2": 256, "LANES": 0}, 4))
out.append(ptx(pq._bitlinear_kernel, {**words, "P": "*i32", "G": "*fp32", "Y": BF},  # "wmac": one asm a word
               {**one, "ASM": 2, "RESIDUAL": True, "BQ2": 0, "LANES": 0}, 4))
out.append(ptx(pq._glu_in_kernel, {**words, "P": "*i32", "G": "*fp32", "U": BF}, {**gemv, "ASM": 2, "QNEXT": True}, 4))
for asm in (1, 2):  # "wvec": 2 words a thread (13B o_proj / head), with and without "wmac"
    out.append(ptx(pq._bitlinear_kernel, {**words, "P": "*i32", "G": "*fp32", "Y": BF},
                   {**one, "ASM": asm, "RESIDUAL": True, "BLOCK_N": 8, "BLOCK_Q": 1024, "BQ2": 256, "LANES": 128}, 4))
out.append(ptx(pq._glu_in_kernel, {**words, "P": "*i32", "G": "*fp32", "U": BF}, {**one, "LATE": True}, 4))
assert all(".target sm_90" in p and "griddepcontrol" in p for p in out)
print("compiled prequant", len(out))

# the "fold" decode kernels at the tiles of fold.FOLD_TILES
out = []
for bw, bn, w in ((64, 8, 4), (128, 16, 8), (512, 16, 8)):
    c = {"ASM": True, "PDL": True, "BLOCK_N": bn, "BW": bw}
    out.append(ptx(fd._mlgru_in_kernel, {"X": BF, "WA": BF, "WI": BF, "WF": BF, "WG": BF, "PI": "*i32",
                   "PF": "*i32", "PG": "*i32", "GI": "*fp32", "GF": "*fp32", "GG": "*fp32", "LB": "*fp32",
                   "H": "*fp32", "OUT": BF, "SH": "*fp32"}, {**c, "LATE": bw > 64, "HAS_LB": True,
                   "OFFICIAL": bw > 64, "SILU": bw > 64}, w))
    for mode in (0, 1, 2, 3):
        out.append(ptx(fd._bitlinear_kernel, {"X": BF, "H": "*fp32", "W1": BF, "W2": BF, "G": "*fp32",
                       "P": "*i32", "Y": BF}, {**c, "LATE": mode == 0, "MODE": mode, "RESIDUAL": mode != 1}, w))
    out.append(ptx(fd._glu_in_kernel, {"X": BF, "WM": BF, "W2": BF, "G": "*fp32", "P": "*i32", "U": BF}, c, w))
out.append(ptx(fd._glu_in_kernel, {"X": BF, "WM": BF, "W2": BF, "G": "*fp32", "P": "*i32", "U": BF},  # "wmac"
               {"ASM": 2, "PDL": True, "BLOCK_N": 16, "BW": 128}, 8))
# the 1.3B down_proj's row under its register cap (fold.FOLD_MAX_REGS), as `fold.bitlinear_step` launches it
c = {"ASM": True, "PDL": True, "BLOCK_N": 16, "BW": 512, "LATE": True, "MODE": 0, "RESIDUAL": True}
src = ASTSource(fn=fd._bitlinear_kernel, signature={n: "constexpr" if n in c else {"X": BF, "H": "*fp32",
                "W1": BF, "W2": BF, "G": "*fp32", "P": "*i32", "Y": BF}.get(n, "i32")
                for n in fd._bitlinear_kernel.arg_names},
                constexprs={(fd._bitlinear_kernel.arg_names.index(k),): v for k, v in c.items()})
cap = fd.FOLD_MAX_REGS[("bitlinear", 512)]
capped = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 8, "maxnreg": cap})
out.append(capped.asm["ptx"])
assert f".maxnreg {cap}" in out[-1]
assert all(".target sm_90" in p and "griddepcontrol" in p and "dp4a" in p for p in out)
print("compiled fold", len(out))

# the greedy token pick, as the decode graph launches it (PDL, 32 warps, one 32768-value pass)
from mmfree.ops.argmax import triton as am

out = [ptx(am._argmax_kernel, {"X": xt, "OUT": "*i64"}, {"PDL": True, "BLOCK": am.MAX_BLOCK}, am.WARPS)
       for xt in ("*fp32", "*bf16")]
assert all(".target sm_90" in p and "griddepcontrol" in p for p in out)
print("compiled argmax", len(out))
"""


def test_kernels_compile_for_sm90() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("compiled") == 5
