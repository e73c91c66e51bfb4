"""`TrainConfig`: every setting of a training run, its defaults (the paper's recipe) and their validation.

Zero / empty values mean "derive it": `lr=0` takes the preset's peak LR (`PRESET_LR` for MatMul-free models,
3e-4 for Transformer++ at 370m and above), `warmup=-1` takes 5% of the steps (at most 2000), `vocab_size=0`
takes the preset's vocabulary when a tokenizer is trained, `out=""` makes `runs/<preset>-<arch>-<time>`.
The fields that define the run (`IDENTITY_FIELDS`) are saved in `out/config.json`; `--resume` refuses a
directory whose saved values differ.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Literal

# LR of the Transformer++ baseline (paper: 3e-4 at 370m and above; the small debug model takes a larger one).
BASELINE_LR: dict[str, float] = {"debug": 1e-3, "370m": 3e-4, "1.3b": 3e-4, "2.7b": 3e-4, "13b": 3e-4}
STDLIB = "stdlib"


@dataclass
class TrainConfig:
    """Settings of one training run (also the settings of `mmfree train`: each comment is its --help)."""

    preset: str = "debug"  # model size: debug, 370m, 1.3b, 2.7b
    arch: Literal["mmfree", "transformer"] = "mmfree"  # mmfree, or transformer (Llama baseline)
    data: list[str] = field(default_factory=lambda: [STDLIB])  # prepared dir, text inputs, or stdlib
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
    gate_form: Literal["official", "paper"] = (
        "official"  # MLGRU output gate: official (released models) or paper
    )
    use_lower_bound: bool = True  # learned forget-gate lower bounds (MatMul-free only)
    ternary_lm_head: bool = True  # ternary BitLinear LM head (MatMul-free only); else full precision
    lr_halving: bool = True  # halve the LR at mid-training (MatMul-free schedule, as in the paper)
    threads: int = 0  # torch CPU threads (0 = torch's default)
    deterministic: bool = False  # torch.use_deterministic_algorithms (bitwise reproducible, slower)
    sample_prompt: str = "def "  # prompt of the sample generated at the end ("" = no sample)
    sample_tokens: int = 48  # tokens generated for the sample
    progress: bool = True  # show the tqdm progress line
    tensorboard: bool = True  # write TensorBoard events to out/tb (skipped if tensorboard is missing)

    def validate(self) -> None:
        """Raise ValueError naming the bad setting and what to use instead."""
        from mmfree.models.configuration import PRESETS

        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; use one of {', '.join(PRESETS)}")
        if self.arch not in ("mmfree", "transformer"):
            raise ValueError(f"--arch must be 'mmfree' or 'transformer'; got {self.arch!r}")
        if self.parallel not in ("ddp", "fsdp"):
            raise ValueError(f"--parallel must be 'ddp' or 'fsdp'; got {self.parallel!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda; got {self.device!r}")
        if not self.data:
            raise ValueError("--data is empty: pass a prepared data directory, text files, or 'stdlib'")
        positive = ("max_steps", "batch_size", "seq_len", "grad_accum", "eval_tokens", "log_every", "keep")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        for name in ("eval_every", "save_every", "vocab_size", "hidden_size", "num_layers", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0; got {getattr(self, name)}")
        if self.lr < 0 or self.weight_decay < 0 or self.clip < 0:
            raise ValueError("--lr, --weight-decay and --clip must be >= 0")
        if not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            raise ValueError(f"AdamW betas must be in [0, 1); got {self.beta1}, {self.beta2}")
        if self.warmup < -1 or self.warmup > self.max_steps:
            raise ValueError(
                f"--warmup must be -1 (auto) or in [0, max_steps={self.max_steps}]; got {self.warmup}"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in (0, 1); got {self.val_fraction}")
        if self.stdlib_bytes < 10_000:
            raise ValueError(f"--stdlib-bytes must be >= 10000; got {self.stdlib_bytes}")
        if self.sample_tokens < 0:
            raise ValueError(f"--sample-tokens must be >= 0; got {self.sample_tokens}")

    @property
    def peak_lr(self) -> float:
        """The peak LR: --lr, else the paper's value for the preset and arch."""
        if self.lr > 0:
            return self.lr
        from mmfree.models.configuration import PRESET_LR

        return (PRESET_LR if self.arch == "mmfree" else BASELINE_LR)[self.preset]

    @property
    def warmup_steps(self) -> int:
        """Linear warmup steps: --warmup, else 5% of max_steps (at most 2000)."""
        return self.warmup if self.warmup >= 0 else min(2000, self.max_steps // 20)

    def out_dir(self) -> str:
        """The run directory: --out, else runs/<preset>-<arch>-<YYYYmmdd-HHMMSS>."""
        return self.out or f"runs/{self.preset}-{self.arch}-{time.strftime('%Y%m%d-%H%M%S')}"

    def identity(self) -> dict[str, Any]:
        """The settings that define the run (a resumed run must have the same ones)."""
        values = dataclasses.asdict(self)
        return {name: values[name] for name in IDENTITY_FIELDS}


# Settings a resumed run must share with the saved one; the rest (logging, saving, device, speed) may change.
IDENTITY_FIELDS: tuple[str, ...] = (
    "preset",
    "arch",
    "data",
    "tokenizer",
    "vocab_size",
    "stdlib_bytes",
    "val_fraction",
    "max_steps",
    "batch_size",
    "seq_len",
    "grad_accum",
    "lr",
    "warmup",
    "weight_decay",
    "beta1",
    "beta2",
    "clip",
    "seed",
    "hidden_size",
    "num_layers",
    "gate_form",
    "use_lower_bound",
    "ternary_lm_head",
    "lr_halving",
)
