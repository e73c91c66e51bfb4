"""Static SASS of the fused decode kernels, compiled for sm_90 without a GPU: registers, spills, instructions.

Compiles `mmfree.ops.ternary.fused`'s three kernels at batch 1 (1024-wide layers, BLOCK_Q 256: one pass of
the K loop, so the static count is the dynamic count of a program) for each GEMV path and tile (the
"single" prologue of earlier tables was removed with that option), with Triton's own ptxas, and reads the
cubin with its cuobjdump. Instructions per weight = static SASS instructions x threads per program /
weights per program: the issue cost a path pays per weight, which bounds a large preset's decode step
(weights x instructions per weight / 32 lanes / the GPU's warp issue rate). No GPU, no timing: a model of
the work, to be checked against `benchmarks/decode_kernels.py`.

    python benchmarks/sass_counts.py           # the fused decode kernels
    python benchmarks/sass_counts.py --scan    # the MLGRU scans against the issue budget of their target
    python benchmarks/sass_counts.py --whole   # 13B whole-row GEMVs: tiles, "wsplit", "wvec", "wmac"
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import Any

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import mmfree.ops.ternary.fused as F

CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
K = 1024  # layer width: Kq = 256 bytes, one BLOCK_Q of 256
TILES = ((8, 4), (16, 4), (32, 4), (32, 8), (64, 8))  # (BLOCK_N, num_warps)
BF = "*bf16"
KERNELS: dict[str, tuple[Any, dict[str, str], set[str], dict[str, Any], int]] = {
    # name: (kernel, pointer args (P* are the packed weights), float args, constexprs, projections)
    "mlgru input": (
        F._mlgru_in_kernel,
        {"X": BF, "WA": BF, "PI": "P", "PF": "P", "PG": "P", "WI": BF, "WF": BF, "WG": BF, "GI": "*fp32",
         "GF": "*fp32", "GG": "*fp32", "LB": "*fp32", "H": "*fp32", "OUT": BF},
        {"eps_a", "eps_i", "eps_f", "eps_g"},
        {"HAS_LB": True, "OFFICIAL": True},
        3,
    ),
    "bitlinear (gate: o_proj)": (
        F._bitlinear_kernel,
        {"X": BF, "W1": BF, "H": "*fp32", "W2": BF, "G": "*fp32", "P": "P", "Y": BF},
        {"eps1", "eps2"},
        {"MODE": 2, "RESIDUAL": True},
        1,
    ),
    "bitlinear (raw: down_proj)": (
        F._bitlinear_kernel,
        {"X": BF, "W1": BF, "H": "*fp32", "W2": BF, "G": "*fp32", "P": "P", "Y": BF},
        {"eps1", "eps2"},
        {"MODE": 0, "RESIDUAL": True},
        1,
    ),
    "glu input": (
        F._glu_in_kernel,
        {"X": BF, "WM": BF, "W2": BF, "G": "*fp32", "P": "P", "U": BF},
        {"eps1", "eps2"},
        {},
        2,
    ),
}  # fmt: skip


def compile_sass(
    kernel: Any,
    ptrs: dict[str, str],
    floats: set[str],
    consts: dict[str, Any],
    warps: int,
    div16: set[str] | None = None,
) -> tuple[int, int, list[str]]:
    """(registers, spill stack bytes, static SASS instruction lines) of one sm_90 compile.

    div16: with it, every pointer and the integer arguments it names are declared multiples of 16, as a
    launch on real tensors and shapes specializes them (without such facts the compiler cannot prove
    alignment and emits no vector loads); without it, nothing is declared.
    """
    sig = {
        n: "constexpr" if n in consts else ptrs.get(n, "fp32" if n in floats else "i32")
        for n in kernel.arg_names
    }
    aligned = set(ptrs) | div16 if div16 is not None else set()
    attrs = {(kernel.arg_names.index(n),): [["tt.divisibility", 16]] for n in aligned if n not in consts}
    src = ASTSource(
        fn=kernel,
        signature=sig,
        constexprs={(kernel.arg_names.index(k),): v for k, v in consts.items()},
        attrs=attrs,
    )
    compiled = triton.compile(
        src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "num_stages": 3}
    )
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        usage = subprocess.run(
            [CUOBJDUMP, "--dump-resource-usage", f.name], capture_output=True, text=True
        ).stdout
        sass = subprocess.run([CUOBJDUMP, "-sass", f.name], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+).*?STACK:(\d+)", usage, re.S)
    regs, stack = (int(v) for v in m.groups()) if m else (-1, -1)
    lines = [line.strip() for line in sass.splitlines() if line.strip().startswith("/*") and ";" in line]
    return regs, stack, lines


def main() -> None:
    print(f"Static SASS, sm_90, triton {triton.__version__}; batch 1, K = {K}, BLOCK_Q = 256 bytes")
    print(
        f"{'kernel':<28} {'path':<5} {'BLOCK_N':>7} {'warps':>5} {'regs':>5} {'spill B':>7} "
        f"{'SASS':>6} {'instr/weight':>12}"
    )
    for name, (kernel, ptrs, floats, consts, projs) in KERNELS.items():
        for path in (0, 1):
            packed = "*i32" if path == 1 else "*u8"
            p = {n: packed if t == "P" else t for n, t in ptrs.items()}
            for bn, warps in TILES:
                c = {**consts, "ROWS": 1, "BLOCK_N": bn, "BLOCK_Q": 256, "BLOCK_K": K, "PATH": path,
                     "ASM": path == 1, "PDL": False}  # fmt: skip
                regs, stack, lines = compile_sass(kernel, p, floats, c, warps)
                n = len(lines)
                per_weight = n * 32 * warps / (projs * bn * K)
                label = "dp4a" if path == 1 else "byte"
                print(
                    f"{name:<28} {label:<5} {bn:>7} {warps:>5} {regs:>5} {stack:>7} {n:>6} "
                    f"{per_weight:>12.2f}"
                )


# The MLGRU scans (`--scan`): instructions per element of a [CT, BD] tile against the budget that the
# scan target (70% of the copy bandwidth) leaves at the H200's issue rate: 132 SMs x 4 schedulers x 1.98 GHz
# x 32 lanes = 3.35e13 thread instructions/s, over 0.7 x 4.18 TB/s / bytes per element (forward: f, c in
# and h out, bf16: 6 B; backward: f, c, h, dh in and df, dc out: 12 B).
ISSUE_RATE = 132 * 4 * 1.98e9 * 32  # thread instructions per second
COPY_BW = 4.18e12  # bytes per second, the H200 copy bandwidth measured in BENCHMARKS.md
SCAN_PTRS = {"F": BF, "C": BF, "LB": "*fp32", "H0": "*fp32", "RESET": "*i8", "MASK": "*fp32", "H": BF}
SCAN_FLAGS = {"HAS_H0": False, "HAS_LB": True, "HAS_RESET": False, "HAS_MASK": False}


def scan_rows() -> list[tuple[str, Any, dict[str, str], dict[str, Any], int, int, int, int]]:
    """(label, kernel, pointer args, constexprs, CT, BD, warps, bytes per element) of each scan kernel."""
    from mmfree.ops.mlgru import triton_lookback as lk
    from mmfree.ops.mlgru import triton_tiled as tt

    fwd = {**SCAN_PTRS, "FINAL": "*fp32"}
    bwd = {**SCAN_PTRS, "DO": BF, "DFINAL": "*fp32", "DF": BF, "DC": BF, "DH0": "*fp32", "DLB": "*fp32"}
    look = {"FLAGS": "*i32", "AGG": "*fp32", "INC": "*fp32"}
    rows = []
    # the default tiles of B=32, T=2048, D=1024 (whole tiles), with and without the MUFU sigmoid, then
    # session 7's tiles (the compiler's column layout, one segment)
    for kind, kernel, ptrs, extra, nbytes, cfg, old in (
        ("forward", tt._fwd_tiled_kernel, fwd, {}, 6, tt.fwd_config(32, 1024), (32, 32, 1, 1, 1)),
        (
            "backward",
            tt._bwd_tiled_kernel,
            bwd,
            {"HAS_DFINAL": True},
            12,
            tt.bwd_config(32, 1024),
            (16, 32, 2, 1, 1),
        ),
    ):
        for tile, asm in ((cfg, True), (cfg, False), (old, False)):
            c = {**SCAN_FLAGS, **extra, "D": 1024, "EVEN": True, "FAST": asm}
            c.update(tt.tile_constexprs(tile, kind == "backward"))
            label = f"tiled {kind}, V={tile[3]} S={c['S']}{', fast' if asm else ''}"
            rows.append((label, kernel, ptrs, c, tile[0], tile[1], tile[2], nbytes))
    for ct, bd, w, rowwise in (lk.FWD_CONFIG, (16, 256, 1, True)):
        c = {**SCAN_FLAGS, "CT": ct, "BD": bd, "ROWWISE": rowwise, "PUBLISH_INC": True}
        rows.append(
            (
                f"look-back forward{' rowwise' if rowwise else ''}",
                lk._fwd_kernel,
                {**fwd, **look},
                c,
                ct,
                bd,
                w,
                6,
            )
        )
    for ct, bd, w, rowwise in ((16, 128, 1, False), lk.BWD_CONFIG, (16, 256, 1, True)):
        c = {**SCAN_FLAGS, "CT": ct, "BD": bd, "ROWWISE": rowwise, "PUBLISH_INC": True, "HAS_DFINAL": True}
        rows.append(
            (
                f"look-back backward{' rowwise' if rowwise else ''}",
                lk._bwd_kernel,
                {**bwd, **look},
                c,
                ct,
                bd,
                w,
                12,
            )
        )
    return rows  # fmt: skip


def scan_main() -> None:
    print(
        f"\nMLGRU scans, static sm_90 SASS, triton {triton.__version__} (static count per tile: loop bodies once;"
        " pointers and T declared multiples of 16, as at a launch with T=2048)"
    )
    print(
        f"{'kernel':<30} {'CT':>4} {'BD':>4} {'warps':>5} {'regs':>5} {'spill B':>7} {'SASS':>6} {'instr/elt':>9} {'budget':>7}"
    )
    for label, kernel, ptrs, consts, ct, bd, warps, nbytes in scan_rows():
        regs, stack, lines = compile_sass(kernel, ptrs, set(), consts, warps, div16={"T"})
        n = len(lines)
        per_elt = n * 32 * warps / (ct * bd)
        budget = ISSUE_RATE / (0.7 * COPY_BW / nbytes)
        print(
            f"{label:<30} {ct:>4} {bd:>4} {warps:>5} {regs:>5} {stack:>7} {n:>6} {per_elt:>9.1f} {budget:>7.0f}"
        )


# `--whole`: the 13B whole-row prequant BitLinear GEMVs (`prequant._bitlinear_kernel`, ONE, as `fused.
# WHOLE_TILES` launches them at batch 1): the 1280-byte rows (o_proj, head) in one power-of-two tile and as
# the "wsplit" tiles (`prequant.whole_split`), with and without "wvec" (`prequant._whole_tile`: LANES = 128);
# the 3456-byte down_proj rows at 4 and 8 rows a program; each with and without "wmac" (ASM 2, one asm block
# a weight word). After the wait (`ACQBULK`, griddepcontrol.wait) is what a program does once its codes are
# ready; barriers there are shared-memory round trips on its critical path; registers bound the programs an
# SM holds, and so how many load their weights before it.
WHOLE_ROWS = (  # (label, BLOCK_N, tiles in bytes, wvec)
    ("o_proj / head (1280 B rows)", 8, (2048,), False),
    ("o_proj / head (1280 B rows)", 8, (1024, 256), False),
    ("o_proj / head (1280 B rows)", 8, (1024, 256), True),
    ("o_proj / head (1280 B rows)", 16, (1024, 256), True),
    ("down_proj (3456 B rows)", 4, (4096,), False),
    ("down_proj (3456 B rows)", 8, (4096,), False),
)
PREQUANT_PTRS = {"X": BF, "P": "*i32", "Q": "*i32", "S": "*fp32", "QS": "*i32", "G": "*fp32", "Y": BF}


def whole_main() -> None:
    from mmfree.ops.ternary import prequant

    print(f"\n13B whole-row prequant GEMVs, static sm_90 SASS, triton {triton.__version__}, 4 warps")
    print(
        f"{'call':<28} {'rows':>4} {'tiles (bytes)':<13} {'wvec':<4} {'wmac':<4} {'regs':>5} {'SASS':>6} "
        f"{'after wait':>10} {'barriers':>8} {'programs/SM':>11}"
    )
    for label, bn, tiles, wvec in WHOLE_ROWS:
        for asm in (1, 2):
            c = {"RESIDUAL": True, "ASM": asm, "PDL": True, "LATE": False, "QNEXT": True, "ONE": True,
                 "BLOCK_N": bn, "BLOCK_Q": tiles[0], "BQ2": tiles[1] if len(tiles) > 1 else 0,
                 "LANES": 128 if wvec else 0}  # fmt: skip
            regs, _, lines = compile_sass(prequant._bitlinear_kernel, PREQUANT_PTRS, set(), c, 4, {"Kq"})
            wait = next(i for i, line in enumerate(lines) if "ACQBULK" in line)
            bars = sum("BAR." in line for line in lines[wait:])
            per_sm = min(65536 // (128 * ((regs + 7) // 8 * 8)), 16)  # 64K registers, 64 warps an SM
            name = " + ".join(str(t) for t in tiles)
            print(
                f"{label:<28} {bn:>4} {name:<13} {'yes' if wvec else 'no':<4} {'yes' if asm == 2 else 'no':<4} "
                f"{regs:>5} {len(lines):>6} {len(lines) - wait:>10} {bars:>8} {per_sm:>11}"
            )


if __name__ == "__main__":
    import sys

    if "--scan" in sys.argv[1:]:
        scan_main()
    elif "--whole" in sys.argv[1:]:
        whole_main()
    else:
        main()
