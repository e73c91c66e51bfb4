"""Study data: train the BPE tokenizer and prepare train/val token shards from chosen Wikipedia shards.

The corpus is read at run time from the shared data (`../shared` beside the repo, or `$MMFREE_SHARED`):
`data/corpus/wikipedia_en_2015/{AA..AD}/wiki_NN.gz` with `MANIFEST.tsv` (raw and gzip bytes per shard).
Shards are chosen by a spec such as `AA/wiki_00..AA/wiki_89` (a range in manifest order), a comma list of
names and ranges, or a mix. Training and validation shards must not overlap (the study holds out
`AD/wiki_90..AD/wiki_99`). The output directory is an ordinary mmfree prepared directory (meta.json,
tokenizer/, train-*.bin, val-*.bin, see mmfree/data/shards.py) plus `study_data.json`, which names the
shards behind each split with their byte counts, so every run can say which data it read.

    python -m study.prepare --out .carry/study-data --eval-out .carry/eval

The token shards are uint16 (vocabulary <= 65535); `--max-token-mb` guards the size of what the lead
carries to the GPU machine, `--max-gz-mb` the amount of gzip'd corpus one preparation reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SHARED_ENV = "MMFREE_SHARED"
CORPUS_SUBDIR = Path("data") / "corpus" / "wikipedia_en_2015"
EVAL_SUBDIR = Path("data") / "eval"
MANIFEST = "MANIFEST.tsv"
STUDY_DATA_FILE = "study_data.json"
DEFAULT_TRAIN = "AA/wiki_00..AA/wiki_89"
DEFAULT_VAL = "AD/wiki_90..AD/wiki_99"
DEFAULT_VOCAB = 16384
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Shard:
    """One corpus shard as MANIFEST.tsv lists it (`name` like `AA/wiki_07`, the file is `name + .gz`)."""

    name: str
    raw_bytes: int
    gz_bytes: int
    docs: int


def shared_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The shared data root: `override`, else $MMFREE_SHARED, else ../shared beside the repository."""
    path = Path(override or os.environ.get(SHARED_ENV) or REPO.parent / "shared").expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"shared data directory {path} not found; pass --shared DIR or set ${SHARED_ENV} to the folder "
            "holding data/corpus/wikipedia_en_2015"
        )
    return path


def read_manifest(corpus: Path) -> list[Shard]:
    """The shards listed in `corpus/MANIFEST.tsv`, in file order (columns path, raw_bytes, ..., gz_bytes)."""
    path = corpus / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; the corpus directory must hold the MANIFEST.tsv of its shards"
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    need = ("path", "raw_bytes", "docs", "gz_bytes")
    if any(col not in header for col in need):
        raise ValueError(f"{path}: header {header} lacks one of the columns {list(need)}")
    col = {name: header.index(name) for name in need}
    shards = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        try:
            shards.append(
                Shard(
                    cells[col["path"]],
                    int(cells[col["raw_bytes"]]),
                    int(cells[col["gz_bytes"]]),
                    int(cells[col["docs"]]),
                )
            )
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{lineno}: malformed row {line!r}") from None
    if not shards:
        raise ValueError(f"{path} lists no shards")
    return shards


def select_shards(spec: str, manifest: Sequence[Shard]) -> list[Shard]:
    """The shards named by `spec`: comma-separated names (`AA/wiki_03`) and ranges (`AA/wiki_00..AB/wiki_09`)."""
    index = {s.name: i for i, s in enumerate(manifest)}
    chosen: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        first, sep, last = part.partition("..")
        for name in (first, last) if sep else (first,):
            if name not in index:
                raise ValueError(
                    f"shard {name!r} (in {spec!r}) is not in the manifest; names look like "
                    f"{manifest[0].name!r}, ranges like '{manifest[0].name}..{manifest[-1].name}'"
                )
        lo, hi = index[first], index[last] if sep else index[first]
        if hi < lo:
            raise ValueError(f"shard range {part!r} runs backwards; write it as '{last}..{first}'")
        chosen.extend(i for i in range(lo, hi + 1) if i not in chosen)
    if not chosen:
        raise ValueError(f"shard spec {spec!r} selects no shards")
    return [manifest[i] for i in sorted(chosen)]


def describe_shards(shards: Sequence[Shard], manifest: Sequence[Shard]) -> str:
    """A compact spec for `shards` (manifest-order ranges joined by commas), e.g. `AA/wiki_00..AA/wiki_89`."""
    index = {s.name: i for i, s in enumerate(manifest)}
    positions = sorted(index[s.name] for s in shards)
    parts: list[str] = []
    start = prev = positions[0]
    for pos in [*positions[1:], None]:
        if pos is not None and pos == prev + 1:
            prev = pos
            continue
        parts.append(
            manifest[start].name if start == prev else f"{manifest[start].name}..{manifest[prev].name}"
        )
        if pos is not None:
            start = prev = pos
    return ",".join(parts)


