"""Tokenizers for mmfree: train a byte-level BPE, load one, fingerprint it, and check it against shards.

The special-token convention follows the paper's Llama tokenizer: `<unk>` = 0, `<s>` (BOS) = 1, `</s>` (EOS) = 2.
The fingerprint is the sha256 of the tokenizer's JSON as `save_pretrained` writes it to `tokenizer.json`, so
`sha256sum OUT/tokenizer/tokenizer.json` equals the value stored in a prepared data directory's `meta.json`.

transformers is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
SPECIAL_TOKENS = (UNK_TOKEN, BOS_TOKEN, EOS_TOKEN)
BYTE_ALPHABET_SIZE = 256
MIN_VOCAB_SIZE = BYTE_ALPHABET_SIZE + len(SPECIAL_TOKENS)


def _read_text_file(path: Path) -> str:
    """Read a UTF-8 text file (gzip'd if it ends in .gz) with a clear error for missing or non-text files."""
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer training file not found: {path}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not valid UTF-8 text (byte {err.start}); convert it to UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`) or leave it out of the tokenizer training files"
        ) from None


def _iter_training_texts(files_or_texts: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Yield texts: `os.PathLike` items are read as files, `str` items are used as the text itself."""
    for item in files_or_texts:
        if isinstance(item, os.PathLike):
            yield _read_text_file(Path(item))
        elif isinstance(item, str):
            yield item
        else:
            raise TypeError(
                f"train_tokenizer expects str texts or pathlib.Path files, got {type(item).__name__}"
            )


def train_tokenizer(
    files_or_texts: Iterable[str | os.PathLike[str]],
    vocab_size: int,
    out_dir: str | os.PathLike[str],
    *,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer and save it so `AutoTokenizer.from_pretrained(out_dir)` loads it.

    `files_or_texts` mixes `pathlib.Path` items (UTF-8 text files, optionally .gz; each read whole) and
    `str` items (used as text). A plain `str` is always text, never a path. Special tokens: `<unk>`=0,
    `<s>`=1 (BOS), `</s>`=2 (EOS). No BOS/EOS is added automatically when encoding.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if int(vocab_size) < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for a byte-level BPE: it needs at least "
            f"{MIN_VOCAB_SIZE} ({BYTE_ALPHABET_SIZE} bytes + {len(SPECIAL_TOKENS)} special tokens)"
        )
    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size),
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    seen = 0

    def counting() -> Iterator[str]:
        nonlocal seen
        for text in _iter_training_texts(files_or_texts):
            seen += 1
            yield text

    backend.train_from_iterator(counting(), trainer=trainer)
    if seen == 0:
        raise ValueError("train_tokenizer got no texts: pass at least one text or file")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, unk_token=UNK_TOKEN
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out))
    return tok


def _looks_like_path(name: str) -> bool:
    """True when `name` is clearly meant as a filesystem path rather than a hub repo id."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def load_tokenizer(name_or_dir: str | os.PathLike[str], *, local_files_only: bool = False) -> Any:
    """Load a fast (tokenizers-backed) tokenizer from a local directory or a Hugging Face Hub name.

    Returns a `PreTrainedTokenizerFast` (transformers' tokenizers backend). Raises FileNotFoundError for a
    missing local directory or one without `tokenizer.json`, and OSError with a clear message when a hub name
    cannot be fetched (no network, unknown name). `local_files_only=True` skips the network (cache only).
    """
    name = os.fspath(name_or_dir)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise FileNotFoundError(
                f"tokenizer directory {path} has no tokenizer.json; mmfree needs a fast tokenizer "
                "(a directory written by save_pretrained of a PreTrainedTokenizerFast)"
            )
    elif path.exists():
        raise ValueError(f"tokenizer {name!r} is a file; pass the directory that holds tokenizer.json")
    elif isinstance(name_or_dir, os.PathLike) or _looks_like_path(name):
        raise FileNotFoundError(f"tokenizer directory not found: {path}")

    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            str(path) if path.is_dir() else name, local_files_only=local_files_only
        )
    except (OSError, ValueError) as err:
        raise OSError(
            f"could not load tokenizer {name!r}: it is not a local directory and could not be fetched from the "
            f"Hugging Face Hub (no network, or no such repo). Pass a local tokenizer directory instead, e.g. the "
            f"`tokenizer/` folder of a prepared data directory. Underlying error: {err}"
        ) from None
    if not hasattr(tok, "backend_tokenizer"):
        raise ValueError(f"tokenizer {name!r} is not a fast (tokenizers-backed) tokenizer; mmfree needs one")
    return tok


def tokenizer_json(tok: Any) -> str:
    """The tokenizer's JSON exactly as `save_pretrained` writes it to tokenizer.json."""
    backend = getattr(tok, "backend_tokenizer", tok)
    if not hasattr(backend, "to_str"):
        raise TypeError(f"expected a fast tokenizer or a tokenizers.Tokenizer, got {type(tok).__name__}")
    return backend.to_str(pretty=True)


def tokenizer_fingerprint(tok: Any) -> str:
    """sha256 hex digest of the tokenizer's JSON (equal to the sha256 of its saved tokenizer.json)."""
    return hashlib.sha256(tokenizer_json(tok).encode("utf-8")).hexdigest()


def check_tokenizer_matches(meta: dict[str, Any], tok: Any) -> None:
    """Raise ValueError when `tok` is not the tokenizer the shards described by `meta` were made with."""
    expected = meta.get("tokenizer", {})
    where = expected.get("name_or_path", "?")
    if len(tok) != meta.get("vocab_size"):
        raise ValueError(
            f"tokenizer vocab size {len(tok)} does not match the data's vocab_size {meta.get('vocab_size')} "
            f"(the shards were made with tokenizer {where!r}); use the data directory's tokenizer/ folder"
        )
    if tok.eos_token_id != meta.get("eos_token_id"):
        raise ValueError(
            f"tokenizer EOS id {tok.eos_token_id} does not match the data's eos_token_id "
            f"{meta.get('eos_token_id')}; use the data directory's tokenizer/ folder"
        )
    fingerprint = tokenizer_fingerprint(tok)
    if fingerprint != expected.get("sha256"):
        raise ValueError(
            f"tokenizer fingerprint {fingerprint[:12]}... does not match the data's {str(expected.get('sha256'))[:12]}... "
            f"(the shards were made with tokenizer {where!r}); use the data directory's tokenizer/ folder "
            "or re-run `mmfree data prepare` with this tokenizer"
        )
