"""`mmfree train`: the command-line map onto `mmfree.train.trainer.run_training` (logic lives there).

`mmfree train` alone trains the debug preset on the embedded stdlib corpus for a few minutes on CPU, then
prints the validation loss against a unigram baseline and a generated sample. Under torchrun it trains on
every process (`--parallel ddp|fsdp`); see docs/training.md.
"""

from __future__ import annotations

import logging
import os

from mmfree.train.config import TrainConfig

logger = logging.getLogger("mmfree.train")


# The run's settings are the command's settings: one dataclass, each field's comment is its --help text.
TrainArgs = TrainConfig


def train(args: TrainArgs) -> int:
    """Run `mmfree train`; print the summary (validation vs unigram baseline, a sample) on rank 0."""
    from mmfree.train.trainer import run_training

    result = run_training(args)
    if result.final_dir.is_dir() and int(os.environ.get("RANK", "0")) == 0:  # one summary under torchrun
        lines = [
            f"done: {result.steps} steps in {result.elapsed_s:.0f} s ({result.tokens_per_s:,.0f} tokens/s)"
        ]
        if result.val is not None:
            lines.append(
                f"validation loss {result.val.loss:.4f} nats/token = {result.val.bpb:.4f} bits/byte "
                f"(perplexity {result.val.ppl:.2f})"
            )
        lines.append(
            f"unigram baseline {result.unigram_loss:.4f} nats/token = {result.unigram_bpb:.4f} bits/byte"
        )
        if result.sample:
            lines.append(f"sample: {result.sample!r}")
        lines.append(
            f"model saved to {result.final_dir} (AutoModelForCausalLM.from_pretrained after import mmfree)"
        )
        print("\n".join(lines))
    return 0