def _shard_files(corpus: Path, shards: Sequence[Shard]) -> list[Path]:
    files = [corpus / f"{s.name}.gz" for s in shards]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"corpus shard files missing: {', '.join(missing[:5])}")
    return files


def _documents(files: Sequence[Path]) -> Iterator[str]:
    """The `<doc>` bodies of WikiExtractor shards, in order (mmfree's own reader and cleaner)."""
    from mmfree.data.sources import iter_documents, resolve_inputs

    for source in resolve_inputs([str(f) for f in files]):
        yield from iter_documents(source, markup="wikiextractor")


def _capped(docs: Iterator[str], max_chars: int) -> Iterator[str]:
    total = 0
    for doc in docs:
        yield doc
        total += len(doc)
        if total >= max_chars:
            return


def _settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def prepare_study_data(
    out: str | os.PathLike[str],
    *,
    shared: str | os.PathLike[str] | None = None,
    corpus: str | os.PathLike[str] | None = None,
    train: str = DEFAULT_TRAIN,
    val: str = DEFAULT_VAL,
    vocab_size: int = DEFAULT_VOCAB,
    tokenizer_mb: float = 32.0,
    max_gz_mb: float = 50.0,
    max_token_mb: float = 50.0,
    workers: int = 1,
    overwrite: bool = False,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train the tokenizer on the `train` shards and write the prepared directory `out`; return study_data.

    A rerun with the same settings returns the existing study_data.json without work; other settings on an
    existing directory need `overwrite=True`.
    """
    from mmfree.data.prepare import prepare
    from mmfree.data.shards import FORMAT, VERSION, load_meta, open_split
    from mmfree.data.tokenizer import (
        check_tokenizer_matches,
        load_tokenizer,
        tokenizer_fingerprint,
        train_tokenizer,
    )

    corpus_dir = Path(corpus) if corpus is not None else shared_dir(shared) / CORPUS_SUBDIR
    manifest = read_manifest(corpus_dir)
    train_shards, val_shards = select_shards(train, manifest), select_shards(val, manifest)
    overlap = sorted({s.name for s in train_shards} & {s.name for s in val_shards})
    if overlap:
        raise ValueError(f"train and val shards overlap ({', '.join(overlap[:5])}); choose disjoint specs")
    gz_total = sum(s.gz_bytes for s in (*train_shards, *val_shards))
    if gz_total > max_gz_mb * 1e6:
        raise ValueError(
            f"the chosen shards hold {gz_total / 1e6:.1f} MB of gzip'd text, over --max-gz-mb {max_gz_mb}; "
            "select fewer training shards"
        )
    if tokenizer_mb <= 0 or vocab_size < 259:
        raise ValueError("tokenizer_mb must be > 0 and vocab_size >= 259")
    settings = {
        "train": describe_shards(train_shards, manifest),
        "val": describe_shards(val_shards, manifest),
        "vocab_size": vocab_size,
        "tokenizer_mb": tokenizer_mb,
        "corpus": corpus_dir.name,
    }
    root = Path(out)
    info_path = root / STUDY_DATA_FILE
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("settings_hash") == _settings_hash(settings) and (root / "meta.json").is_file():
            return info
        if not overwrite:
            raise ValueError(
                f"{root} holds study data prepared with other settings ({info.get('settings')}); pass "
                "--overwrite to replace it, or choose another --out"
            )
    if root.exists() and any(root.iterdir()):
        if not overwrite and not (root / "_train").exists():
            raise ValueError(f"{root} exists and is not empty; pass --overwrite or choose another --out")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)

    train_files, val_files = _shard_files(corpus_dir, train_shards), _shard_files(corpus_dir, val_shards)
    tok_dir = root / "tokenizer"
    train_tokenizer(_capped(_documents(train_files), int(tokenizer_mb * 1e6)), vocab_size, tok_dir)
    tok = load_tokenizer(tok_dir.resolve())
    parts = {}
    for split, files in (("train", train_files), ("val", val_files)):
        parts[split] = prepare(
            [str(f) for f in files],
            root / f"_{split}",
            tokenizer=str(tok_dir.resolve()),
            val_fraction=0.0,
            num_workers=workers,
            markup="wikiextractor",
            show_progress=show_progress,
        ).meta
    splits: dict[str, Any] = {}
    for split in ("train", "val"):
        stats = dict(parts[split]["splits"]["train"])
        names = []
        for i, shard in enumerate(stats["shards"]):
            name = f"{split}-{i:05d}.bin"
            os.replace(root / f"_{split}" / shard, root / name)
            names.append(name)
        stats["shards"] = names
        splits[split] = stats
        shutil.rmtree(root / f"_{split}")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": parts["train"]["dtype"],
        "vocab_size": parts["train"]["vocab_size"],
        "eos_token_id": parts["train"]["eos_token_id"],
        "tokenizer": {"name_or_path": "tokenizer", "sha256": tokenizer_fingerprint(tok)},
        "splits": splits,
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    check_tokenizer_matches(load_meta(root), tok)
    token_bytes = sum(len(open_split(root, s)) * open_split(root, s).dtype.itemsize for s in ("train", "val"))
    info = {
        "settings": settings,
        "settings_hash": _settings_hash(settings),
        "corpus": str(CORPUS_SUBDIR),
        "vocab_size": meta["vocab_size"],
        "token_bytes": token_bytes,
        "splits": {
            split: {
                "shards": settings[split],
                "num_shards": len(chosen),
                "raw_bytes": sum(s.raw_bytes for s in chosen),
                "gz_bytes": sum(s.gz_bytes for s in chosen),
                "documents": splits[split]["documents"],
                "text_bytes": splits[split]["bytes"],
                "tokens": splits[split]["tokens"],
                "files": [asdict(s) for s in chosen],
            }
            for split, chosen in (("train", train_shards), ("val", val_shards))
        },
    }
    if token_bytes > max_token_mb * 1e6:
        raise ValueError(
            f"the prepared token shards in {root} take {token_bytes / 1e6:.1f} MB, over --max-token-mb "
            f"{max_token_mb} (what can be carried to the GPU machine); select fewer training shards and "
            "rerun with --overwrite"
        )
    info_path.write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def copy_eval_data(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> int:
    """Copy the zero-shot eval data directory `src` to `dst` (to carry it); return the bytes copied."""
    source = Path(src)
    if not source.is_dir():
        raise FileNotFoundError(f"eval data directory {source} not found; pass --eval-src DIR")
    shutil.copytree(source, dst, dirs_exist_ok=True)
    return sum(p.stat().st_size for p in Path(dst).rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """Command line: prepare the study data (and copy the eval data) for carrying to the GPU machine."""
    parser = argparse.ArgumentParser(prog="python -m study.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".carry/study-data", help="prepared directory to write")
    parser.add_argument(
        "--shared", default=None, help=f"shared data root (default ${SHARED_ENV} or ../shared)"
    )
    parser.add_argument(
        "--corpus", default=None, help="corpus directory (default SHARED/" + str(CORPUS_SUBDIR) + ")"
    )
    parser.add_argument("--train", default=DEFAULT_TRAIN, help="training shards (names and a..b ranges)")
    parser.add_argument("--val", default=DEFAULT_VAL, help="validation shards (held out)")
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB, help="BPE vocabulary size")
    parser.add_argument("--tokenizer-mb", type=float, default=32.0, help="MB of training text for the BPE")
    parser.add_argument("--max-gz-mb", type=float, default=50.0, help="cap on gzip'd corpus bytes read")
    parser.add_argument("--max-token-mb", type=float, default=50.0, help="cap on the token shards' bytes")
    parser.add_argument("--workers", type=int, default=1, help="tokenizing processes")
    parser.add_argument("--eval-src", default=None, help="eval data to copy (default SHARED/data/eval)")
    parser.add_argument("--eval-out", default=None, help="copy the eval data here too (e.g. .carry/eval)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing prepared directory")
    args = parser.parse_args(argv)
    try:
        info = prepare_study_data(
            args.out,
            shared=args.shared,
            corpus=args.corpus,
            train=args.train,
            val=args.val,
            vocab_size=args.vocab_size,
            tokenizer_mb=args.tokenizer_mb,
            max_gz_mb=args.max_gz_mb,
            max_token_mb=args.max_token_mb,
            workers=args.workers,
            overwrite=args.overwrite,
            show_progress=True,
        )
        copied = None
        if args.eval_out:
            src = args.eval_src or shared_dir(args.shared) / EVAL_SUBDIR
            copied = copy_eval_data(src, args.eval_out)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split, s in info["splits"].items():
        print(
            f"{split}: {s['shards']} ({s['num_shards']} shards, {s['gz_bytes'] / 1e6:.1f} MB gz, "
            f"{s['raw_bytes'] / 1e6:.1f} MB raw) -> {s['tokens']:,} tokens"
        )
    print(f"token shards: {info['token_bytes'] / 1e6:.1f} MB in {args.out}")
    if copied is not None:
        print(f"eval data: {copied / 1e6:.1f} MB copied to {args.eval_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
