"""`mmfree hw simulate` and `mmfree hw export`: the integer engine on a checkpoint, from the command line.

Text is tokenized with the checkpoint's tokenizer when DIR holds one (`tokenizer.json` or
`tokenizer_config.json`); otherwise it is read as UTF-8 bytes (token id = byte value), which needs a
vocabulary of at least 256.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("mmfree")


@dataclass
class SimulateArgs:
    """Settings of `mmfree hw simulate`."""

    checkpoint: str  # checkpoint directory (save_pretrained of an MMFreeForCausalLM)
    text: str = ""  # text file to score (required)
    max_tokens: int = 512  # score at most this many tokens of the text
    output: str = ""  # write the JSON report here (it is printed either way)
    check_tokens: int = 4  # tokens also run through the scalar reference units for `bit_exact`
    strict: bool = False  # fail on any fixed-point saturation instead of counting it
    cost: list[str] = field(default_factory=list)  # cost-model overrides name=value, comma-separated


@dataclass
class ExportArgs:
    """Settings of `mmfree hw export`."""

    checkpoint: str  # checkpoint directory (save_pretrained of an MMFreeForCausalLM)
    out: str  # output directory for the memory images and manifest.json
    overwrite: bool = False  # write into a non-empty output directory


def load_model(checkpoint: str) -> Any:
    """An `MMFreeForCausalLM` in fp32 from a checkpoint directory, with clear errors."""
    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a checkpoint directory (no config.json); pass a save_pretrained dir"
        )
    from transformers import AutoModelForCausalLM

    import mmfree.models  # noqa: F401  (registers the Auto classes)
    from mmfree.models import MMFreeForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype="float32")
    except (ValueError, KeyError) as err:
        raise ValueError(f"cannot load {path} as a causal LM: {err}") from None
    if not isinstance(model, MMFreeForCausalLM):
        raise ValueError(
            f"{path} holds a {type(model).__name__}; the integer engine runs MMFreeForCausalLM only"
        )
    return model.eval()


def tokenize(checkpoint: str, text: str, vocab: int) -> tuple[list[int], str]:
    """Token ids of `text` and the tokenizer used (`checkpoint` or `bytes`)."""
    path = Path(checkpoint)
    if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        return list(AutoTokenizer.from_pretrained(str(path))(text)["input_ids"]), "checkpoint"
    if vocab < 256:
        raise ValueError(f"{path} has no tokenizer and its vocabulary ({vocab}) is too small for byte tokens")
    return list(text.encode("utf-8")), "bytes"


def float_perplexity(model: Any, ids: list[int]) -> float:
    """exp(mean next-token NLL) of the float model (fake-quantized fp32) on `ids`."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].double()  # [T-1, V]
        nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]))
    return float(torch.exp(nll))


def simulate(args: SimulateArgs) -> int:
    """Score a text with the float model and the integer engine; report op counts and the cost model."""
    from mmfree.hw import counts as C
    from mmfree.hw.cost import CostModel
    from mmfree.hw.engine import Engine

    cost_model = CostModel.parse(args.cost)  # bad overrides fail before any loading
    if not args.text:
        raise ValueError("pass --text FILE: the text to score")
    if not Path(args.text).is_file():
        raise FileNotFoundError(f"text file {args.text} not found")
    if args.max_tokens < 2 or args.check_tokens < 0:
        raise ValueError("--max-tokens must be >= 2 and --check-tokens >= 0")
    model = load_model(args.checkpoint)
    ids, tokenizer = tokenize(
        args.checkpoint, Path(args.text).read_text(encoding="utf-8"), model.config.vocab_size
    )
    ids = ids[: args.max_tokens]
    if len(ids) < 2:
        raise ValueError(f"{args.text} gives {len(ids)} token(s); perplexity needs at least 2")
    engine = Engine.from_model(model, strict=args.strict)
    n_check = min(args.check_tokens, len(ids))
    bit_exact = None
    if n_check:
        vec = engine.forward(ids[:n_check])
        vec_ops = engine.ops
        engine.reset_stats()
        ref = engine.forward(ids[:n_check], datapath="scalar")
        bit_exact = bool(np.array_equal(vec, ref) and vec_ops.counts == engine.ops.counts)
        engine.reset_stats()
    ppl_int = engine.perplexity(ids)
    ppl_float = float_perplexity(model, ids)
    per_token = engine.counts_per_token()
    est = cost_model.estimate(per_token)
    report = {
        "checkpoint": str(args.checkpoint),
        "tokenizer": tokenizer,
        "tokens": len(ids),
        "bit_exact": bit_exact,
        "bit_exact_tokens": n_check,
        "ppl_float": ppl_float,
        "ppl_int": ppl_int,
        "ppl_rel_diff": ppl_int / ppl_float - 1.0,
        "mults_ternary": C.ternary_mults(engine.ops.counts),
        "tokens_per_s": est["tokens_per_s"],
        "joules_per_token": est["joules_per_token"],
        "ops_per_token": C.by_kind(per_token),
        "ops_per_token_by_unit": C.by_unit(per_token),
        "bytes_per_token": {
            what: int(n) for (unit, what), n in sorted(per_token.items()) if unit == "memory"
        },
        "saturations": dict(engine.ops.saturations),
        "cost_estimate": est,
        "cost_model": asdict(cost_model),
    }
    text = json.dumps(report, indent=1)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    print(text)
    if report["saturations"]:
        logger.warning("fixed-point saturation events: %s", report["saturations"])
    return 0


def export(args: ExportArgs) -> int:
    """Convert a checkpoint to fixed point and write its memory images."""
    from mmfree.hw.export import export_params
    from mmfree.hw.params import params_from_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pick a new directory or pass --overwrite")
    params = params_from_model(load_model(args.checkpoint))
    export_params(params, out, overwrite=args.overwrite)
    print(f"wrote memory images and manifest.json to {out}")
    return 0
