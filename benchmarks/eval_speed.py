"""Evaluation speed: examples per second per zero-shot task (median over repeats).

A model directory, or a preset with random weights (speed does not depend on the weights) and a byte-level
tokenizer trained on the fly. Run on CPU for the debug preset and on a GPU for 370M:

    python benchmarks/eval_speed.py --preset debug --device cpu --limit 200
    python benchmarks/eval_speed.py --preset 370m --device cuda --dtype bfloat16 --limit 500 --batch-size 64
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time

import torch

TASKS = ("arc_easy", "arc_challenge", "hellaswag", "openbookqa", "piqa", "winogrande", "lambada")


def _model_and_tokenizer(args: argparse.Namespace) -> tuple[torch.nn.Module, object]:
    from mmfree.eval.runner import load_model

    if args.model_dir:
        return load_model(args.model_dir, args.device, args.dtype)
    from mmfree import MMFreeConfig, MMFreeForCausalLM
    from mmfree.data.embedded import stdlib_corpus
    from mmfree.data.tokenizer import train_tokenizer

    tok = train_tokenizer(stdlib_corpus(2_000_000), 4096, tempfile.mkdtemp())
    config = MMFreeConfig.from_preset(args.preset, vocab_size=len(tok))
    model = MMFreeForCausalLM(config).to(args.device, getattr(torch, args.dtype)).eval()
    return model, tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="", help="a saved model (else --preset with random weights)")
    parser.add_argument("--preset", default="debug")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--limit", type=int, default=200, help="examples per task")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    from mmfree.eval import evaluate

    model, tok = _model_and_tokenizer(args)
    name = args.model_dir or f"{args.preset} (random weights)"
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    rows = []
    for task in args.tasks.split(","):
        times = []
        for _ in range(args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            res = evaluate(model, tok, [task], args.limit, args.data_dir, args.batch_size, progress=False)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        n = res["results"][task]["num_examples"]
        rows.append((task, n, n / statistics.median(times)))
    print(
        f"eval speed | {datetime.date.today()} | {device} | torch {torch.__version__} | {name} | {args.dtype} "
        f"| batch {args.batch_size} | median of {args.repeats}"
    )
    print("| task | examples | examples/s |")
    print("|---|---|---|")
    for task, n, eps in rows:
        print(f"| {task} | {n} | {eps:,.1f} |")


if __name__ == "__main__":
    main()
