"""Measured GPU energy per token of batch-1 decoding, for the integer engine's cost-model report.

Run on the H200 (needs CUDA and nvidia-smi):

    python benchmarks/gpu_energy.py --presets 370m,1.3b,2.7b --tokens 256 \
        --output docs/results/hw_gpu_energy.json
    python -m mmfree.hw.report          # re-draws docs/results/hw_cost.png with the GPU points

A background thread samples `nvidia-smi --query-gpu=power.draw` every `--interval` seconds while a
greedy decode loop runs (one token per step, recurrent cache); energy is the time integral of the
sampled power (trapezoid rule), so J/token = energy / tokens. The idle power measured before each run
is reported too (`joules_per_token_above_idle` subtracts it). Models are randomly initialised (speed and
power do not depend on the weights); `--model packed` (default) uses `mmfree.infer.packed.random_packed_model`
(2-bit weights) when that module exists, else the fake-quantized bf16 model; `--model bf16` forces the latter.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any


class PowerSampler:
    """Samples GPU power (W) with nvidia-smi in a background thread: `[(t, watts), ...]`."""

    def __init__(self, gpu: int, interval: float) -> None:
        self.gpu, self.interval = gpu, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float:
        out = subprocess.run(
            ["nvidia-smi", f"--id={self.gpu}", "--query-gpu=power.draw", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return float(out.stdout.strip().splitlines()[0])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._read()))
            self._stop.wait(self.interval)

    def __enter__(self) -> PowerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def energy(self, t0: float, t1: float) -> float:
        """Joules between t0 and t1 (trapezoid over the samples inside, power held flat at the ends)."""
        pts = [(t, w) for t, w in self.samples if t0 <= t <= t1]
        if not pts:
            raise RuntimeError("no power samples during the run; lower --interval or raise --tokens")
        pts = [(t0, pts[0][1]), *pts, (t1, pts[-1][1])]
        return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(pts))


def build(preset: str, kind: str) -> tuple[Any, str]:
    """The model to decode with: `packed` (2-bit, `mmfree.infer.packed`, when present) or `bf16`."""
    import torch

    from mmfree.models import MMFreeConfig, MMFreeForCausalLM

    config = MMFreeConfig.from_preset(preset)
    if kind == "packed":
        try:
            packed = importlib.import_module("mmfree.infer.packed")
        except ImportError:
            packed = None
        if packed is not None and hasattr(packed, "random_packed_model"):
            return packed.random_packed_model(config, device="cuda", dtype=torch.bfloat16), "packed 2-bit"
    with torch.device("cuda"):
        model = MMFreeForCausalLM(config).to(torch.bfloat16).eval()
    return model, "fake-quantized bf16"


def decode(model: Any, steps: int) -> None:
    import torch

    from mmfree.models.modeling import output_cache

    tok = torch.ones(1, 1, dtype=torch.long, device="cuda")
    cache = None
    with torch.no_grad():
        for _ in range(steps):
            out = model(input_ids=tok, past_key_values=cache, use_cache=True)
            cache = output_cache(out)
            tok = out.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize()


def measure(preset: str, kind: str, tokens: int, gpu: int, interval: float) -> dict[str, Any]:
    import torch

    model, kind = build(preset, kind)
    decode(model, 16)  # warm-up (kernel compilation, allocator)
    with PowerSampler(gpu, interval) as sampler:
        time.sleep(1.0)
        idle_t1 = time.perf_counter()
        idle_w = sampler.energy(idle_t1 - 0.9, idle_t1) / 0.9
        t0 = time.perf_counter()
        decode(model, tokens)
        t1 = time.perf_counter()
        time.sleep(2 * interval)
    joules = sampler.energy(t0, t1)
    del model
    torch.cuda.empty_cache()
    return {"model": kind, "tokens": tokens, "seconds": t1 - t0, "tokens_per_s": tokens / (t1 - t0),
            "mean_watts": joules / (t1 - t0), "idle_watts": idle_w, "joules_per_token": joules / tokens,
            "joules_per_token_above_idle": (joules - idle_w * (t1 - t0)) / tokens}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description="GPU J/token of batch-1 decoding per preset")
    parser.add_argument("--presets", default="370m,1.3b,2.7b", help="comma-separated preset names")
    parser.add_argument("--tokens", type=int, default=256, help="decode steps timed per preset")
    parser.add_argument("--model", choices=["packed", "bf16"], default="packed", help="decoder to measure")
    parser.add_argument("--gpu", type=int, default=0, help="nvidia-smi GPU index")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between power samples")
    parser.add_argument("--output", default="", help="write the JSON here (for python -m mmfree.hw.report)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_energy.py needs a CUDA GPU")
    result = {"device": torch.cuda.get_device_name(args.gpu), "presets": {}}
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        result["presets"][preset] = measure(preset, args.model, args.tokens, args.gpu, args.interval)
        r = result["presets"][preset]
        print(f"{preset}: {r['tokens_per_s']:.1f} tokens/s, {r['mean_watts']:.0f} W, "
              f"{r['joules_per_token']:.3f} J/token ({r['joules_per_token_above_idle']:.3f} above idle; {r['model']})")  # fmt: skip
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
