"""How often the fused decode step's rows stay equal to the plain-PyTorch step at 370M widths (fp32, GPU).

Two fp32 paths whose reductions are blocked differently produce int8 activation codes that differ at rounding
ties, and one flipped code changes every later layer's input, so whole rows drift by a few percent. This
counts, per random model and layer count, the rows of a batch-16 step within 1e-3 (and 1e-6) of another path:

- the fused batch (tensor-core kernels) against the reference (`MMFREE_BACKEND=torch`);
- each row stepped alone at batch 1 ("prequant" kernels, the GPU default there) against the reference and
  against the batch;
- each row alone with DOT_MIN_BATCH=1 (the batch's kernels at batch 1) against the batch: equal bits.

It sets the tolerances of `tests/infer/test_fused.py::test_fused_step_real_shape`. Run as

    PYTHONPATH=. python3 benchmarks/tie_cascades.py [--layers 24,2] [--seeds 4] [--batch 16]
"""

from __future__ import annotations

import argparse
import os

import torch

import mmfree.ops.ternary.fused as fused_ops
from mmfree.infer.fused import FusedDecodeStep
from tests.infer.test_fused import _model, _reference_step, _row_errors


def _row(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    err = _row_errors(a, b)  # [B]
    print(
        f"  {name:<30} within 1e-3: {(err < 1e-3).sum().item():>2}/{err.numel()}"
        f"  within 1e-6: {(err < 1e-6).sum().item():>2}  max {err.max().item():.2e}"
    )


def _alone(step: FusedDecodeStep, tokens: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
    """`[B, V]` logits of each row stepped alone at batch 1."""
    rows = [
        step(tokens[r : r + 1], [s[r : r + 1].clone() for s in states]).clone() for r in range(len(tokens))
    ]
    return torch.cat(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", default="24,2", help="comma list of layer counts (370M widths)")
    p.add_argument("--seeds", type=int, default=4, help="random models per layer count")
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("tie_cascades.py needs a CUDA GPU (it compares the GPU kernels' paths)")
    B = args.batch
    for layers in (int(n) for n in args.layers.split(",")):
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = _model(0, 0, "official", True, torch.float32, device="cuda", preset="370m", layers=layers)
            width = model.model.layers[0].attn.input_dim
            tokens = torch.randint(0, model.config.vocab_size, (B,), device="cuda")  # [B]
            states = [torch.randn(B, width, device="cuda") for _ in range(layers)]  # L x [B, d']
            os.environ["MMFREE_BACKEND"] = "torch"
            ref, _ = _reference_step(model, tokens, states)  # [B, V]
            del os.environ["MMFREE_BACKEND"]
            step = FusedDecodeStep(model)
            batch = step(tokens, [s.clone() for s in states]).clone()  # [B, V]
            alone = _alone(step, tokens, states)  # [B, V]
            saved, fused_ops.DOT_MIN_BATCH = fused_ops.DOT_MIN_BATCH, 1
            try:
                alone_dot = _alone(step, tokens, states)  # [B, V]
            finally:
                fused_ops.DOT_MIN_BATCH = saved
            print(f"layers {layers}, seed {seed}")
            _row("batch vs reference", batch, ref)
            _row("batch-1 prequant vs reference", alone, ref)
            _row("batch-1 prequant vs batch", alone, batch)
            _row("batch-1 tensor cores vs batch", alone_dot, batch)


if __name__ == "__main__":
    main()
