"""Training throughput on this CPU: tokens/s of full optimizer steps (forward, backward, AdamW).

Times `--steps` steps after `--warmup` untimed ones on random tokens and prints a one-line table with the
median: date, device, torch version, threads, model, batch x seq, tokens/s. Defaults: the debug preset at
the `mmfree train` defaults (batch 16 x seq 128). Run: `python benchmarks/train_cpu.py [--arch transformer]`.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch

from mmfree.train.config import TrainConfig
from mmfree.train.model import build_model, make_optimizer, window_loss


def measure(cfg: TrainConfig, vocab: int, steps: int, warmup: int) -> list[float]:
    """Per-step tokens/s of `steps` timed optimizer steps."""
    torch.manual_seed(0)
    model = build_model(cfg, vocab, 2, 1).train()
    optimizer = make_optimizer(model, cfg, fused=False)
    window = torch.randint(3, vocab, (cfg.batch_size, cfg.seq_len + 1))  # [B, T + 1]
    rates = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        window_loss(model, window, cfg.arch, 2).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if i >= warmup:
            rates.append(cfg.batch_size * cfg.seq_len / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="debug")
    parser.add_argument("--arch", default="mmfree", choices=["mmfree", "transformer"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    from mmfree.models import PRESETS

    cfg = TrainConfig(preset=args.preset, arch=args.arch, batch_size=args.batch_size, seq_len=args.seq_len)
    rates = measure(cfg, PRESETS[args.preset]["vocab_size"], args.steps, args.warmup)
    cpu = platform.processor() or platform.machine()
    print("| date | device | torch | threads | model | batch x seq | tokens/s (median) |")
    print(
        f"| {datetime.date.today()} | cpu ({cpu}) | {torch.__version__} | {torch.get_num_threads()} | "
        f"{args.arch} {args.preset} | {args.batch_size} x {args.seq_len} | {statistics.median(rates):,.0f} |"
    )


if __name__ == "__main__":
    main()
