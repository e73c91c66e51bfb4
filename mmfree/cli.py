"""The `mmfree` command: a thin map from subcommands onto typed functions.

Each subcommand is a dataclass of settings (every field commented; the comment is the `--help` text)
and a function taking it. Fields without a default are positional arguments; `bool` fields become
`--flag/--no-flag`; `Literal` fields get choices; `list[str]` fields take comma-separated values.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import io
import logging
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

# subcommand -> (module, settings dataclass, function, one-line description)
# ("data prepare" is the subcommand `prepare` of the group `data`.)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "info": (
        "mmfree.models.info",
        "InfoArgs",
        "info",
        "architecture and parameter counts of a preset or checkpoint",
    ),
    "convert": (
        "mmfree.models.convert",
        "ConvertArgs",
        "convert",
        "official hgrn_bit checkpoint -> mmfree checkpoint",
    ),
    "tokenizer train": (
        "mmfree.data.cli",
        "TokenizerTrainArgs",
        "tokenizer_train",
        "train a byte-level BPE tokenizer",
    ),
    "data prepare": (
        "mmfree.data.cli",
        "PrepareArgs",
        "prepare",
        "raw text -> tokenized, packed, memory-mapped shards",
    ),
    "train": (
        "mmfree.train.cli",
        "TrainArgs",
        "train",
        "pretrain a MatMul-free LM (or the Transformer++ baseline)",
    ),
    "eval": ("mmfree.eval.cli", "EvalArgs", "evaluate", "perplexity, bits per byte and zero-shot tasks"),
    "pack": ("mmfree.infer.cli", "PackArgs", "pack", "trained checkpoint -> packed 2-bit ternary checkpoint"),
    "generate": (
        "mmfree.infer.cli",
        "GenerateArgs",
        "generate",
        "generate text from a checkpoint (packed or not)",
    ),
    "hw simulate": (
        "mmfree.hw.cli",
        "SimulateArgs",
        "simulate",
        "integer-only engine: perplexity, op counts, cost",
    ),
    "hw export": ("mmfree.hw.cli", "ExportArgs", "export", "write the memory images an RTL core would load"),
}


def register(name: str, module: str, settings: str, function: str, description: str) -> None:
    """Add a subcommand (used by the package's own areas; kept in one table for `mmfree --help`)."""
    COMMANDS[name] = (module, settings, function, description)


def _field_comments(cls: type) -> dict[str, str]:
    """The `# comments` on each dataclass field's line(s), by field name (they are its --help text)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    by_line: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            by_line[tok.start[0]] = tok.string.lstrip("# ").strip()
    comments: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            comments[node.target.id] = " ".join(by_line[i] for i in lines if i in by_line)
    return comments


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser(cls: type, parser: argparse.ArgumentParser) -> None:
    """Add one argument per dataclass field of `cls` to `parser`."""
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    for f in dataclasses.fields(cls):
        tp = _unwrap_optional(hints[f.name])
        help_text = comments.get(f.name, "")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = (
            None if required else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        )
        kwargs: dict[str, Any] = {"help": help_text + ("" if required else f" (default: {default})")}
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(typing.get_args(tp))
            kwargs["type"] = type(typing.get_args(tp)[0])
        elif origin in (list, Sequence):
            kwargs["type"] = _split_list
        elif tp in (int, float, str):
            kwargs["type"] = tp
        if required:
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=default, **kwargs)


def _load(name: str) -> tuple[type, Callable[[Any], Any]]:
    module, settings, function, _ = COMMANDS[name]
    mod = importlib.import_module(module)
    return getattr(mod, settings), getattr(mod, function)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mmfree` console script."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="mmfree", description="MatMul-free language models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Build only the parser of the command asked for (imports stay light); list them all for --help.
    words = [a for a in argv if not a.startswith("-")][:2]
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (_, _, _, description) in COMMANDS.items():
        group, _, leaf = name.rpartition(" ")
        if group:
            if group not in groups:
                gp = sub.add_parser(group, help=f"{group} commands")
                groups[group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            p = groups[group].add_parser(leaf, help=description, description=description)
        else:
            p = sub.add_parser(name, help=description, description=description)
        if name.split() == words[: len(name.split())]:
            build_parser(_load(name)[0], p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    command = f"{args.command} {args.subcommand}" if args.command in groups else args.command
    cls, fn = _load(command)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    try:
        result = fn(cls(**values))
    except (ValueError, FileNotFoundError, FileExistsError, OSError, ImportError) as err:
        if args.verbose:
            raise
        print(f"mmfree {command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mmfree {args.command}: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
