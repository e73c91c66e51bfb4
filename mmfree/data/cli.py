"""Command-line settings and entry points of `mmfree data prepare` and `mmfree tokenizer train`.

The `mmfree` command (mmfree/cli.py) turns each settings dataclass into arguments; the field comments are
the `--help` text. The input name `stdlib` stands for the embedded corpus (the interpreter's own text files).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from mmfree.data import prepare as prepare_mod
from mmfree.data.embedded import stdlib_corpus
from mmfree.data.sources import iter_documents, resolve_inputs

STDLIB = "stdlib"
_log = logging.getLogger(__name__)


def expand_inputs(inputs: list[str], stdlib_bytes: int) -> list[str]:
    """Replace the name `stdlib` by the embedded corpus files (at most `stdlib_bytes` bytes; 0: all)."""
    out: list[str] = []
    for item in inputs:
        if item == STDLIB:
            out.extend(str(p) for p in stdlib_corpus(stdlib_bytes or None))
        else:
            out.append(item)
    return out


@dataclass
class PrepareArgs:
    """Settings of `mmfree data prepare`."""

    inputs: list[str]  # comma-separated files, directories, globs, hf:NAME[:CONFIG][@SPLIT], or `stdlib`
    out_dir: str  # output directory (meta.json, tokenizer/, train-*.bin, val-*.bin); rerun to resume
    tokenizer: str = ""  # tokenizer directory or hub name; empty: train a byte-level BPE on the inputs
    vocab_size: int = 32000  # vocabulary of the trained tokenizer (ignored with --tokenizer)
    val_fraction: float = 0.005  # fraction of documents held out for validation (by a hash of the text)
    num_workers: int = 0  # tokenizer threads; 0: one per CPU
    text_field: str = "text"  # field/column holding the text in .jsonl/.json/.parquet/hf inputs
    doc_separator: str = ""  # for text files: empty (one document per file), blank, line, or a literal string
    markup: Literal["auto", "wikiextractor", "none"] = "auto"  # WikiExtractor <doc> markup handling
    strip_wiki_title: bool = False  # drop the title line that starts each WikiExtractor document
    shard_mb: int = 256  # raw text per shard, in MB
    split_seed: int = 0  # seed of the train/val assignment
    stdlib_bytes: int = 0  # cap on the `stdlib` corpus in bytes; 0: all of it
    overwrite: bool = False  # replace an output directory prepared with other inputs or settings
    progress: bool = True  # show a progress bar


def prepare(args: PrepareArgs) -> int:
    """Run `mmfree data prepare` and log what was written."""
    result = prepare_mod.prepare(
        expand_inputs(args.inputs, args.stdlib_bytes),
        args.out_dir,
        tokenizer=args.tokenizer or None,
        val_fraction=args.val_fraction,
        num_workers=args.num_workers or None,
        text_field=args.text_field,
        doc_separator=args.doc_separator or None,
        markup=args.markup,
        strip_wiki_title=args.strip_wiki_title,
        vocab_size=args.vocab_size,
        shard_bytes=args.shard_mb * 1024 * 1024,
        split_seed=args.split_seed,
        overwrite=args.overwrite,
        show_progress=args.progress,
    )
    splits = result.meta["splits"]
    for name in ("train", "val"):
        s = splits[name]
        _log.info(
            "%s: %d documents, %d tokens, %d bytes, %d shards",
            name,
            s["documents"],
            s["tokens"],
            s["bytes"],
            len(s["shards"]),
        )
    if result.units_resumed:
        _log.info("resumed: %d of %d units were already done", result.units_resumed, result.units_total)
    if result.skipped_files:
        _log.info("skipped %d empty files", len(result.skipped_files))
    _log.info("wrote %s (vocab %d, %s)", result.out_dir, result.meta["vocab_size"], result.meta["dtype"])
    return 0


@dataclass
class TokenizerTrainArgs:
    """Settings of `mmfree tokenizer train`."""

    inputs: list[str]  # comma-separated files, directories, globs, hf:NAME datasets, or `stdlib`
    out_dir: str  # directory to save the tokenizer in (loadable with AutoTokenizer.from_pretrained)
    vocab_size: int = 32000  # vocabulary size, special tokens <unk>=0 <s>=1 </s>=2 included
    max_mb: int = 256  # train on at most this many MB of text
    text_field: str = "text"  # field/column holding the text in .jsonl/.json/.parquet/hf inputs
    doc_separator: str = ""  # for text files: empty (one document per file), blank, line, or a literal string
    stdlib_bytes: int = 0  # cap on the `stdlib` corpus in bytes; 0: all of it


def tokenizer_train(args: TokenizerTrainArgs) -> int:
    """Run `mmfree tokenizer train`."""
    from mmfree.data.tokenizer import train_tokenizer

    sources = resolve_inputs(expand_inputs(args.inputs, args.stdlib_bytes))
    docs: Iterator[str] = itertools.chain.from_iterable(
        iter_documents(s, text_field=args.text_field, doc_separator=args.doc_separator or None)
        for s in sources
    )
    budget = args.max_mb * 1024 * 1024

    def capped() -> Iterator[str]:
        total = 0
        for doc in docs:
            yield doc
            total += len(doc)
            if total >= budget:
                return

    tok = train_tokenizer(capped(), args.vocab_size, args.out_dir)
    _log.info("wrote %s (vocab %d)", args.out_dir, len(tok))
    return 0
