"""`mmfree train`: the command-line map onto `mmfree.train.trainer.run_training` (logic lives there).

`mmfree train` alone trains the debug preset on the embedded stdlib corpus for a few minutes on CPU, then
prints the validation loss against a unigram baseline and a generated sample. Under torchrun it trains on
every process (`--parallel ddp|fsdp`); see docs/training.md.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Literal

from mmfree.train.config import TrainConfig

logger = logging.getLogger("mmfree.train")


@dataclass
class TrainArgs:
    """Settings of `mmfree train` (one to one with TrainConfig)."""

    preset: str = "debug"  # model size: debug, 370m, 1.3b, 2.7b
    arch: Literal["mmfree", "transformer"] = "mmfree"  # mmfree, or transformer (Llama baseline)
    data: list[str] = field(default_factory=lambda: ["stdlib"])  # prepared dir, text inputs, or stdlib
    out: str = ""  # run directory (default: runs/<preset>-<arch>-<time>)
    tokenizer: str = ""  # tokenizer for raw inputs ("" = train a byte-level BPE on them)
    vocab_size: int = 0  # vocabulary of a tokenizer trained here (0 = the preset's)
    stdlib_bytes: int = 4_000_000  # bytes of the embedded stdlib corpus to use with --data stdlib
    val_fraction: float = 0.02  # fraction of raw-input documents held out for validation
    max_steps: int = 300  # optimizer steps in the run (the LR schedule spans them)
    batch_size: int = 16  # sequences per micro-step, all ranks together
    seq_len: int = 128  # tokens per sequence
    grad_accum: int = 1  # micro-steps per optimizer step
    lr: float = 0.0  # peak learning rate (0 = the paper's for the preset and arch)
    warmup: int = -1  # linear warmup steps (-1 = 5 percent of max_steps, at most 2000)
    weight_decay: float = 0.1  # AdamW weight decay (not on norms, biases, embeddings, lower_bounds)
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.95  # AdamW beta2
    clip: float = 1.0  # gradient-norm clipping (0 = off)
    eval_every: int = 100  # steps between validations (0 = only at the end)
    eval_tokens: int = 65536  # validation tokens scored per evaluation at most
    log_every: int = 10  # steps between log lines in log.jsonl / TensorBoard
    save_every: int = 100  # steps between checkpoints (0 = only at the end)
    keep: int = 2  # checkpoints kept (the oldest are deleted)
    resume: bool = False  # continue the run in --out from its last checkpoint
    seed: int = 0  # seed of the model init and the data order
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where to train (auto = cuda when available)
    parallel: Literal["ddp", "fsdp"] = "ddp"  # multi-process wrapper under torchrun
    compile: bool = False  # torch.compile the model
    activation_checkpointing: bool = False  # recompute block activations in backward (less memory)
    hidden_size: int = 0  # override the preset's width (0 = the preset's)
    num_layers: int = 0  # override the preset's depth (0 = the preset's)
    threads: int = 0  # torch CPU threads (0 = torch's default)
    deterministic: bool = False  # torch.use_deterministic_algorithms (bitwise reproducible, slower)
    sample_prompt: str = "def "  # prompt of the sample generated at the end ("" = no sample)
    sample_tokens: int = 48  # tokens generated for the sample
    progress: bool = True  # show the tqdm progress line
    tensorboard: bool = True  # write TensorBoard events to out/tb (skipped if tensorboard is missing)


def to_config(args: TrainArgs) -> TrainConfig:
    """The TrainConfig with the same values."""
    return TrainConfig(**dataclasses.asdict(args))


def train(args: TrainArgs) -> int:
    """Run `mmfree train`; print the summary (validation vs unigram baseline, a sample) on rank 0."""
    from mmfree.train.trainer import run_training

    result = run_training(to_config(args))
    if result.final_dir.is_dir():
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
