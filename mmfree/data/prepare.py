"""`mmfree data prepare`: raw text -> tokenized, EOS-separated, memory-mappable shards (layout in shards.py).

The inputs become one deterministic stream of documents (sources in the given order, files sorted within
directories and globs). Each document goes to "train" or "val" by a seeded sha256 of its text, so reruns (and
duplicated documents) always land in the same split. The stream is cut into units of about `shard_bytes` of
raw text; each unit is tokenized (batches encoded on `num_workers` threads) and written as one
train shard and one val shard (temp file + os.replace), then recorded in `progress.json`. A rerun with the same
inputs and settings skips the recorded units, so an interrupted prepare resumes where it stopped and produces
the same bytes as an uninterrupted one. `meta.json` is written last, when everything is done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm.auto import tqdm

from mmfree.data.shards import DTYPES, FORMAT, SPLITS, VERSION, dtype_for_vocab
from mmfree.data.sources import MARKUP_CHOICES, Source, iter_documents, resolve_inputs

PROGRESS_FILE = "progress.json"
META_FILE = "meta.json"
TOKENIZER_DIR = "tokenizer"
_BATCH_BYTES = 1 << 20
_BATCH_DOCS = 512


@dataclass
class PrepareResult:
    """What `prepare` produced: the output directory, its meta.json contents, and how the run went."""

    out_dir: Path
    meta: dict[str, Any]
    units_total: int
    units_resumed: int
    skipped_files: list[str] = field(default_factory=list)

    @property
    def train_tokens(self) -> int:
        return int(self.meta["splits"]["train"]["tokens"])

    @property
    def val_tokens(self) -> int:
        return int(self.meta["splits"]["val"]["tokens"])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _split_of(data: bytes, val_fraction: float, seed: int) -> str:
    """Deterministic split: a seeded sha256 of the document's bytes mapped to [0, 1)."""
    if val_fraction <= 0.0:
        return "train"
    digest = hashlib.sha256(seed.to_bytes(8, "little", signed=True) + data).digest()
    return "val" if int.from_bytes(digest[:8], "little") / 2.0**64 < val_fraction else "train"


class _Encoder:
    """Encodes batches in submission order on `num_workers` threads (tokenizers releases the GIL).

    Each call encodes one batch single-threaded, so `num_workers` bounds the cores used for tokenization.
    """

    def __init__(self, tokenizer_file: Path, eos: int, dtype: str, num_workers: int) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(tokenizer_file))
        self.eos = np.array([eos], dtype=np.int64)  # [1]
        self.dtype = DTYPES[dtype]
        self.pool = ThreadPoolExecutor(num_workers) if num_workers > 1 else None
        self.pending: deque[tuple[Any, Future[np.ndarray]]] = deque()
        self.limit = 2 * num_workers

    def encode(self, texts: list[str]) -> np.ndarray:
        """Token ids of `texts`, each followed by the EOS id, concatenated."""
        if not texts:
            return np.zeros(0, dtype=self.dtype)  # [0]
        encodings = self.tok.encode_batch(texts, add_special_tokens=False)
        parts = [piece for enc in encodings for piece in (np.asarray(enc.ids, dtype=np.int64), self.eos)]
        return np.concatenate(parts).astype(self.dtype)  # [sum(len_i + 1)]

    def submit(self, key: Any, texts: list[str]) -> Iterator[tuple[Any, np.ndarray]]:
        """Queue a batch; yield the (key, ids) results that are ready, oldest first."""
        if self.pool is None:
            yield key, self.encode(texts)
            return
        self.pending.append((key, self.pool.submit(self.encode, texts)))
        while len(self.pending) > self.limit:
            k, fut = self.pending.popleft()
            yield k, fut.result()

    def drain(self) -> Iterator[tuple[Any, np.ndarray]]:
        while self.pending:
            k, fut = self.pending.popleft()
            yield k, fut.result()

    def close(self) -> None:
        if self.pool is not None:
            for _, fut in self.pending:
                fut.cancel()
            self.pool.shutdown(wait=True)


