"""The training data of a run: a prepared directory as is, or raw text prepared into `OUT/data` first.

`--data` is either one prepared directory (it has meta.json) or raw inputs (files, directories, globs, or
`stdlib` for the embedded corpus of the interpreter's own text files). Raw inputs are tokenized with
`--tokenizer`, or with a byte-level BPE trained on them (`--vocab-size`, default the preset's vocabulary).
Only rank 0 prepares; the other ranks wait and read the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmfree.train.config import STDLIB, TrainConfig
from mmfree.train.parallel import DistEnv, barrier, broadcast_object

DATA_SUBDIR = "data"
_CHECK_TOKENS = 20_000_000


@dataclass
class RunData:
    """The prepared directory, its meta.json, its tokenizer and the two splits (TokenArray views)."""

    dir: Path
    meta: dict[str, Any]
    tokenizer: Any
    train: Any
    val: Any

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def eos_token_id(self) -> int:
        return int(self.meta["eos_token_id"])


def is_prepared(data: list[str]) -> bool:
    """True when `--data` names one prepared directory."""
    return len(data) == 1 and (Path(data[0]) / "meta.json").is_file()


def _raw_inputs(cfg: TrainConfig) -> list[str]:
    if cfg.data == [STDLIB]:
        from mmfree.data.embedded import stdlib_corpus

        return [str(p) for p in stdlib_corpus(cfg.stdlib_bytes)]
    for item in cfg.data:
        path = Path(item)
        if len(cfg.data) == 1 and path.is_dir() and (path / "progress.json").is_file():
            raise ValueError(
                f"{path} holds an unfinished `mmfree data prepare` run (no meta.json): finish it by re-running "
                "`mmfree data prepare` with the same arguments, or pass the raw text instead"
            )
    return list(cfg.data)


def _prepare_raw(cfg: TrainConfig, target: Path) -> None:
    from mmfree.data.prepare import prepare
    from mmfree.models.configuration import PRESETS

    vocab = cfg.vocab_size or int(PRESETS[cfg.preset]["vocab_size"])
    prepare(
        _raw_inputs(cfg),
        target,
        tokenizer=cfg.tokenizer or None,
        val_fraction=cfg.val_fraction,
        vocab_size=vocab,
        show_progress=cfg.progress,
    )


def resolve_data(cfg: TrainConfig, out: Path, env: DistEnv) -> RunData:
    """Open (preparing first, for raw inputs) the run's data and check tokenizer, vocabulary and shards."""
    from mmfree.data.shards import load_meta, open_split
    from mmfree.data.tokenizer import check_tokenizer_matches, load_tokenizer

    if is_prepared(cfg.data):
        root = Path(cfg.data[0])
    else:
        root = out / DATA_SUBDIR
        error = None
        if env.is_main:
            try:
                _prepare_raw(cfg, root)
            except (ValueError, OSError) as err:
                error = f"{type(err).__name__}: {err}"
                if not env.distributed:
                    raise
        error = broadcast_object(error, env)
        if error is not None:
            raise ValueError(f"preparing --data failed on rank 0: {error}")
        barrier(env)
    meta = load_meta(root)
    tokenizer = load_tokenizer(root / "tokenizer")
    check_tokenizer_matches(meta, tokenizer)
    if cfg.tokenizer and is_prepared(cfg.data):
        check_tokenizer_matches(meta, load_tokenizer(cfg.tokenizer))
    if cfg.vocab_size and cfg.vocab_size != meta["vocab_size"]:
        raise ValueError(
            f"--vocab-size {cfg.vocab_size} does not match the data's tokenizer ({meta['vocab_size']} tokens in "
            f"{root}); drop --vocab-size (the model takes the tokenizer's vocabulary) or prepare the data again"
        )
    train, val = open_split(root, "train"), open_split(root, "val")
    for name, split in (("train", train), ("val", val)):
        if len(split) < cfg.seq_len + 1:
            raise ValueError(
                f"the {name} split of {root} has {len(split)} tokens, fewer than one window of --seq-len "
                f"{cfg.seq_len} + 1; use more data (or a larger --val-fraction) or a smaller --seq-len"
            )
        head = np.asarray(split[: min(len(split), _CHECK_TOKENS)])  # [N]
        if int(head.max()) >= meta["vocab_size"]:
            raise ValueError(
                f"the {name} shards of {root} hold token id {int(head.max())} >= the vocabulary "
                f"{meta['vocab_size']}: the shards do not match the tokenizer; prepare the data again"
            )
    return RunData(root, meta, tokenizer, train, val)
