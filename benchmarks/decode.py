"""Decoding benchmark: packed ternary MatMul-free LM vs its fake-quantized form vs a Llama baseline.

GPU (default; unattended, bounded by --budget seconds, one table printed at the end):
  (a) packed: PackedBitLinear, CUDA-graph decode step through the fused kernels of `mmfree.infer.fused`
      (4 launches per layer; random ternary codes, never fp); with --unfused also `unfused`: the same model
      and graph with the module-by-module step (~10-12 launches per layer), for comparison;
  (b) fake: this library's fake-quantized bf16 model (what the official code runs), eager;
  (c) llama: transformers' Llama at matched size (`mmfree.baseline_config`), bf16, dynamic KV cache, eager.
  Rows: per-token latency, tokens/s and peak memory at batch 1/16 x prompt 128/2048; latency and memory
  against context length for (a) and (c); the floor = packed weight bytes / measured copy bandwidth.
  Latency twice: `ms/tok`, the median step between two synchronizations (the host's launch work
  included), and `loop ms`, the steady state of a greedy loop that queues each next step before reading
  the token back (`Decoder`'s order on CUDA), the same loop for every model. For this library's models also
  `gen ms`: greedy `Decoder.generate_ids` itself (on CUDA the argmax captured in the step's graph and the
  token read back off the compute stream), per token as the tokens reach the host.
CPU (--cpu): batch-1 tokens/s and weight memory, packed (eager, compiled GEMV, and the C++ SIMD kernel)
  against fp32 dense (the library's fp32 fake-quantized model, and an ideal fp32 dense model with
  pre-quantized weights). The C++ kernel is built at its first use (once per machine).

  python benchmarks/decode.py            # H200
  python benchmarks/decode.py --presets 370m --models packed --unfused --prompts 128   # fused vs unfused
  python benchmarks/decode.py --cpu      # this machine
"packed" rows are the Decoder's default (the fused step up to FUSED_AUTO_MAX_BATCH in mmfree.infer.decode,
unfused above); "fused" rows force the fused step at every batch size (its int8 tensor-core path from
batch 2, `DOT_TILES` in mmfree.ops.ternary.fused), to choose that limit:
  python benchmarks/decode.py --presets 370m --models fused,unfused --prompts 128 --batches 1,2,4,8,16
A fused model can name kernel options and batch-1 tiles (`fused[+option...][@BLOCK_NxWARPS]`, options of
`mmfree.ops.ternary.fused.KNOWN_OPTIONS`; the tile replaces GEMV_TILES, WORDS_TILES and PREQUANT_TILES for every width), to
compare them in one run on one model per preset:
  python benchmarks/decode.py --presets 370m,13b --batches 1 --prompts 128 --contexts "" \
      --models fused,fused+dp4a,fused+pdl,fused+dp4a+prequant+pdl,fused+dp4a@32x8
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from decode_kernels import copy_bandwidth, set_tile, tile_tables  # benchmarks/ (the script's own folder)
from torch import nn

import mmfree.ops.ternary.fused as fused_ops
from mmfree.infer.decode import Decoder
from mmfree.infer.packed import random_packed_model, set_cpu_kernel, weight_bytes
from mmfree.infer.sampling import SamplingParams
from mmfree.layers import BitLinear
from mmfree.models import MMFreeConfig, MMFreeForCausalLM, baseline_config
from mmfree.ops.norm import rms_norm
from mmfree.ops.quant import act_quant

GIB = 2**30


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def time_decode(
    prefill: Callable[[torch.Tensor], Any],
    step: Callable[[torch.Tensor, Any], torch.Tensor],
    batch: int,
    prompt: int,
    steps: int,
    vocab: int,
    device: str,
    gen: Callable[..., Any] | None = None,
) -> dict[str, float]:
    """Prefill a random prompt, then time `steps` greedy decode steps, each between two synchronizations
    (ms_tok: the median step with its host work) and, on CUDA, as a generation loop (loop_ms, `time_loop`);
    peak memory included. With `gen(prompts, n, on_token)` (greedy generation of n tokens) also gen_ms
    (`time_gen`)."""
    ids = torch.randint(3, vocab, (batch, prompt), device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t0 = time.perf_counter()
    logits, state = prefill(ids)
    _sync(device)
    prefill_s = time.perf_counter() - t0
    tok = logits.argmax(-1)
    for _ in range(2):  # warm-up (graph capture, allocator)
        tok = step(tok, state).argmax(-1)
    times = []
    for _ in range(steps):
        _sync(device)
        t = time.perf_counter()
        tok = step(tok, state).argmax(-1)
        _sync(device)
        times.append(time.perf_counter() - t)
    # median on the GPU; best-of on a shared CPU, where other processes inflate the median
    ms = (statistics.median(times) if device == "cuda" else min(times)) * 1e3
    peak = torch.cuda.max_memory_allocated() / GIB if device == "cuda" else float("nan")
    out = {"prefill_ms": prefill_s * 1e3, "ms_tok": ms, "tok_s": batch * 1e3 / ms, "peak_gib": peak}
    if device == "cuda":
        out["loop_ms"] = time_loop(step, tok, state, steps)
        if gen is not None:
            out["gen_ms"] = time_gen(gen, ids.tolist(), steps)
    return out


def time_loop(
    step: Callable[[torch.Tensor, Any], torch.Tensor], tok: torch.Tensor, state: Any, steps: int
) -> float:
    """ms per token of a greedy generation loop in `Decoder`'s lookahead order (CUDA), for any model alike:
    each token is copied to pinned host memory, the next step is queued, then the host reads the token back
    (waiting for the copy only), so the host's per-token work overlaps the GPU's step."""
    host = torch.empty(tok.shape, dtype=tok.dtype, pin_memory=True)
    ready = torch.cuda.Event()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        host.copy_(tok, non_blocking=True)
        ready.record()
        logits = step(tok, state)
        ready.synchronize()
        host.tolist()
        tok = logits.argmax(-1)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps * 1e3


def time_gen(gen: Callable[..., Any], prompts: list[list[int]], steps: int) -> float:
    """ms per token of greedy generation, from the host's clock as tokens arrive: the time from the 8th token
    to the last of 8 + 4 * steps over the tokens between (the prefill and the first steps left out); the
    median of three generations."""
    n = 8 + 4 * steps
    gen(prompts, 8, None)  # warm-up (the greedy graphs are captured at their first use)
    runs = []
    for _ in range(3):
        stamps: list[float] = []

        def stamp(row: int, tok: int, stamps: list[float] = stamps) -> None:
            if row == 0:
                stamps.append(time.perf_counter())

        gen(prompts, n, stamp)
        runs.append((stamps[-1] - stamps[7]) / (len(stamps) - 8))
    return statistics.median(runs) * 1e3


def mmfree_runner(
    model: nn.Module, graph: bool, fused: bool | None = None
) -> tuple[Callable, Callable, Callable]:
    """(prefill, step, gen) of a Decoder: gen(prompts, n, on_token) generates n tokens greedily (no EOS)."""
    dec = Decoder(model, cuda_graph=graph, prefill_chunk=4096, fused=fused)

    def gen(prompts: list[list[int]], n: int, on_token: Callable[[int, int], None] | None) -> Any:
        return dec.generate_ids(prompts, SamplingParams(max_new_tokens=n, temperature=0.0), on_token)

    return (lambda ids: dec.prefill(ids)), (lambda tok, cache: dec.step(tok, cache)), gen


def llama_runner(model: nn.Module) -> tuple[Callable, Callable]:
    @torch.no_grad()
    def prefill(ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1], out.past_key_values

    @torch.no_grad()
    def step(tok: torch.Tensor, cache: Any) -> torch.Tensor:
        return model(input_ids=tok[:, None], past_key_values=cache, use_cache=True).logits[:, -1]

    return prefill, step


def parse_kind(kind: str) -> tuple[str, frozenset[str] | None, str]:
    """`fused+dp4a+pdl@32x8` -> ("fused", {"dp4a", "pdl"}, "32x8"); `fused+none` -> no option; a plain kind
    keeps the default options (None) and tiles ("")."""
    head, _, tile = kind.partition("@")
    base, *opts = head.split("+")
    if (opts or tile) and base != "fused":
        raise SystemExit(f"--models {kind}: only `fused` takes +options or @tiles")
    options = fused_ops.parse_options(",".join(o for o in opts if o != "none")) if opts else None
    tile_tables(tile)  # refuses a malformed tile before any model is built
    return base, options, tile


def set_kernels(options: frozenset[str] | None, tile: str) -> None:
    """Selects the fused kernels' options and batch-1 tiles (`decode_kernels.set_tile`'s text; "" the
    defaults) for the Decoders made next (their graphs keep them)."""
    fused_ops.OPTIONS = DEFAULT_OPTIONS if options is None else options
    set_tile(tile or "default")


DEFAULT_OPTIONS = fused_ops.OPTIONS


def build(kind: str, preset: str, device: str, dtype: torch.dtype, max_ctx: int = 2048) -> nn.Module:
    if kind in ("packed", "fused", "unfused"):
        return random_packed_model(MMFreeConfig.from_preset(preset), device, dtype)
    if kind == "fake":
        with torch.device(device):
            return MMFreeForCausalLM._from_config(MMFreeConfig.from_preset(preset), dtype=dtype).eval()
    from transformers import LlamaForCausalLM

    cfg = baseline_config(preset, max_position_embeddings=max(2048, max_ctx + 64))
    with torch.device(device):
        return LlamaForCausalLM._from_config(cfg, dtype=dtype).eval()


def gpu_main(args: argparse.Namespace) -> None:
    start = time.time()
    bw = copy_bandwidth("cuda")
    rows: list[dict[str, Any]] = []
    ctx_rows: list[dict[str, Any]] = []
    for preset in args.presets:
        vocab = MMFreeConfig.from_preset(preset).vocab_size
        shared: nn.Module | None = None  # one packed model for every packed/fused/unfused kind of a preset
        for kind in args.models:
            if time.time() - start > args.budget:
                rows.append({"preset": preset, "model": kind, "note": "skipped (time budget)"})
                continue
            base, options, tile = parse_kind(kind)
            set_kernels(options, tile)
            _free()
            try:
                if base in ("packed", "fused", "unfused"):
                    if shared is None:
                        shared = build(base, preset, "cuda", torch.bfloat16)
                    model = shared
                else:
                    model = build(base, preset, "cuda", torch.bfloat16, max(args.contexts, default=2048))
            except Exception as err:  # e.g. out of memory
                rows.append({"preset": preset, "model": kind, "note": f"build failed: {type(err).__name__}"})
                continue
            wb = (
                weight_bytes(model)["total"]
                if kind != "llama"
                else sum(p.numel() * p.element_size() for p in model.parameters())
            )
            gen = None
            if base == "llama":
                pre, step = llama_runner(model)
            else:  # packed: the Decoder default; fused: always the fused step; unfused and fake: never
                fused = {"packed": None, "fused": True}.get(base, False)
                pre, step, gen = mmfree_runner(model, base != "fake", fused)
            for batch in args.batches:
                for prompt in args.prompts:
                    row = {
                        "preset": preset,
                        "model": kind,
                        "batch": batch,
                        "prompt": prompt,
                        "weights_gib": wb / GIB,
                    }
                    try:
                        row.update(time_decode(pre, step, batch, prompt, args.steps, vocab, "cuda", gen))
                    except Exception as err:
                        row["note"] = f"{type(err).__name__}: {str(err)[:60]}"
                    if base in ("packed", "fused", "unfused"):
                        row["floor_ms"] = weight_bytes(model)["ternary"] / bw * 1e3
                    rows.append(row)
                    _free()
            if kind in ("packed", "llama"):
                for ctx in args.contexts:
                    if time.time() - start > args.budget:
                        break
                    r = {"preset": preset, "model": kind, "context": ctx}
                    try:
                        r.update(time_decode(pre, step, 1, ctx, max(4, args.steps // 4), vocab, "cuda"))
                    except Exception as err:
                        r["note"] = f"{type(err).__name__}: {str(err)[:60]}"
                    ctx_rows.append(r)
                    _free()
            del model, pre, step, gen
            _free()
        del shared
        set_kernels(None, "")
    print_tables(rows, ctx_rows, bw, time.time() - start)


class DenseTernaryLinear(nn.Module):
    """Ideal fp32 dense BitLinear: weights pre-quantized once (codes * g in fp32), activations fake-quantized."""

    def __init__(self, layer: BitLinear) -> None:
        super().__init__()
        codes, g = layer.ternary()
        self.weight = nn.Parameter(codes.float() * g, requires_grad=False)
        self.norm = layer.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(act_quant(rms_norm(x, self.norm.weight, self.norm.eps)), self.weight)


def _swap_dense(model: nn.Module) -> nn.Module:
    for name, m in list(model.named_modules()):
        if isinstance(m, BitLinear):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, DenseTernaryLinear(m))
    return model


def cpu_main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    start = time.time()
    rows: list[dict[str, Any]] = []
    for preset in args.presets:
        cfg = MMFreeConfig.from_preset(preset)
        for kind in (
            "fp32-fake (library)",
            "fp32-dense (ideal)",
            "packed eager",
            "packed compiled",
            "packed cpp",
            "packed cpp, bf16 embedding",
        ):
            _free()
            torch.manual_seed(0)
            if kind.startswith("fp32"):
                model = MMFreeForCausalLM(cfg).eval()
                if "ideal" in kind:
                    _swap_dense(model)
            else:
                model = random_packed_model(cfg, "cpu", torch.float32)
                set_cpu_kernel(model, kind.split(",")[0].split()[-1])
                if "bf16 embedding" in kind:  # `mmfree pack --embedding-dtype bfloat16`, loaded in fp32
                    emb = model.model.embeddings.weight
                    emb.data = emb.data.to(torch.bfloat16)
            pre, step, _ = mmfree_runner(model, False)
            wb = weight_bytes(model)
            for _ in range(1 if kind.startswith("fp32") or "eager" in kind else 2):  # the first run compiles
                r = time_decode(pre, step, 1, args.cpu_prompt, args.steps, cfg.vocab_size, "cpu")
            state = sum(int(cfg.hidden_size * cfg.expand_ratio) * 4 for _ in range(cfg.num_hidden_layers))
            rows.append(
                {
                    "preset": preset,
                    "model": kind,
                    **r,
                    "ternary_mib": wb["ternary"] / 2**20,
                    "weights_mib": wb["total"] / 2**20,
                    "state_kib": state / 1024,
                }
            )
            del model, pre, step
    print(
        f"\nCPU decode, batch 1, prompt {args.cpu_prompt}, {args.threads} threads ({time.time() - start:.0f} s)"
    )
    hdr = (
        f"{'preset':<7} {'model':<27} {'ms/tok':>8} {'tok/s':>7} {'x fp32-fake':>11} {'x fp32-ideal':>12} {'wts x less':>10} "
        f"{'ternary MiB':>11} {'weights MiB':>11} {'state KiB':>9}"
    )
    print(hdr)
    for r in rows:
        base = {k["model"]: k for k in rows if k["preset"] == r["preset"]}
        print(
            f"{r['preset']:<7} {r['model']:<27} {r['ms_tok']:8.2f} {r['tok_s']:7.1f} "
            f"{r['tok_s'] / base['fp32-fake (library)']['tok_s']:11.2f} {r['tok_s'] / base['fp32-dense (ideal)']['tok_s']:12.2f} "
            f"{base['fp32-dense (ideal)']['weights_mib'] / r['weights_mib']:10.1f} "
            f"{r['ternary_mib']:11.1f} {r['weights_mib']:11.1f} {r['state_kib']:9.1f}"
        )


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, int | float) else str(v if v is not None else "-")


def print_tables(rows: list[dict], ctx_rows: list[dict], bw: float, wall: float) -> None:
    print(f"\nGPU decode ({torch.cuda.get_device_name()}; copy bandwidth {bw / 1e9:.0f} GB/s; {wall:.0f} s)")
    print(
        f"{'preset':<6} {'model':<27} {'B':>3} {'prompt':>6} {'prefill ms':>10} {'ms/tok':>8} {'loop ms':>8} {'gen ms':>8} "
        f"{'tok/s':>9} {'peak GiB':>8} {'wts GiB':>7} {'floor ms':>8} {'x fake':>7} {'x llama':>7} {'x unfus':>7} {'x fused':>7}  note"
    )
    for r in rows:
        peers = {
            k["model"]: k
            for k in rows
            if k.get("preset") == r.get("preset")
            and k.get("batch") == r.get("batch")
            and k.get("prompt") == r.get("prompt")
            and "tok_s" in k
        }
        ratio = {
            p: (r["tok_s"] / peers[p]["tok_s"]) if "tok_s" in r and p in peers else None
            for p in ("fake", "llama", "unfused", "fused")
        }
        print(
            f"{r['preset']:<6} {r['model']:<27} {_fmt(r.get('batch'), '3d'):>3} {_fmt(r.get('prompt'), '6d'):>6} "
            f"{_fmt(r.get('prefill_ms'), '10.1f'):>10} {_fmt(r.get('ms_tok'), '8.3f'):>8} {_fmt(r.get('loop_ms'), '8.3f'):>8} "
            f"{_fmt(r.get('gen_ms'), '8.3f'):>8} {_fmt(r.get('tok_s'), '9.1f'):>9} "
            f"{_fmt(r.get('peak_gib'), '8.2f'):>8} {_fmt(r.get('weights_gib'), '7.2f'):>7} {_fmt(r.get('floor_ms'), '8.3f'):>8} "
            f"{_fmt(ratio['fake'], '7.2f'):>7} {_fmt(ratio['llama'], '7.2f'):>7} {_fmt(ratio['unfused'], '7.2f'):>7}"
            f" {_fmt(ratio['fused'], '7.2f'):>7}"
            f"  {r.get('note', '')}"
        )
    print("\nContext length, batch 1 (packed vs llama): per-token latency and peak memory")
    print(
        f"{'preset':<6} {'model':<7} {'context':>7} {'prefill ms':>10} {'ms/tok':>8} {'loop ms':>8} {'peak GiB':>8}  note"
    )
    for r in ctx_rows:
        print(
            f"{r['preset']:<6} {r['model']:<7} {r['context']:7d} {_fmt(r.get('prefill_ms'), '10.1f'):>10} "
            f"{_fmt(r.get('ms_tok'), '8.3f'):>8} {_fmt(r.get('loop_ms'), '8.3f'):>8} {_fmt(r.get('peak_gib'), '8.2f'):>8}"
            f"  {r.get('note', '')}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="CPU mode: packed vs fp32 dense, batch 1")
    p.add_argument("--presets", type=lambda s: s.split(","), default=None, help="comma-separated presets")
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    p.add_argument("--prompts", type=lambda s: [int(x) for x in s.split(",")], default=[128, 2048])
    p.add_argument(
        "--contexts",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1024, 4096, 16384, 32768],
        help='context lengths for the packed and llama rows ("" for none)',
    )
    p.add_argument("--steps", type=int, default=None, help="timed decode steps per row")
    p.add_argument("--budget", type=float, default=420.0, help="GPU: seconds after which rows are skipped")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--models",
        type=lambda s: s.split(","),
        default=["packed", "fake", "llama"],
        help="GPU: comma-separated models among packed (Decoder default), fused (always fused; fused+dp4a+pdl@32x8 "
        "names kernel options and a batch-1 tile), unfused, fake, llama",
    )
    p.add_argument("--unfused", action="store_true", help="GPU: also time the unfused packed step")
    p.add_argument("--cpu-prompt", type=int, default=32)
    args = p.parse_args()
    if args.cpu:
        args.presets = args.presets or ["debug", "370m"]
        args.steps = args.steps or 10
        cpu_main(args)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU: run with --cpu")
        args.presets = args.presets or ["370m", "1.3b", "2.7b", "13b"]
        args.steps = args.steps or 24
        known = ("packed", "fused", "unfused", "fake", "llama")
        bad = [m for m in args.models if parse_kind(m)[0] not in known]
        if bad:
            raise SystemExit(f"unknown --models {bad}; choose among {', '.join(known)}")
        if args.unfused and "unfused" not in args.models:
            args.models.insert(args.models.index("packed") + 1 if "packed" in args.models else 0, "unfused")
        gpu_main(args)


if __name__ == "__main__":
    main()