class _UnitWriter:
    """Accumulates one unit's train/val tokens into temp files and publishes them atomically."""

    def __init__(self, out: Path, index: int) -> None:
        self.out = out
        self.index = index
        self.docs = 0
        self.stats = {s: {"tokens": 0, "documents": 0, "bytes": 0} for s in SPLITS}
        self.files: dict[str, IO[bytes]] = {}

    def add_doc(self, split: str, nbytes: int) -> None:
        self.stats[split]["documents"] += 1
        self.stats[split]["bytes"] += nbytes

    def write(self, split: str, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        if split not in self.files:
            self.files[split] = open(self.out / f"unit-{self.index:05d}-{split}.tmp", "wb")  # noqa: SIM115
        self.files[split].write(ids.astype(ids.dtype.newbyteorder("<"), copy=False).tobytes())
        self.stats[split]["tokens"] += len(ids)

    def finish(self, shard_counts: dict[str, int]) -> dict[str, Any]:
        """Close and rename the temp files to their shard names; return this unit's progress record."""
        record: dict[str, Any] = {"docs": self.docs}
        for split in SPLITS:
            entry = dict(self.stats[split], shard=None)
            if split in self.files:
                self.files[split].close()
                name = f"{split}-{shard_counts[split]:05d}.bin"
                os.replace(self.out / f"unit-{self.index:05d}-{split}.tmp", self.out / name)
                entry["shard"] = name
            record[split] = entry
        return record


def _clean_out_dir(out: Path, everything: bool) -> None:
    """Remove temp leftovers (and with `everything`, all files prepare writes) from `out`."""
    for path in out.glob("*.tmp"):
        path.unlink()
    if everything:
        for pattern in (META_FILE, PROGRESS_FILE, "train-*.bin", "val-*.bin"):
            for path in out.glob(pattern):
                path.unlink()
        shutil.rmtree(out / TOKENIZER_DIR, ignore_errors=True)


def _stream(
    sources: list[Source], skipped: list[str], opts: dict[str, Any], split_seed: int, val_fraction: float
) -> Iterator[tuple[str, str, int]]:
    """Yield (text, split, utf8_bytes) for every document; empty walked files are noted in `skipped`."""
    for source in sources:
        count = 0
        for doc in iter_documents(source, **opts):
            data = doc.encode("utf-8")
            count += 1
            yield doc, _split_of(data, val_fraction, split_seed), len(data)
        if count == 0:
            if source.explicit:
                raise ValueError(
                    f"input {source.location} holds no documents (it is empty or blank"
                    + (f", or has no non-empty {opts['text_field']!r} values" if source.fmt != "text" else "")
                    + "); remove it from the inputs"
                )
            skipped.append(source.location)


def _setup_tokenizer(
    out: Path,
    given: Any,
    progress: dict[str, Any],
    train_docs: Iterator[str],
    vocab_size: int,
    tokenizer_train_bytes: int,
) -> Any:
    """Load or train the tokenizer, save it to OUT/tokenizer, and return it as loaded back from there."""
    from mmfree.data.tokenizer import load_tokenizer, tokenizer_fingerprint, train_tokenizer

    target = out / TOKENIZER_DIR
    if progress.get("tokenizer_sha256") and (target / "tokenizer.json").is_file():
        tok = load_tokenizer(target)
        if tokenizer_fingerprint(tok) == progress["tokenizer_sha256"]:
            return tok
    tmp = out / (TOKENIZER_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if given is None:

        def capped() -> Iterator[str]:
            total = 0
            for doc in train_docs:
                yield doc
                total += len(doc)
                if total >= tokenizer_train_bytes:
                    return

        train_tokenizer(capped(), vocab_size, tmp)
    else:
        given.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    tok = load_tokenizer(target)
    if tok.eos_token_id is None:
        raise ValueError(
            "the tokenizer has no EOS token; mmfree separates documents with EOS, pick another one"
        )
    progress["tokenizer_sha256"] = tokenizer_fingerprint(tok)
    return tok


def prepare(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    tokenizer: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.005,
    num_workers: int | None = None,
    text_field: str = "text",
    *,
    doc_separator: str | None = None,
    markup: str = "auto",
    strip_wiki_title: bool = False,
    vocab_size: int = 32000,
    tokenizer_train_bytes: int = 256 * 1024 * 1024,
    shard_bytes: int = 256 * 1024 * 1024,
    split_seed: int = 0,
    overwrite: bool = False,
    show_progress: bool = True,
) -> PrepareResult:
    """Tokenize `inputs` into `out_dir` (meta.json, tokenizer/, train-NNNNN.bin, val-NNNNN.bin).

    `tokenizer`: a local tokenizer directory or hub name; None trains a byte-level BPE of `vocab_size` on up to
    `tokenizer_train_bytes` characters of the training documents (always use OUT/tokenizer with the shards). `num_workers` threads tokenize
    (None: one per CPU); the output does not depend on it. `doc_separator`: None (one
    document per text file), "blank" (blank lines separate documents), "line" (one per line) or a literal
    string. `markup`: "auto" (detect WikiExtractor `<doc>` files), "wikiextractor" or "none". Rerunning with
    the same arguments resumes an interrupted run; different arguments on an existing directory raise unless
    `overwrite=True`.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1 (or None for one per CPU), got {num_workers}")
    if shard_bytes < 1 or tokenizer_train_bytes < 1:
        raise ValueError("shard_bytes and tokenizer_train_bytes must be positive")
    if markup not in MARKUP_CHOICES:
        raise ValueError(f"markup must be one of {MARKUP_CHOICES}, got {markup!r}")
    sources = resolve_inputs(inputs)
    for source in sources:
        if source.kind == "file" and source.explicit and os.path.getsize(source.location) == 0:
            raise ValueError(f"input file {source.location} is empty; remove it from the inputs")
    given_tok = None
    if tokenizer is not None:
        tokenizer = os.fspath(tokenizer)
        from mmfree.data.tokenizer import load_tokenizer, tokenizer_fingerprint

        given_tok = load_tokenizer(tokenizer)
        tok_spec: dict[str, Any] = {"name": tokenizer, "sha256": tokenizer_fingerprint(given_tok)}
    else:
        tok_spec = {"train": vocab_size, "bytes": tokenizer_train_bytes}
    opts = {"text_field": text_field, "doc_separator": doc_separator, "markup": markup}
    opts["strip_wiki_title"] = strip_wiki_title
    config: dict[str, Any] = {
        "sources": [s.identity() for s in sources],
        "options": opts,
        "val_fraction": val_fraction,
        "split_seed": split_seed,
        "shard_bytes": shard_bytes,
        "tokenizer": tok_spec,
    }
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress_path = out / PROGRESS_FILE
    progress: dict[str, Any] = {"config": config_hash, "units": []}
    if progress_path.is_file():
        old = json.loads(progress_path.read_text(encoding="utf-8"))
        if old.get("config") == config_hash:
            progress = old
        elif not overwrite:
            raise ValueError(
                f"{out} already holds data prepared from different inputs or settings; pass overwrite=True "
                "(--overwrite) to replace it, or choose a new output directory"
            )
    elif (out / META_FILE).is_file() and not overwrite:
        raise ValueError(f"{out} already holds a meta.json not written by this prepare; pass overwrite=True")
    _clean_out_dir(out, everything=progress["units"] == [] and not progress.get("tokenizer_sha256"))
    _atomic_write_text(progress_path, json.dumps(progress, indent=1))
    if progress.get("done") and (out / META_FILE).is_file():
        meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
        return PrepareResult(out, meta, len(progress["units"]), len(progress["units"]))

    skipped: list[str] = []
    train_docs = (
        doc for doc, split, _ in _stream(sources, [], opts, split_seed, val_fraction) if split == "train"
    )
    tok = _setup_tokenizer(out, given_tok, progress, train_docs, vocab_size, tokenizer_train_bytes)
    _atomic_write_text(progress_path, json.dumps(progress, indent=1))
    vocab, eos = len(tok), int(tok.eos_token_id)
    dtype = dtype_for_vocab(vocab)

    units: list[dict[str, Any]] = progress["units"]
    resumed = len(units)
    to_skip = sum(u["docs"] for u in units)
    shard_counts = {s: sum(1 for u in units if u[s]["shard"]) for s in SPLITS}
    saved_env = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per batch: num_workers bounds the cores
    encoder = _Encoder(out / TOKENIZER_DIR / "tokenizer.json", eos, dtype, num_workers)
    bar = tqdm(desc="tokenizing", unit="B", unit_scale=True, disable=not show_progress)
    writers: dict[int, _UnitWriter] = {}

    def consume(results: Iterator[tuple[Any, np.ndarray]]) -> None:
        for (index, split, last), ids in results:
            if split is not None:
                writers[index].write(split, ids)
            if last:
                done = writers.pop(index)
                record = done.finish(shard_counts)
                for s in SPLITS:
                    shard_counts[s] += record[s]["shard"] is not None
                units.append(record)
                _atomic_write_text(progress_path, json.dumps(progress, indent=1))

    try:
        unit = _UnitWriter(out, len(units))
        writers[unit.index] = unit
        batches: dict[str, list[str]] = {s: [] for s in SPLITS}
        batch_bytes = dict.fromkeys(SPLITS, 0)
        unit_bytes = 0

        def flush(split: str, last: bool) -> None:
            consume(encoder.submit((unit.index, split, last), batches[split]))
            batches[split], batch_bytes[split] = [], 0

        def close_unit() -> None:
            for s in SPLITS:
                if batches[s]:
                    flush(s, last=False)
            consume(encoder.submit((unit.index, None, True), []))

        for i, (doc, split, nbytes) in enumerate(_stream(sources, skipped, opts, split_seed, val_fraction)):
            if i < to_skip:
                continue
            unit.docs += 1
            unit.add_doc(split, nbytes)
            batches[split].append(doc)
            batch_bytes[split] += nbytes
            unit_bytes += nbytes
            bar.update(nbytes)
            if unit_bytes >= shard_bytes:
                close_unit()
                unit = _UnitWriter(out, unit.index + 1)
                writers[unit.index] = unit
                unit_bytes = 0
            elif len(batches[split]) >= _BATCH_DOCS or batch_bytes[split] >= _BATCH_BYTES:
                flush(split, last=False)
        if unit.docs:
            close_unit()
        consume(encoder.drain())
    finally:
        bar.close()
        encoder.close()
        if saved_env is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved_env
        for writer in writers.values():
            for fh in writer.files.values():
                fh.close()

    return _finish(out, progress, tokenizer, tok, dtype, vocab, eos, skipped, resumed, val_fraction)


def _finish(
    out: Path,
    progress: dict[str, Any],
    tokenizer: str | None,
    tok: Any,
    dtype: str,
    vocab: int,
    eos: int,
    skipped: list[str],
    resumed: int,
    val_fraction: float,
) -> PrepareResult:
    """Sum the units into meta.json (written atomically), mark progress done, and report."""
    units = progress["units"]
    splits: dict[str, Any] = {}
    for s in SPLITS:
        splits[s] = {
            "shards": [u[s]["shard"] for u in units if u[s]["shard"]],
            "tokens": sum(u[s]["tokens"] for u in units),
            "documents": sum(u[s]["documents"] for u in units),
            "bytes": sum(u[s]["bytes"] for u in units),
        }
    if splits["train"]["documents"] + splits["val"]["documents"] == 0:
        raise ValueError(
            "the inputs hold no documents at all (every file was empty or blank); check the inputs"
        )
    if splits["train"]["documents"] == 0:
        raise ValueError(
            f"no document fell into the train split (val_fraction={val_fraction}); lower val_fraction"
        )
    if val_fraction > 0 and splits["val"]["documents"] == 0:
        warnings.warn(
            f"no document fell into the val split ({splits['train']['documents']} documents, "
            f"val_fraction={val_fraction}); use more documents, doc_separator='blank' for .txt inputs, "
            "or a larger val_fraction",
            stacklevel=3,
        )
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype,
        "vocab_size": vocab,
        "eos_token_id": eos,
        "tokenizer": {
            "name_or_path": tokenizer if tokenizer is not None else TOKENIZER_DIR,
            "sha256": progress["tokenizer_sha256"],
        },
        "splits": splits,
    }
    _atomic_write_text(out / META_FILE, json.dumps(meta, indent=2))
    progress["done"] = True
    _atomic_write_text(out / PROGRESS_FILE, json.dumps(progress, indent=1))
    return PrepareResult(out, meta, len(units), resumed, skipped)
