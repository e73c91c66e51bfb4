"""The embedded default corpus: text files that ship with every Python interpreter.

`stdlib_corpus()` lists the standard library's own `.py` sources and `.txt`/`.rst` files, so a model can be
trained with no download at all. Test directories, site-/dist-packages, build-configuration folders, empty
files and files that are not valid UTF-8 are left out. The selection is deterministic for a given interpreter:
with a `max_bytes` cap, files are taken in an order fixed by a hash of their relative paths (a spread over the
whole library rather than its alphabetical start), and the result is returned sorted by relative path.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path

SUFFIXES = (".py", ".txt", ".rst")
EXCLUDED_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "_bundled"}
)


def stdlib_root() -> Path:
    """The standard library directory of the running interpreter."""
    return Path(sysconfig.get_paths()["stdlib"])


def _is_utf8_text(path: Path) -> bool:
    data = path.read_bytes()
    if not data.strip() or b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def stdlib_corpus(max_bytes: int | None = None) -> list[Path]:
    """Standard-library text files (about 12 MB on CPython 3.11), at most `max_bytes` in total if given."""
    if max_bytes is not None and max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive or None, got {max_bytes}")
    root = stdlib_root()
    if not root.is_dir():
        raise FileNotFoundError(f"the Python standard library directory {root} does not exist")
    found: list[tuple[str, Path, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in EXCLUDED_DIRS and not d.startswith((".", "config-"))
        )
        for name in filenames:
            path = Path(dirpath) / name
            if path.suffix in SUFFIXES and not path.is_symlink():
                rel = path.relative_to(root).as_posix()
                found.append((rel, path, path.stat().st_size))
    if max_bytes is not None:
        found.sort(key=lambda item: hashlib.sha256(item[0].encode()).hexdigest())
    chosen: list[tuple[str, Path]] = []
    total = 0
    for rel, path, size in found:
        if max_bytes is not None and total + size > max_bytes:
            continue
        if size and _is_utf8_text(path):
            chosen.append((rel, path))
            total += size
    if not chosen:
        raise ValueError(f"no standard-library text files found under {root} within max_bytes={max_bytes}")
    return [path for _, path in sorted(chosen)]
