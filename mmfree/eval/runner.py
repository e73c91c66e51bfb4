"""Evaluation entry points: `evaluate` (model objects, in-process), `run_eval` (a saved model directory,
the CLI's backend) and `format_results` (the printed table).

Task specs: a known task name (arc_easy, arc_challenge, hellaswag, openbookqa, piqa, winogrande,
lambada), `TASK:FILE` to read that task from a given file, or `lm:PATH` for language-modelling
metrics on a text/jsonl file or a prepared-shard directory. `limit` caps the examples per task (the
first N, as lm-eval's --limit) and, for lm tasks, the number of scored tokens.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmfree.eval.lm import evaluate_lm
from mmfree.eval.scoring import (
    argmax_first,
    encode_pair,
    loglikelihood_tokens,
    mean_and_stderr,
    resolve_max_length,
)
from mmfree.eval.tasks import (
    TASK_METRICS,
    LoglikelihoodDoc,
    MultipleChoiceDoc,
    canonical_task,
    find_task_file,
    load_task,
)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class TaskSpec:
    """A parsed task argument: `name` is the canonical task ("lm" for lm:PATH), `path` its data file."""

    label: str
    name: str
    path: Path | None


def parse_task_spec(spec: str) -> TaskSpec:
    """Parse "arc_easy", "arc_easy:FILE" or "lm:PATH" (unknown names raise ValueError)."""
    spec = spec.strip()
    if not spec:
        raise ValueError("empty task name; pass a comma-separated list such as arc_easy,piqa")
    head, sep, tail = spec.partition(":")
    if head.lower() == "lm":
        if not tail:
            raise ValueError("lm task needs a path: lm:/path/to/file.txt (or .jsonl, or a shard directory)")
        return TaskSpec(spec, "lm", Path(tail).expanduser())
    name = canonical_task(head)
    return TaskSpec(name if not sep else spec, name, Path(tail).expanduser() if sep else None)


def resolve_tasks(tasks: list[str] | str, data_dir: str | os.PathLike[str] | None = None) -> list[TaskSpec]:
    """Parse task specs and locate their files now, so that bad names and missing files fail fast."""
    if isinstance(tasks, str):
        tasks = [t for t in tasks.split(",") if t.strip()]
    if not tasks:
        raise ValueError("no tasks given; pass e.g. tasks=['arc_easy', 'piqa'] or 'lm:/path/to/text.txt'")
    specs = []
    for raw in tasks:
        spec = parse_task_spec(raw)
        if spec.name == "lm":
            if spec.path is None or not spec.path.exists():
                raise FileNotFoundError(f"lm task file not found: {spec.path}")
        elif spec.path is None:
            spec = TaskSpec(spec.label, spec.name, find_task_file(spec.name, data_dir))
        elif not spec.path.exists():
            raise FileNotFoundError(f"data file for task {spec.name!r} not found: {spec.path}")
        specs.append(spec)
    return specs


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def score_multiple_choice(
    model: torch.nn.Module,
    tokenizer: Any,
    docs: list[MultipleChoiceDoc],
    metrics: tuple[str, ...],
    batch_size: int = 8,
    add_bos_token: bool | None = False,
    max_length: int | None = None,
    progress: bool = True,
    desc: str = "multiple choice",
) -> dict[str, Any]:
    """acc / acc_norm over `docs` with their standard errors (lm-eval's definitions)."""
    requests, owners = [], []
    for d, doc in enumerate(docs):
        for ctx, cont in zip(doc.contexts, doc.continuations, strict=True):
            requests.append(encode_pair(tokenizer, ctx, cont, add_bos_token))
            owners.append(d)
    max_len = max_length or resolve_max_length(model, tokenizer)
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    scored = loglikelihood_tokens(model, requests, batch_size, max_len, pad, progress, desc)
    per_doc: list[list[float]] = [[] for _ in docs]
    for d, (ll, _) in zip(owners, scored, strict=True):
        per_doc[d].append(ll)
    acc, acc_norm = [], []
    for doc, lls in zip(docs, per_doc, strict=True):
        acc.append(1.0 if argmax_first(lls) == doc.gold else 0.0)
        normed = [ll / max(len(text), 1) for ll, text in zip(lls, doc.choice_texts, strict=True)]
        acc_norm.append(1.0 if argmax_first(normed) == doc.gold else 0.0)
    values = {"acc": acc, "acc_norm": acc_norm}
    out: dict[str, Any] = {"metrics": {}, "stderr": {}, "num_examples": len(docs)}
    for name in metrics:
        mu, se = mean_and_stderr(values[name])
        out["metrics"][name], out["stderr"][name] = mu, _finite(se)
    return out


def score_lambada(
    model: torch.nn.Module,
    tokenizer: Any,
    docs: list[LoglikelihoodDoc],
    batch_size: int = 8,
    add_bos_token: bool | None = False,
    max_length: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """LAMBADA: acc (last word is the greedy continuation) and perplexity exp(-mean ll).

    lm-eval bootstraps the perplexity's standard error; here it is the delta method, ppl * se(ll).
    """
    requests = [encode_pair(tokenizer, d.context, d.continuation, add_bos_token) for d in docs]
    max_len = max_length or resolve_max_length(model, tokenizer)
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    scored = loglikelihood_tokens(model, requests, batch_size, max_len, pad, progress, "lambada")
    lls = [ll for ll, _ in scored]
    acc_mu, acc_se = mean_and_stderr([1.0 if greedy else 0.0 for _, greedy in scored])
    ll_mu, ll_se = mean_and_stderr(lls)
    ppl = math.exp(-ll_mu)
    return {
        "metrics": {"acc": acc_mu, "perplexity": ppl},
        "stderr": {"acc": _finite(acc_se), "perplexity": _finite(ppl * ll_se)},
        "num_examples": len(docs),
    }


def evaluate(
    model: torch.nn.Module,
    tokenizer: Any,
    tasks: list[str] | str,
    limit: int | None = None,
    data_dir: str | None = None,
    batch_size: int = 8,
    add_bos_token: bool | None = False,
    max_length: int | None = None,
    lm_mode: str = "auto",
    lm_window: int | None = None,
    lm_chunk_size: int = 1024,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a loaded causal LM and its tokenizer on `tasks`; returns the results dict.

    Args:
        model: any transformers-style causal LM (`model(input_ids=...).logits`); put it on its device
            and in eval mode first (this function calls `model.eval()` too).
        tokenizer: a transformers tokenizer (`encode`, `decode`, bos/eos ids).
        tasks: task specs (see the module docstring) or one comma-separated string.
        limit: first N examples per task; for lm tasks, at most N scored tokens.
        data_dir: directory with the task files (default: $MMFREE_EVAL_DATA, else ../shared/data/eval).
        batch_size: requests (or windows) per forward pass.
        add_bos_token: False (lm-eval <= 0.4.4 default, the paper's setting): no special tokens;
            None: the tokenizer's own default (lm-eval >= 0.4.5); True: add them.
        max_length: context length for multiple-choice truncation (default: lm-eval's resolution).
        lm_mode: "auto" (recurrent for model_type "mmfree", else window), "recurrent" or "window".
        lm_window: sliding-window size for lm tasks (default: the model's context length).
        lm_chunk_size: tokens per call in the recurrent lm pass.
        progress: show tqdm progress bars.

    Returns:
        {"model_dir": None, "date": ISO time, "limit": limit, "batch_size": ..., "results": {task: {
        "metrics": {...}, "stderr": {...}, "num_examples": n, "source": file, ...}}}.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of examples, got {limit}")
    specs = resolve_tasks(tasks, data_dir)
    model.eval()
    results: dict[str, Any] = {}
    for spec in specs:
        if spec.name == "lm":
            res = evaluate_lm(
                model, tokenizer, spec.path, limit, batch_size, lm_mode, lm_window, lm_chunk_size, progress
            )
        else:
            docs, source = load_task(spec.name, spec.path, data_dir)
            docs = docs[:limit] if limit is not None else docs
            if spec.name == "lambada":
                res = score_lambada(model, tokenizer, docs, batch_size, add_bos_token, max_length, progress)
            else:
                res = score_multiple_choice(
                    model,
                    tokenizer,
                    docs,
                    TASK_METRICS[spec.name],
                    batch_size,
                    add_bos_token,
                    max_length,
                    progress,
                    spec.name,
                )
            res["source"] = str(source)
        results[spec.label] = {"task": spec.name, **res}
        if spec.name == "lm":
            results[spec.label]["source"] = str(spec.path)
    return {
        "model_dir": None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "limit": limit,
        "batch_size": batch_size,
        "add_bos_token": add_bos_token,
        "results": results,
    }


def load_model(model_dir: str, device: str = "cpu", dtype: str = "float32") -> tuple[torch.nn.Module, Any]:
    """AutoModelForCausalLM + AutoTokenizer from `model_dir` (mmfree's Auto classes registered first)."""
    with contextlib.suppress(ImportError):
        import mmfree.models  # noqa: F401  (registers model_type "mmfree" with the Auto classes)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json; pass a directory written by save_pretrained")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(DTYPES))}")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=DTYPES[dtype])
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model.to(device).eval(), tokenizer


def write_results(results: dict[str, Any], output: str | os.PathLike[str]) -> Path:
    """Write results as indented JSON (parent directories created)."""
    out = Path(output).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out


def run_eval(
    model_dir: str,
    tasks: list[str],
    limit: int | None = None,
    data_dir: str | None = None,
    batch_size: int = 8,
    output: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict:
    """Load `model_dir` and evaluate it on `tasks` (see `evaluate`); write JSON to `output` if given.

    Task names and data files are checked before the model is loaded.
    """
    resolve_tasks(tasks, data_dir)
    model, tokenizer = load_model(model_dir, device, dtype)
    results = evaluate(model, tokenizer, tasks, limit=limit, data_dir=data_dir, batch_size=batch_size)
    results["model_dir"] = str(Path(model_dir).expanduser().resolve())
    results.update(device=device, dtype=dtype)
    if output is not None:
        write_results(results, output)
    return results


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.{digits}e}"


def format_results(results: dict[str, Any]) -> str:
    """A plain-text table: task, metric, value, standard error, number of examples."""
    rows = [("Task", "Metric", "Value", "Stderr", "N")]
    for label, res in results.get("results", {}).items():
        n = res.get("num_tokens", res.get("num_examples"))
        unit = " tok" if "num_tokens" in res else ""
        for i, (metric, value) in enumerate(res["metrics"].items()):
            se = res.get("stderr", {}).get(metric)
            rows.append(
                (label if i == 0 else "", metric, _fmt(value), _fmt(se), f"{n}{unit}" if i == 0 else "")
            )
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    align = ["<", "<", ">", ">", ">"]
    lines = []
    for k, row in enumerate(rows):
        lines.append(
            "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths, strict=True)).rstrip()
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    header = []
    if results.get("model_dir"):
        header.append(f"model: {results['model_dir']}")
    if results.get("limit") is not None:
        header.append(f"limit: {results['limit']} (partial evaluation)")
    return "\n".join([*header, *lines])
