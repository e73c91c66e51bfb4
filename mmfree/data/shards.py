"""Reading prepared token data: `meta.json` validation and a memory-mapped view over a split's shards.

Layout of a prepared directory (written by `mmfree.data.prepare.prepare`):

    OUT/meta.json         {"format": "mmfree-tokens", "version": 1, "dtype": "uint16"|"uint32", "vocab_size",
                           "eos_token_id", "tokenizer": {"name_or_path", "sha256"},
                           "splits": {"train"|"val": {"shards", "tokens", "documents", "bytes"}}}
    OUT/tokenizer/        the tokenizer, saved with save_pretrained
    OUT/train-00000.bin   raw little-endian token ids; every document is followed by the EOS id
    OUT/val-00000.bin
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, overload

import numpy as np

FORMAT = "mmfree-tokens"
VERSION = 1
SPLITS = ("train", "val")
DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
_SPLIT_KEYS = ("shards", "tokens", "documents", "bytes")


def dtype_for_vocab(vocab_size: int) -> str:
    """The shard dtype name for a vocabulary: uint16 when every id fits (vocab <= 65535), else uint32."""
    return "uint16" if vocab_size <= 65535 else "uint32"


def load_meta(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate `data_dir/meta.json`; clear errors for a missing, unfinished or foreign directory."""
    root = Path(data_dir)
    path = root / "meta.json"
    if not path.is_file():
        hint = (
            " (a prepare run was started there but did not finish: re-run `mmfree data prepare` to resume)"
            if (root / "progress.json").is_file()
            else " (create one with `mmfree data prepare`)"
        )
        raise FileNotFoundError(f"no prepared token data in {root}: {path} is missing{hint}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-run `mmfree data prepare`") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(
            f"{path}: format is {found!r}, expected {FORMAT!r}; this is not an mmfree data directory"
        )
    if meta.get("version") != VERSION:
        raise ValueError(
            f"{path}: version {meta.get('version')!r} is not supported (this mmfree reads version {VERSION}); "
            "re-run `mmfree data prepare` with this version of mmfree"
        )
    if meta.get("dtype") not in DTYPES:
        raise ValueError(f"{path}: dtype {meta.get('dtype')!r} is not one of {sorted(DTYPES)}")
    for key in ("vocab_size", "eos_token_id"):
        if not isinstance(meta.get(key), int):
            raise ValueError(f"{path}: {key!r} is missing or not an integer")
    splits = meta.get("splits")
    if not isinstance(splits, dict) or any(
        not isinstance(splits.get(s), dict) or any(k not in splits[s] for k in _SPLIT_KEYS) for s in SPLITS
    ):
        raise ValueError(f"{path}: 'splits' must hold 'train' and 'val', each with {list(_SPLIT_KEYS)}")
    return meta


class TokenArray:
    """A read-only concatenated view over memory-mapped shard files.

    `len(arr)` is the number of tokens; `arr[a:b]` returns an int64 np.ndarray copy (steps other than 1 are
    not supported); `arr[i]` returns an int. `tokens`, `documents` and `bytes` come from meta.json.
    """

    def __init__(
        self,
        paths: list[Path],
        dtype: np.dtype,
        *,
        documents: int = 0,
        raw_bytes: int = 0,
        eos_token_id: int = -1,
    ) -> None:
        self.paths = list(paths)
        self.dtype = np.dtype(dtype)
        self.documents = int(documents)
        self.eos_token_id = int(eos_token_id)
        self._bytes = int(raw_bytes)
        self._maps = [np.memmap(p, dtype=self.dtype, mode="r") for p in self.paths]
        sizes = np.array([len(m) for m in self._maps], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # [num_shards + 1]

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def tokens(self) -> int:
        """Number of tokens (EOS separators included)."""
        return len(self)

    @property
    def bytes(self) -> int:
        """UTF-8 bytes of the raw text behind these tokens (for bits-per-byte)."""
        return self._bytes

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> np.ndarray: ...

    def __getitem__(self, index: int | slice) -> int | np.ndarray:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                raise ValueError("TokenArray slices must have step 1")
            return self._read(start, max(start, stop))
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"token index {index} out of range for {n} tokens")
        return int(self._read(i, i + 1)[0])

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty(stop - start, dtype=np.int64)  # [stop - start]
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        pos = start
        shard = first
        while pos < stop:
            lo = pos - int(self._starts[shard])
            hi = min(stop, int(self._starts[shard + 1])) - int(self._starts[shard])
            out[pos - start : pos - start + hi - lo] = self._maps[shard][lo:hi]
            pos += hi - lo
            shard += 1
        return out

    def __repr__(self) -> str:
        return f"TokenArray(tokens={len(self)}, shards={len(self.paths)}, dtype={self.dtype.name})"


def open_split(data_dir: str | os.PathLike[str], split: str) -> TokenArray:
    """A read-only TokenArray over `split` ("train" or "val") of a prepared directory, checked against meta.json."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(data_dir)
    meta = load_meta(root)
    info = meta["splits"][split]
    dtype = DTYPES[meta["dtype"]]
    paths = [root / name for name in info["shards"]]
    total = 0
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(
                f"shard {p} listed in {root / 'meta.json'} is missing; re-run `mmfree data prepare`"
            )
        size = p.stat().st_size
        if size % dtype.itemsize:
            raise ValueError(f"shard {p} has {size} bytes, not a multiple of {dtype.itemsize}; it is corrupt")
        total += size // dtype.itemsize
    if total != info["tokens"]:
        raise ValueError(
            f"the {split} shards in {root} hold {total} tokens but meta.json says {info['tokens']}; "
            "the directory is corrupt or was modified: re-run `mmfree data prepare` into a fresh directory"
        )
    return TokenArray(
        paths, dtype, documents=info["documents"], raw_bytes=info["bytes"], eos_token_id=meta["eos_token_id"]
    )
