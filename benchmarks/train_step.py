"""Training throughput and peak memory: mmfree fused vs mmfree plain PyTorch vs the official-code peer vs Llama.

One full step (forward + backward + AdamW) at seq 2048 for the 370M and 1.3B presets and several batch
sizes, for (a) mmfree with MMFREE_BACKEND=triton, (b) mmfree with MMFREE_BACKEND=torch (the unoptimized
baseline), (c) the official hgrn_bit architecture built from flash-linear-attention's FusedBitLinear,
HGRN ops and FusedRMSNormSwishGate ('not installed' when `fla` does not import), (d) transformers' Llama
of matched size with SDPA attention (`mmfree.baseline_config`). Each row runs in a fresh subprocess (clean
peak memory, OOM caught per row). Pure bf16 parameters for every model. Prints one table at the end.

    python benchmarks/train_step.py            # full sweep
    python benchmarks/train_step.py --quick    # 370M at batch 8 only, fewer steps
    python benchmarks/train_step.py --grid 370m:32 --impls mmfree-triton   # chosen (preset, batch) rows
    python benchmarks/train_step.py --grid 1.3b:8 --impls mmfree-triton,fla-official --profile 12
        # ... plus one profiled step per row: device time by kernel category and the 12 longest kernels
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

IMPLS = ("mmfree-triton", "mmfree-torch", "fla-official", "llama-sdpa")
PEER = "fla-official"


def build_fla_model(preset: str) -> nn.Module:
    """The official hgrn_bit architecture from flash-linear-attention's modules and ops (raises ImportError)."""
    from fla.modules import FusedBitLinear, FusedRMSNormSwishGate, RMSNorm
    from fla.ops.hgrn import chunk_hgrn, fused_recurrent_hgrn

    from mmfree import MMFreeConfig

    cfg = MMFreeConfig.from_preset(preset)
    d, n_layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    inter = cfg.intermediate_size
    mode = os.environ.get("FLA_HGRN_MODE", "chunk")

    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.i_proj, self.f_proj, self.g_proj = (FusedBitLinear(d, d) for _ in range(3))
            self.g_norm = FusedRMSNormSwishGate(d, eps=1e-6)
            self.o_proj = FusedBitLinear(d, d)

        def forward(self, x: torch.Tensor, lb: torch.Tensor | None) -> torch.Tensor:
            f = torch.sigmoid(self.f_proj(x))  # [B, T, d]
            if lb is not None:
                f = lb + (1 - lb) * f
            i = F.silu(self.i_proj(x)) * (1 - f)  # [B, T, d]
            scan = chunk_hgrn if mode == "chunk" else fused_recurrent_hgrn
            o, _ = scan(i, f.log())
            return self.o_proj(self.g_norm(self.g_proj(x), o))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn_norm, self.mlp_norm = RMSNorm(d, eps=1e-6), RMSNorm(d, eps=1e-6)
            self.attn = Attn()
            self.gate_proj, self.down_proj = FusedBitLinear(d, 2 * inter), FusedBitLinear(inter, d)

        def forward(self, x: torch.Tensor, lb: torch.Tensor | None) -> torch.Tensor:
            x = x + self.attn(self.attn_norm(x), lb)
            gate, y = self.gate_proj(self.mlp_norm(x)).chunk(2, -1)
            return x + self.down_proj(F.silu(gate) * y)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, d)
            self.layers = nn.ModuleList(Block() for _ in range(n_layers))
            self.lower_bounds = nn.Parameter(torch.zeros(n_layers, d))
            self.norm = RMSNorm(d, eps=1e-6)
            self.lm_head = FusedBitLinear(d, vocab)

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> Any:
            x = self.embed(input_ids)  # [B, T, d]
            lbs = self.lower_bounds.float().softmax(0).cumsum(0)
            lbs = lbs - lbs[0]  # layer 0 gets bound 0
            for k, layer in enumerate(self.layers):
                x = layer(x, lbs[k].to(x.dtype) if k > 0 else None)
            logits = self.lm_head(self.norm(x))  # [B, T, V]
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten())
            return type("Out", (), {"loss": loss})()

    return Model()


def build(impl: str, preset: str) -> nn.Module:
    if impl.startswith("mmfree"):
        from mmfree import MMFreeConfig, MMFreeForCausalLM

        return MMFreeForCausalLM(MMFreeConfig.from_preset(preset))
    if impl == "fla-official":
        return build_fla_model(preset)
    from transformers import LlamaForCausalLM

    from mmfree import baseline_config

    return LlamaForCausalLM(baseline_config(preset))


