"""Input resolution and document reading for `mmfree data prepare`.

An input is a file, a directory (walked recursively), a glob pattern, or a Hugging Face dataset
(`hf:NAME[:CONFIG][@SPLIT]`, streamed through the optional `datasets` package). Files may be plain text
(.txt and other/no extension), JSON lines (.jsonl), JSON (.json: an array of records or strings), or Parquet
(.parquet, needs pyarrow), each optionally gzip'd (.gz). Text files holding WikiExtractor `<doc ...>` markup are
split into one document per `<doc>`; other text files are one document each unless `doc_separator` is set.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
TEXT_SUFFIXES = (".txt", ".text", ".md", ".rst", "")
WALK_SUFFIXES = DATA_SUFFIXES + TEXT_SUFFIXES
MARKUP_CHOICES = ("auto", "wikiextractor", "none")
_DOC_OPEN = re.compile(r"^<doc(\s[^>]*)?>\s*$")
_DOC_TITLE = re.compile(r'title="([^"]*)"')
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Source:
    """One resolved input: a file (`kind="file"`) or a Hugging Face dataset (`kind="hf"`)."""

    kind: str
    location: str
    fmt: str
    explicit: bool

    def identity(self) -> list[Any]:
        """What makes a rerun's input the same: path, size and mtime for files; the spec for datasets."""
        if self.kind == "hf":
            return [self.kind, self.location]
        st = os.stat(self.location)
        return [self.kind, self.location, self.fmt, st.st_size, st.st_mtime_ns]


def _base_suffix(path: Path) -> str:
    """The suffix that names the format, ignoring a trailing .gz (`a.jsonl.gz` -> `.jsonl`)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).suffix.lower()


def _file_format(path: Path) -> str:
    suffix = _base_suffix(path)
    return suffix[1:] if suffix in DATA_SUFFIXES else "text"


def _walk_dir(root: Path) -> list[Path]:
    """Files under `root` with a known suffix (or none), skipping hidden entries, in sorted order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if not name.startswith(".") and _base_suffix(path) in WALK_SUFFIXES:
                found.append(path)
    return sorted(found, key=lambda p: p.as_posix())


def parse_hf_spec(spec: str) -> tuple[str, str | None, str]:
    """Split `hf:NAME[:CONFIG][@SPLIT]` into (name, config, split); the split defaults to "train"."""
    body = spec[3:]
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name:
        raise ValueError(
            f"bad dataset input {spec!r}: expected hf:NAME[:CONFIG][@SPLIT], e.g. hf:wikitext:wikitext-103-raw-v1@train"
        )
    return name, config or None, split or "train"


