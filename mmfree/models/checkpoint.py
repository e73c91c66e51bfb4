"""Checkpoint checks: every load is complete and well-shaped, or it fails with an error saying what to do.

transformers' own `from_pretrained` only warns about missing or unexpected tensors and initializes the
missing ones at random; mmfree refuses such partial loads. The checks read only config.json and the
safetensors headers, so they cost no tensor reads.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

SAFETENSORS_INDEX = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked, with the reason and the fix in its message."""


def read_config(path: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint directory, with clear errors for a missing or malformed file."""
    cfg_path = Path(path) / "config.json"
    if not Path(path).is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{path} has no config.json; is it a checkpoint directory (save_pretrained output)?"
        )
    try:
        return json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({err.msg}, line {err.lineno})") from None


def safetensors_header(file: str | Path) -> tuple[dict[str, tuple[str, list[int]]], dict[str, str]]:
    """`{name: (dtype, shape)}` and the metadata of a safetensors file, from its header alone."""
    file = Path(file)
    size = file.stat().st_size
    with file.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise CheckpointError(
                f"{file} is not a safetensors file (only {size} bytes); re-download or re-save it"
            )
        (n,) = struct.unpack("<Q", raw)
        if n <= 0 or n > min(size - 8, 100_000_000):
            raise CheckpointError(
                f"{file} is corrupt: its header length {n} does not fit the file ({size} bytes)"
            )
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(
                f"{file} is corrupt: its header is not valid JSON; re-download or re-save it"
            ) from None
    meta = header.pop("__metadata__", None) or {}
    tensors: dict[str, tuple[str, list[int]]] = {}
    end = 0
    for name, info in header.items():
        try:
            tensors[name] = (info["dtype"], list(info["shape"]))
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, IndexError):
            raise CheckpointError(f"{file} is corrupt: bad header entry for tensor {name!r}") from None
    if 8 + n + end > size:
        raise CheckpointError(f"{file} is truncated: tensors need {8 + n + end} bytes, the file has {size}")
    return tensors, meta


def weight_files(path: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint directory (single file or sharded with an index)."""
    path = Path(path)
    index = path / SAFETENSORS_INDEX
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise CheckpointError(f"{path}: shards named in {SAFETENSORS_INDEX} are missing: {missing}")
        return [path / n for n in names]
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    return []


def checkpoint_tensors(path: str | Path) -> tuple[dict[str, tuple[str, list[int]]], dict[str, str]]:
    """All tensor names/shapes and the (first file's) metadata of a safetensors checkpoint directory."""
    files = weight_files(path)
    if not files:
        raise CheckpointError(
            f"{path} has no model.safetensors (or sharded index); save it with save_pretrained"
        )
    tensors: dict[str, tuple[str, list[int]]] = {}
    meta: dict[str, str] = {}
    for file in files:
        t, m = safetensors_header(file)
        tensors.update(t)
        meta = meta or m
    return tensors, meta


def compare_state(
    expected: dict[str, torch.Size | list[int]], found: dict[str, list[int]], where: str, hint: str = ""
) -> None:
    """Raise a CheckpointError naming missing, unexpected and mis-shaped tensors (first few of each)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {list(found[k])} vs model {list(expected[k])}"
        for k in set(expected) & set(found)
        if list(found[k]) != list(expected[k])
    )
    problems = []
    for label, items in (
        ("missing tensors", missing),
        ("unexpected tensors", unexpected),
        ("wrong shapes", shapes),
    ):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        fix = (
            hint
            or "check that config.json matches the weights (sizes, gate_form, use_lower_bound, ternary_lm_head)"
        )
        raise CheckpointError(f"{where} does not match its config: " + "; ".join(problems) + f". {fix}")