def set_mlgru_tiles(spec: str) -> None:
    """Install MLGRU tile configs 'CT,BD,W,V[,S];CT,BD,W,V[,S]' (forward;backward, as `kernels.py --save-best` writes)."""
    from mmfree.ops.mlgru import triton_tiled

    triton_tiled.FWD_CONFIG, triton_tiled.BWD_CONFIG = triton_tiled.parse_tiles(spec)


# Kernel-name patterns of the profile's categories, first match wins (a heuristic over the names of this
# library's Triton kernels, flash-linear-attention's, cuBLAS/CUTLASS GEMMs and PyTorch's own).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("recurrence (MLGRU / HGRN scan)", ("mlgru", "hgrn", "_fwd_tiled", "_bwd_tiled", "lookback", "chunk_")),
    ("BitLinear quant / norm", ("norm_quant", "quant", "dequant", "bitlinear", "absmean", "ternar")),
    ("GEMM", ("gemm", "matmul", "_mm", "cutlass", "xmma", "nvjet", "cublas", "wgmma", "sm90", "int8")),
    ("norm / gate", ("norm", "rms", "swish", "gate")),
    ("loss", ("cross_entropy", "nll", "log_softmax", "_ce", "loss")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
)


def category(name: str) -> str:
    low = name.lower()
    return next(
        (cat for cat, keys in CATEGORIES if any(k in low for k in keys)), "other (elementwise, copies)"
    )


