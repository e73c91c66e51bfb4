"""`mmfree pack` (trained checkpoint -> packed 2-bit ternary checkpoint) and `mmfree generate`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch


@dataclass
class PackArgs:
    """Settings of `mmfree pack`."""

    src: str  # trained checkpoint directory (config.json + safetensors)
    dst: str  # output directory for the packed checkpoint
    format: Literal["2bit", "1.6bit"] = "2bit"  # on-disk packing: 2 bits per weight, or base 3 at 1.6 bits
    embedding_dtype: Literal["keep", "bfloat16", "float16"] = (
        "keep"  # store the input embedding as is, or rounded to 16 bits (lossy; halves an fp32 embedding)
    )


def pack(args: PackArgs) -> int:
    """Pack every BitLinear weight of a checkpoint into ternary codes; report the sizes."""
    from mmfree.infer.packed import load_packed, pack_checkpoint, weight_bytes

    emb = None if args.embedding_dtype == "keep" else args.embedding_dtype
    dst = pack_checkpoint(args.src, args.dst, bits=args.format.removesuffix("bit"), embedding_dtype=emb)
    sizes = weight_bytes(load_packed(dst))
    disk = sum(f.stat().st_size for f in Path(dst).iterdir() if f.suffix == ".safetensors")
    print(
        f"packed {args.src} -> {dst} ({args.format}): {disk / 2**20:.2f} MiB on disk; in memory "
        f"{sizes['ternary'] / 2**20:.2f} MiB ternary + {sizes['other'] / 2**20:.2f} MiB other"
    )
    return 0


@dataclass
class GenerateArgs:
    """Settings of `mmfree generate`."""

    path: str  # checkpoint directory (packed or not), with tokenizer.json
    prompt: str | None = None  # prompt text
    prompt_file: str | None = None  # read the prompt from this UTF-8 file instead
    max_new_tokens: int = 64  # tokens to generate at most
    temperature: float = 0.8  # sampling temperature; 0 = greedy
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # nucleus sampling mass in (0, 1]; 1 = off
    repetition_penalty: float = 1.0  # > 0; 1 = off
    stop: list[str] | None = None  # comma-separated stop strings (the text is cut before the first)
    seed: int = 0  # random seed of the sampler
    device: str = "auto"  # cpu, cuda or auto
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = (
        "auto"  # activations dtype (auto: bf16 on CUDA)
    )
    stream: bool = True  # print text as it is produced
    cpu_kernel: Literal["auto", "cpp", "compiled", "eager"] = (
        "auto"  # CPU ternary kernel (auto: $MMFREE_TERNARY_CPU, else cpp)
    )


def _read_prompt(args: GenerateArgs) -> str:
    if (args.prompt is None) == (args.prompt_file is None):
        raise ValueError("give exactly one of --prompt TEXT or --prompt-file FILE")
    if args.prompt is not None:
        return args.prompt
    path = Path(args.prompt_file)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"prompt file {path} is not valid UTF-8 (byte {err.start}); re-save it as UTF-8"
        ) from None


def load_model(path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None) -> Any:
    """An MMFreeForCausalLM from a checkpoint directory, packed or not, on `device`."""
    from mmfree.infer.packed import is_packed_checkpoint, load_packed
    from mmfree.models import MMFreeForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint directory (no config.json)")
    if is_packed_checkpoint(path):
        return load_packed(path, device, dtype)
    model = MMFreeForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    return model.to(device).eval()


def generate(args: GenerateArgs) -> int:
    """Generate text from a prompt and print it (streamed by default)."""
    from tokenizers import Tokenizer

    from mmfree.infer.decode import Decoder
    from mmfree.infer.packed import set_cpu_kernel
    from mmfree.infer.sampling import SamplingParams

    prompt = _read_prompt(args)
    params = SamplingParams(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        stop=tuple(args.stop or ()),
        seed=args.seed,
    )
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    dtype = names.get(args.dtype, torch.bfloat16 if device.startswith("cuda") else torch.float32)
    tok_file = Path(args.path) / "tokenizer.json"
    if not tok_file.is_file():
        raise FileNotFoundError(f"{args.path} has no tokenizer.json; copy the tokenizer into the checkpoint")
    model = load_model(args.path, device, dtype)
    if args.cpu_kernel != "auto":
        set_cpu_kernel(model, args.cpu_kernel)
    eos = model.generation_config.eos_token_id if model.generation_config is not None else None
    eos = eos if eos is not None else model.config.eos_token_id
    params.eos_token_id = tuple(eos) if isinstance(eos, list | tuple) else ((eos,) if eos is not None else ())
    decoder = Decoder(model, Tokenizer.from_file(str(tok_file)))
    if args.stream:
        for piece in decoder.stream(prompt, params):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    else:
        print(decoder.generate([prompt], params)[0])
    return 0