def resolve_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Source]:
    """Expand files, directories, globs and `hf:` specs into an ordered, de-duplicated list of sources."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise ValueError("no inputs given: pass text files, directories, globs or hf:NAME datasets")
    sources: list[Source] = []
    seen: set[str] = set()

    def add(source: Source) -> None:
        if source.location not in seen:
            seen.add(source.location)
            sources.append(source)

    def add_file(path: Path, explicit: bool) -> None:
        add(Source("file", str(path.resolve()), _file_format(path), explicit))

    for item in inputs:
        text = os.fspath(item)
        if text.startswith("hf:"):
            parse_hf_spec(text)
            add(Source("hf", text, "hf", True))
            continue
        path = Path(text).expanduser()
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise FileNotFoundError(f"input pattern {text!r} matched no files")
            for match in matches:
                mpath = Path(match)
                if mpath.is_dir():
                    for f in _walk_dir(mpath):
                        add_file(f, explicit=False)
                elif mpath.is_file():
                    add_file(mpath, explicit=False)
        elif path.is_dir():
            files = _walk_dir(path)
            if not files:
                raise FileNotFoundError(
                    f"input directory {path} holds no readable files (looked for {', '.join(s or 'no suffix' for s in WALK_SUFFIXES)}, optionally .gz)"
                )
            for f in files:
                add_file(f, explicit=False)
        elif path.is_file():
            add_file(path, explicit=True)
        else:
            raise FileNotFoundError(
                f"input not found: {text!r} (not a file, directory, glob or hf:NAME dataset)"
            )
    return sources


def _open_binary(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _sniff(path: str) -> None:
    """Reject binary files early (NUL bytes in the first few KB), naming the file and the fix."""
    with _open_binary(path) as fh:
        head = fh.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise ValueError(
            f"{path} looks like a binary file (it contains NUL bytes), not text; remove it from the inputs "
            "or convert it to UTF-8 text"
        )


def _open_text(path: str) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8", errors="strict")


def _wiki_documents(lines: Iterable[str], strip_title: bool) -> Iterator[str]:
    """Documents from WikiExtractor output: the text between each `<doc ...>` line and its `</doc>` line."""
    body: list[str] | None = None
    title: str | None = None
    for line in lines:
        stripped = line.strip()
        if body is None:
            match = _DOC_OPEN.match(stripped)
            if match:
                body = []
                found = _DOC_TITLE.search(stripped)
                title = found.group(1) if found else None
            continue
        if stripped == "</doc>":
            yield _finish_wiki(body, title, strip_title)
            body = None
        else:
            body.append(line)
    if body is not None:
        yield _finish_wiki(body, title, strip_title)


def _finish_wiki(body: list[str], title: str | None, strip_title: bool) -> str:
    if strip_title:
        for i, line in enumerate(body):
            if line.strip():
                if title is None or line.strip() == title.strip():
                    body = body[i + 1 :]
                break
    return "".join(body).strip("\n")


def _separated_documents(lines: Iterable[str], separator: str) -> Iterator[str]:
    """Documents split on blank lines (`separator="blank"`) or one per line (`separator="line"`)."""
    if separator == "line":
        for line in lines:
            yield line.rstrip("\n")
        return
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line)
        elif block:
            yield "".join(block).rstrip("\n")
            block = []
    if block:
        yield "".join(block).rstrip("\n")


def _text_documents(
    path: str, doc_separator: str | None, markup: str, strip_wiki_title: bool
) -> Iterator[str]:
    with _open_text(path) as fh:
        if markup == "auto":
            first = ""
            for line in fh:
                if line.strip():
                    first = line.strip()
                    break
            markup = "wikiextractor" if _DOC_OPEN.match(first) else "none"
            fh.seek(0)
        if markup == "wikiextractor":
            yield from _wiki_documents(fh, strip_wiki_title)
        elif doc_separator in ("blank", "line"):
            yield from _separated_documents(fh, doc_separator)
        elif doc_separator:
            yield from fh.read().split(doc_separator)
        else:
            yield fh.read()


def _row_text(row: Any, text_field: str, where: str) -> str | None:
    if isinstance(row, str):
        return row
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object or string, got {type(row).__name__}")
    if text_field not in row:
        fields = ", ".join(map(repr, list(row)[:10]))
        raise ValueError(
            f"{where}: no field {text_field!r} (fields: {fields}); pass text_field=<the text column>"
        )
    value = row[text_field]
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{where}: field {text_field!r} is {type(value).__name__}, not a string")


def _jsonl_documents(lines: Iterable[str], path: str, text_field: str) -> Iterator[str]:
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}:{lineno}: invalid JSON ({err.msg}); each line of a JSON-lines file must be one JSON value"
            ) from None
        text = _row_text(row, text_field, f"{path}:{lineno}")
        if text is not None:
            yield text


def _json_documents(path: str, text_field: str) -> Iterator[str]:
    with _open_text(path) as fh:
        raw = fh.read()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":
            yield from _jsonl_documents(io.StringIO(raw), path, text_field)
            return
        raise ValueError(
            f"{path}: invalid JSON ({err.msg} at line {err.lineno}); fix or re-export the file"
        ) from None
    rows = data if isinstance(data, list) else [data]
    for i, row in enumerate(rows):
        text = _row_text(row, text_field, f"{path}[{i}]")
        if text is not None:
            yield text


def _parquet_documents(path: str, text_field: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            f"reading {path} needs pyarrow: pip install pyarrow (or `pip install mmfree[data]`)"
        ) from None
    handle: Any = path
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            handle = io.BytesIO(fh.read())
    try:
        pfile = pq.ParquetFile(handle)
    except Exception as err:
        raise ValueError(f"{path}: not a readable Parquet file ({err})") from None
    columns = pfile.schema_arrow.names
    if text_field not in columns:
        raise ValueError(
            f"{path}: no column {text_field!r} (columns: {columns}); pass text_field=<the text column>"
        )
    for batch in pfile.iter_batches(columns=[text_field]):
        for value in batch.column(0).to_pylist():
            if value is not None:
                yield str(value)


def _hf_documents(spec: str, text_field: str) -> Iterator[str]:
    name, config, split = parse_hf_spec(spec)
    try:
        import datasets
    except ImportError:
        raise ImportError(
            f"input {spec!r} needs the `datasets` package: pip install datasets (or `pip install mmfree[data]`); "
            "or download the data elsewhere and pass local .jsonl/.parquet files"
        ) from None
    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True)
        for i, row in enumerate(stream):
            text = _row_text(row, text_field, f"{spec} row {i}")
            if text is not None:
                yield text
    except (ValueError, ImportError):
        raise
    except Exception as err:
        raise ConnectionError(
            f"could not stream Hugging Face dataset {spec!r} (no network, or no such dataset/config/split?): "
            f"{type(err).__name__}: {err}. Download it where there is network and pass local files instead"
        ) from None


def _source_documents(
    source: Source, text_field: str, doc_separator: str | None, markup: str, strip_wiki_title: bool
) -> Iterator[str]:
    if source.kind == "hf":
        yield from _hf_documents(source.location, text_field)
        return
    path = source.location
    if source.fmt != "parquet":
        _sniff(path)
    if source.fmt == "text":
        yield from _text_documents(path, doc_separator, markup, strip_wiki_title)
    elif source.fmt == "jsonl":
        with _open_text(path) as fh:
            yield from _jsonl_documents(fh, path, text_field)
    elif source.fmt == "json":
        yield from _json_documents(path, text_field)
    else:
        yield from _parquet_documents(path, text_field)


def iter_documents(
    source: Source,
    *,
    text_field: str = "text",
    doc_separator: str | None = None,
    markup: str = "auto",
    strip_wiki_title: bool = False,
) -> Iterator[str]:
    """Yield the non-blank documents of one source, with clear errors for binary or non-UTF-8 files."""
    if markup not in MARKUP_CHOICES:
        raise ValueError(f"markup must be one of {MARKUP_CHOICES}, got {markup!r}")
    try:
        for doc in _source_documents(source, text_field, doc_separator, markup, strip_wiki_title):
            if doc.strip():
                yield doc
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{source.location} is not valid UTF-8 text (bad byte at offset {err.start} of a read block); "
            "convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`) or remove it from the inputs"
        ) from None
    except (gzip.BadGzipFile, EOFError) as err:
        raise ValueError(
            f"{source.location}: cannot decompress ({err}); is it a complete, valid gzip file?"
        ) from None