def kernel_profile(step: Any, top: int, device: str = "cuda") -> dict[str, Any]:
    """Device time of one profiled step: the `top` kernels by total time and the time per category
    (device "cpu" profiles CPU ops instead, to try this function without a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device == "cuda"
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    want = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    kernels: dict[str, list[float]] = {}
    for evt in prof.events():
        if evt.device_type != want or (not cuda and evt.cpu_parent is not None):
            continue
        row = kernels.setdefault(evt.name, [0.0, 0])
        row[0] += evt.time_range.elapsed_us() / 1e3  # ms
        row[1] += 1
    total = sum(v[0] for v in kernels.values())
    cats: dict[str, float] = {}
    for name, (ms, _) in kernels.items():
        cats[category(name)] = cats.get(category(name), 0.0) + ms
    ranked = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:top]
    return {
        "kernel_ms": total,
        "categories": sorted(cats.items(), key=lambda kv: -kv[1]),
        "top": [(name[:90], ms, int(calls)) for name, (ms, calls) in ranked],
    }


def run_row(
    impl: str,
    preset: str,
    batch: int,
    seq: int,
    warmup: int,
    steps: int,
    tiles: str = "",
    profile_top: int = 0,
    plain_sigmoid: bool = False,
) -> dict[str, Any]:
    """One (impl, preset, batch) measurement in this process."""
    if tiles and impl == "mmfree-triton":
        set_mlgru_tiles(tiles)
    if plain_sigmoid and impl == "mmfree-triton":
        from mmfree.ops.mlgru import triton_tiled

        triton_tiled.FAST_SIGMOID = False
    if impl.startswith("mmfree"):
        os.environ["MMFREE_BACKEND"] = "triton" if impl == "mmfree-triton" else "torch"
    try:
        model = build(impl, preset).cuda().to(torch.bfloat16)
    except ImportError as e:
        return {"status": "not installed", "detail": str(e)[:80]}
    vocab = (
        model.get_input_embeddings().num_embeddings
        if hasattr(model, "get_input_embeddings")
        else model.embed.num_embeddings
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, vocab, (batch, seq), device="cuda")  # [B, T]

    def step() -> None:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    try:
        for _ in range(warmup):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / steps
    except torch.OutOfMemoryError:
        return {"status": "OOM"}
    res = {
        "status": "ok",
        "tokens_per_s": batch * seq / dt,
        "step_s": dt,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }
    if profile_top:
        res["profile"] = kernel_profile(step, profile_top)
    return res


def versions() -> dict[str, str]:
    try:
        import triton

        tv = triton.__version__
    except ImportError:
        tv = "none"
    return {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__.split("+")[0],
        "triton": tv,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="370M at batch 8 only, 1 warmup + 3 steps")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma list of {IMPLS}")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument(
        "--timeout", type=int, default=900, help="seconds per row before it is reported as 'timeout'"
    )
    p.add_argument("--grid", default="", help="comma list of PRESET:BATCH rows (overrides the sweep)")
    p.add_argument(
        "--mlgru-tiles", default="", help="MLGRU tiles 'CT,BD,W,V[,S];CT,BD,W,V[,S]' for mmfree-triton"
    )
    p.add_argument("--plain-sigmoid", action="store_true", help="mmfree-triton's MLGRU with FAST_SIGMOID off")
    p.add_argument(
        "--profile", type=int, default=0, metavar="N",
        help="after timing, profile one step per row: device time by category and the N longest kernels",
    )  # fmt: skip
    p.add_argument("--row", nargs=3, metavar=("IMPL", "PRESET", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.row:
        impl, preset, batch = args.row
        print(
            "ROW "
            + json.dumps(
                run_row(
                    impl,
                    preset,
                    int(batch),
                    args.seq,
                    args.warmup,
                    args.steps,
                    args.mlgru_tiles,
                    args.profile,
                    args.plain_sigmoid,
                )
            ),
            flush=True,
        )
        return
    if not torch.cuda.is_available():
        raise SystemExit("train_step.py needs a CUDA GPU (it measures GPU training throughput)")
    impls = [i for i in args.impls.split(",") if i]
    unknown = set(impls) - set(IMPLS)
    if unknown:
        raise SystemExit(f"unknown --impls {sorted(unknown)}; choose from {IMPLS}")
    grid = [("370m", [8])] if args.quick else [("370m", [8, 16, 32]), ("1.3b", [4, 8])]
    if args.grid:
        try:
            grid = [(pb.split(":")[0], [int(pb.split(":")[1])]) for pb in args.grid.split(",")]
        except (IndexError, ValueError):
            raise SystemExit(f"--grid wants PRESET:BATCH pairs such as 370m:32; got {args.grid!r}") from None
    warmup, steps = (1, 3) if args.quick else (args.warmup, args.steps)
    results: dict[tuple[str, int, str], dict[str, Any]] = {}
    for preset, batches in grid:
        for batch in batches:
            for impl in impls:
                cmd = [
                    sys.executable,
                    __file__,
                    "--row",
                    impl,
                    preset,
                    str(batch),
                    "--seq",
                    str(args.seq),
                    "--warmup",
                    str(warmup),
                    "--steps",
                    str(steps),
                    "--mlgru-tiles",
                    args.mlgru_tiles,
                    "--profile",
                    str(args.profile),
                    *(["--plain-sigmoid"] if args.plain_sigmoid else []),
                ]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")]
                    res = (
                        json.loads(lines[-1][4:])
                        if lines
                        else {"status": "error", "detail": proc.stderr[-300:]}
                    )
                except subprocess.TimeoutExpired:
                    res = {"status": "timeout"}
                results[(preset, batch, impl)] = res
                print(f"{preset} b={batch} {impl}: {res}", file=sys.stderr, flush=True)
    v = versions()
    head = f"{'device':<22} {'date':<10} {'torch':<8} {'triton':<7} {'preset':<6} {'batch':>5} {'impl':<14} "
    head += f"{'tokens/s':>10} {'peak GiB':>9} {'tok/s vs peer':>13} {'mem vs peer':>11}"
    print(head)
    print("-" * len(head))
    for (preset, batch, impl), res in results.items():
        peer = results.get((preset, batch, PEER), {})
        prefix = f"{v['device'][:22]:<22} {v['date']:<10} {v['torch']:<8} {v['triton']:<7} {preset:<6} {batch:>5} {impl:<14} "
        if res.get("status") != "ok":
            print(prefix + f"{res.get('status', 'error'):>10}")
            continue
        ratio_t = ratio_m = "-"
        if peer.get("status") == "ok":
            ratio_t = f"{res['tokens_per_s'] / peer['tokens_per_s']:.2f}x"
            ratio_m = f"{res['peak_gib'] / peer['peak_gib']:.2f}x"
        print(prefix + f"{res['tokens_per_s']:>10.0f} {res['peak_gib']:>9.1f} {ratio_t:>13} {ratio_m:>11}")
    for (preset, batch, impl), res in results.items():
        prof = res.get("profile")
        if not prof:
            continue
        step_ms = res["step_s"] * 1e3
        print(
            f"\nprofile {preset} b={batch} {impl}: step {step_ms:.1f} ms, kernels {prof['kernel_ms']:.1f} ms"
        )
        for cat, ms in prof["categories"]:
            print(f"  {cat:<34} {ms:9.1f} ms {100 * ms / step_ms:5.1f}%")
        for name, ms, calls in prof["top"]:
            print(f"    {ms:8.2f} ms {calls:5d}x  {name}")
    errors = {k: r["detail"] for k, r in results.items() if r.get("status") == "error"}
    for k, detail in errors.items():
        print(f"error {k}: {detail}")


if __name__ == "__main__":
    main()
