"""Zero-shot task definitions and data loaders, matching lm-evaluation-harness prompt formats.

Every multiple-choice item becomes a `MultipleChoiceDoc`: one (context, continuation) request per
choice, scored by the log-likelihood of the continuation only. The strings are built exactly as
lm-evaluation-harness (v0.4) builds them for the same task:

- arc_easy / arc_challenge: context "Question: {question}\\nAnswer:", continuation " {choice}".
  MosaicML's `query` is "Question: {question}" without the "\\nAnswer:" line, so it is appended;
  the resulting prompt is identical to lm-eval's (checked on every item of the stored files).
- hellaswag: context `preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())`,
  continuation " " + preprocess(ending), where preprocess strips, turns " [title]" into ". ", drops
  any "[...]" marker and collapses double spaces. The 6-lines-per-item text layout (klosax) stores
  `ctx` (= ctx_a + " " + ctx_b) already cleaned but without capitalizing ctx_b; when a context does
  not end a sentence (ActivityNet items, whose ctx_b is the unfinished last sentence) the fragment
  after the last ". "/"! "/"? " is taken as ctx_b and capitalized. Residual difference: a ctx_b that
  itself contains ". " (rare) is capitalized from its last sentence only. The jsonl layouts (HF or
  the original rowanz file, with ctx_a/ctx_b) are exact.
- openbookqa: context = question_stem, continuation " {choice}".
- piqa: context "Question: {goal}\\nAnswer:", continuation " {sol}".
- winogrande (partial scoring): context = sentence up to the blank with the option substituted,
  continuation = " " + the rest of the sentence after the blank (stripped); acc only.
- lambada (lambada_openai): context = all but the last space-separated word, continuation =
  " " + last word; acc = the continuation is the greedy decode, perplexity = exp(-mean ll).

acc_norm divides each choice's log-likelihood by the character length of the choice text (without
the leading space), which is what lm-eval computes (`len(choice)` on the Python string).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MC_TASKS: tuple[str, ...] = ("arc_easy", "arc_challenge", "hellaswag", "openbookqa", "piqa", "winogrande")
LOGLIKELIHOOD_TASKS: tuple[str, ...] = ("lambada",)
KNOWN_TASKS: tuple[str, ...] = (*MC_TASKS, *LOGLIKELIHOOD_TASKS)
TASK_ALIASES: dict[str, str] = {"lambada_openai": "lambada", "obqa": "openbookqa", "arc_e": "arc_easy"}

# Metrics each task reports (winogrande has acc only, as in lm-eval).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "arc_easy": ("acc", "acc_norm"),
    "arc_challenge": ("acc", "acc_norm"),
    "hellaswag": ("acc", "acc_norm"),
    "openbookqa": ("acc", "acc_norm"),
    "piqa": ("acc", "acc_norm"),
    "winogrande": ("acc",),
    "lambada": ("acc", "perplexity"),
}

# Where each task's file is looked for under the data dir: (sub-directories, file names), tried in order.
TASK_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "arc_easy": (("arc_easy", "ARC-Easy", ""), ("arc_easy.jsonl", "ARC-Easy-Test.jsonl", "test.jsonl")),
    "arc_challenge": (
        ("arc_challenge", "ARC-Challenge", ""),
        ("arc_challenge.jsonl", "ARC-Challenge-Test.jsonl", "test.jsonl"),
    ),
    "hellaswag": (
        ("hellaswag", ""),
        ("hellaswag_val_full.txt.bz2", "hellaswag_val_full.txt", "hellaswag_val.jsonl", "hellaswag.jsonl"),
    ),
    "openbookqa": (("openbookqa", ""), ("openbook_qa.jsonl", "test.jsonl", "test.tsv")),
    "piqa": (("piqa", ""), ("valid.jsonl", "validation.jsonl", "dev.jsonl")),
    "winogrande": (("winogrande", ""), ("winogrande.jsonl", "dev.jsonl", "validation.jsonl")),
    "lambada": (("lambada", ""), ("lambada_openai.jsonl", "lambada_test.jsonl", "test.jsonl")),
}

ENV_DATA_DIR = "MMFREE_EVAL_DATA"


@dataclass(frozen=True)
class MultipleChoiceDoc:
    """One multiple-choice item: request i is (contexts[i], continuations[i]); `gold` indexes the choices."""

    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    choice_texts: tuple[str, ...]  # what acc_norm divides by (character length)
    gold: int


@dataclass(frozen=True)
class LoglikelihoodDoc:
    """One single-continuation item (LAMBADA): the continuation includes its leading space."""

    context: str
    continuation: str


Doc = MultipleChoiceDoc | LoglikelihoodDoc


def canonical_task(name: str) -> str:
    """Lower-case a task name and resolve aliases; raise ValueError for unknown names."""
    key = TASK_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in KNOWN_TASKS:
        raise ValueError(
            f"unknown task {name!r}: known tasks are {', '.join(KNOWN_TASKS)}, "
            "or lm:PATH for language-modelling metrics on a text, jsonl or prepared-shard directory"
        )
    return key


def repo_root() -> Path:
    """The checkout holding the `mmfree` package (two levels above this file's directory)."""
    return Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """The eval data dir: $MMFREE_EVAL_DATA, else ../shared/data/eval from the cwd or from the repo root."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"${ENV_DATA_DIR} points to {path}, which is not a directory")
        return path
    tried = [Path.cwd() / ".." / "shared" / "data" / "eval", repo_root() / ".." / "shared" / "data" / "eval"]
    for path in tried:
        if path.is_dir():
            return path.resolve()
    raise FileNotFoundError(
        "no eval data directory found (tried "
        + ", ".join(str(p) for p in tried)
        + f"); pass --data-dir PATH or set ${ENV_DATA_DIR}"
    )


def find_task_file(task: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate `task`'s data file under `data_dir` (a directory) or return `data_dir` if it is a file."""
    task = canonical_task(task)
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if base.is_file():
        return base
    if not base.is_dir():
        raise FileNotFoundError(f"eval data path {base} does not exist; pass --data-dir PATH to the data")
    subdirs, names = TASK_FILES[task]
    tried = []
    for sub in subdirs:
        for name in names:
            path = base / sub / name if sub else base / name
            tried.append(path)
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"no data file for task {task!r} under {base}; looked for: "
        + ", ".join(str(p.relative_to(base)) for p in tried)
        + ". Point --data-dir at a directory holding one of them, or use TASK:FILE"
    )


def open_text(path: Path) -> IO[str]:
    """Open a text file, transparently decompressing .bz2 and .gz."""
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, record) for each non-blank line; malformed lines raise ValueError."""
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}:{lineno}: malformed JSON ({exc.msg}); fix or remove this line"
                ) from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def read_labels(path: Path) -> list[tuple[int, str]]:
    """Read a labels .lst file: (line number, label string) for each non-blank line."""
    with open_text(path) as fh:
        return [(n, line.strip()) for n, line in enumerate(fh, start=1) if line.strip()]


def _field(record: dict[str, Any], key: str, where: str, expected: str) -> Any:
    if key not in record:
        raise ValueError(f"{where}: missing field {key!r}; expected {expected}")
    return record[key]


def _gold(value: Any, n_choices: int, where: str) -> int:
    try:
        gold = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: label {value!r} is not an integer") from None
    if not 0 <= gold < n_choices:
        raise ValueError(f"{where}: label {gold} is out of range for {n_choices} choices")
    return gold


def _mc(context: str, choices: list[str], gold: int) -> MultipleChoiceDoc:
    """An ordinary multiple-choice doc: the same context for every choice, continuation " " + choice."""
    return MultipleChoiceDoc(
        contexts=tuple(context for _ in choices),
        continuations=tuple(" " + c for c in choices),
        choice_texts=tuple(choices),
        gold=gold,
    )


def _choices_and_gold(record: dict[str, Any], where: str) -> tuple[list[str], int]:
    """Parse AllenAI/HF style `choices` + `answerKey` (choices a {text, label} dict or a list of them)."""
    choices = _field(record, "choices", where, "a 'choices' field")
    if isinstance(choices, dict):
        texts, labels = list(choices["text"]), [str(x) for x in choices["label"]]
    else:
        texts = [str(c["text"]) for c in choices]
        labels = [str(c["label"]) for c in choices]
    key = str(_field(record, "answerKey", where, "an 'answerKey' field")).strip()
    if key not in labels:
        raise ValueError(f"{where}: answerKey {key!r} is not one of the choice labels {labels}")
    return texts, labels.index(key)


_ARC_EXPECTED = (
    "MosaicML {query, choices, gold}, HF {question, choices: {text, label}, answerKey} "
    "or AllenAI {question: {stem, choices}, answerKey}"
)


def parse_arc(record: dict[str, Any], where: str) -> MultipleChoiceDoc:
    """One ARC item in MosaicML, HF or AllenAI layout -> lm-eval's "Question: ...\\nAnswer:" prompt."""
    if "query" in record:
        query = str(record["query"]).strip()
        choices = [str(c) for c in _field(record, "choices", where, _ARC_EXPECTED)]
        if not query.startswith("Question:"):
            query = "Question: " + query
        if not query.endswith("Answer:"):
            query += "\nAnswer:"
        return _mc(query, choices, _gold(_field(record, "gold", where, _ARC_EXPECTED), len(choices), where))
    question = _field(record, "question", where, _ARC_EXPECTED)
    if isinstance(question, dict):  # AllenAI original: choices live inside the question object
        texts, gold = _choices_and_gold({**question, "answerKey": record.get("answerKey")}, where)
        stem = str(question["stem"])
    else:
        texts, gold = _choices_and_gold(record, where)
        stem = str(question)
    return _mc(f"Question: {stem}\nAnswer:", texts, gold)


_OBQA_EXPECTED = (
    "MosaicML {query, choices, gold}, HF {question_stem, choices, answerKey} "
    "or AllenAI {question: {stem, choices}, answerKey}"
)


def parse_openbookqa(record: dict[str, Any], where: str) -> MultipleChoiceDoc:
    """One OpenBookQA item (MosaicML, HF or AllenAI jsonl): context = the question stem."""
    if "query" in record:
        choices = [str(c) for c in _field(record, "choices", where, _OBQA_EXPECTED)]
        return _mc(str(record["query"]), choices, _gold(record.get("gold"), len(choices), where))
    if "question_stem" in record:
        texts, gold = _choices_and_gold(record, where)
        return _mc(str(record["question_stem"]), texts, gold)
    question = _field(record, "question", where, _OBQA_EXPECTED)
    if not isinstance(question, dict):
        raise ValueError(f"{where}: 'question' must be an object with 'stem' and 'choices'")
    texts, gold = _choices_and_gold({**question, "answerKey": record.get("answerKey")}, where)
    return _mc(str(question["stem"]), texts, gold)


_TSV_CHOICE = re.compile(r"\(([A-Z])\)\s")


def load_openbookqa_tsv(path: Path) -> list[MultipleChoiceDoc]:
    """OpenBookQA's release TSV (ID, Question Stem, Choices "(A) .. (B) ..", ..., Answer Key)."""
    with open_text(path) as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise ValueError(f"{path}: empty file; expected a header row with 'Question Stem'")
    header = rows[0]
    for col in ("Question Stem", "Choices", "Answer Key"):
        if col not in header:
            raise ValueError(f"{path}:1: header lacks column {col!r}; found {header}")
    i_stem, i_choices, i_key = (header.index(c) for c in ("Question Stem", "Choices", "Answer Key"))
    docs = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        where = f"{path}:{lineno}"
        if len(row) < len(header):
            raise ValueError(f"{where}: expected {len(header)} tab-separated columns, got {len(row)}")
        parts = _TSV_CHOICE.split(row[i_choices].strip() + " ")
        labels, texts = parts[1::2], [p.strip() for p in parts[2::2]]
        if not labels:
            raise ValueError(f"{where}: choices {row[i_choices]!r} are not in the '(A) text (B) text' form")
        key = row[i_key].strip()
        if key not in labels:
            raise ValueError(f"{where}: answer key {key!r} is not one of the choice labels {labels}")
        docs.append(_mc(row[i_stem], texts, labels.index(key)))
    return docs


def hellaswag_preprocess(text: str) -> str:
    """lm-eval's HellaSwag clean-up: strip, " [title]" -> ". ", drop "[...]" markers, collapse "  "."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _capitalize_ctx_b(ctx: str) -> str:
    """Recover lm-eval's ctx_b.capitalize() on a stored `ctx` (see the module docstring)."""
    if not ctx or ctx.endswith((".", "!", "?")):
        return ctx
    cut = max(ctx.rfind(". "), ctx.rfind("! "), ctx.rfind("? "))
    start = cut + 2 if cut >= 0 else 0
    return ctx[:start] + ctx[start:].capitalize()


def parse_hellaswag(record: dict[str, Any], where: str) -> MultipleChoiceDoc:
    """One HellaSwag item from jsonl: HF/rowanz {activity_label, ctx_a, ctx_b, endings, label}."""
    if "query" in record:  # MosaicML layout
        choices = [hellaswag_preprocess(str(c)) for c in _field(record, "choices", where, "choices")]
        return _mc(hellaswag_preprocess(str(record["query"])), choices, _gold(record.get("gold"), 4, where))
    expected = "{activity_label, ctx_a, ctx_b, endings, label}"
    ctx = str(_field(record, "ctx_a", where, expected)) + " " + str(record.get("ctx_b", "")).capitalize()
    query = hellaswag_preprocess(str(_field(record, "activity_label", where, expected)) + ": " + ctx)
    endings = [hellaswag_preprocess(str(e)) for e in _field(record, "endings", where, expected)]
    return _mc(query, endings, _gold(_field(record, "label", where, expected), len(endings), where))


def load_hellaswag_text(path: Path) -> list[MultipleChoiceDoc]:
    """The 6-lines-per-item layout: "label: ctx", gold (0-3), then four endings."""
    with open_text(path) as fh:
        lines = fh.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 6:
        raise ValueError(
            f"{path}: {len(lines)} lines is not a multiple of 6 (item at line {len(lines) // 6 * 6 + 1} "
            "is incomplete); expected 6 lines per item: context, label, four endings"
        )
    docs = []
    for start in range(0, len(lines), 6):
        head, label, *endings = lines[start : start + 6]
        where = f"{path}:{start + 2}"
        if ": " not in head:
            raise ValueError(f"{path}:{start + 1}: expected 'activity label: context', got {head[:60]!r}")
        activity, ctx = head.split(": ", 1)
        query = hellaswag_preprocess(activity + ": " + _capitalize_ctx_b(ctx))
        gold = _gold(label.strip(), 4, where)
        docs.append(_mc(query, [hellaswag_preprocess(e) for e in endings], gold))
    return docs


def _labels_file(path: Path) -> Path | None:
    """`valid.jsonl` -> `valid-labels.lst` (the PIQA / WinoGrande release convention)."""
    candidate = path.with_name(path.name.split(".")[0] + "-labels.lst")
    return candidate if candidate.is_file() else None


def _attach_labels(path: Path, records: list[tuple[int, dict[str, Any]]], key: str) -> list[tuple[str, Any]]:
    """Gold label per record with its "file:line": the record's `key` field, else the -labels.lst file."""
    if records and all(str(r.get(key, "")).strip() != "" for _, r in records):
        return [(f"{path}:{n}", r[key]) for n, r in records]
    labels_path = _labels_file(path)
    if labels_path is None:
        raise FileNotFoundError(
            f"{path}: items have no {key!r} field and no labels file "
            f"{path.with_name(path.name.split('.')[0] + '-labels.lst')} exists"
        )
    labels = read_labels(labels_path)
    if len(labels) != len(records):
        raise ValueError(
            f"{labels_path} has {len(labels)} labels but {path} has {len(records)} examples; "
            "the two files must have one line per item, in the same order"
        )
    return [(f"{labels_path}:{n}", value) for n, value in labels]


def load_piqa(path: Path) -> list[MultipleChoiceDoc]:
    """PIQA jsonl {goal, sol1, sol2} with labels in the record or the sibling -labels.lst file."""
    records = list(read_jsonl(path))
    labels = _attach_labels(path, records, "label")
    docs = []
    for (lineno, record), (label_where, label) in zip(records, labels, strict=True):
        where = f"{path}:{lineno}"
        goal = _field(record, "goal", where, "{goal, sol1, sol2}")
        sols = [str(_field(record, k, where, "{goal, sol1, sol2}")) for k in ("sol1", "sol2")]
        docs.append(_mc(f"Question: {goal}\nAnswer:", sols, _gold(label, 2, label_where)))
    return docs


def _winogrande_partial(sentence: str, options: list[str], where: str) -> tuple[list[str], str]:
    if "_" not in sentence:
        raise ValueError(f"{where}: sentence has no '_' blank: {sentence[:60]!r}")
    idx = sentence.index("_")
    return [sentence[:idx] + opt for opt in options], sentence[idx + 1 :].strip()


def load_winogrande(path: Path) -> list[MultipleChoiceDoc]:
    """WinoGrande: MosaicML {context_options, continuation, gold} or original {sentence, option1,
    option2, answer "1"/"2"} (answers may come from the sibling -labels.lst file)."""
    records = list(read_jsonl(path))
    if records and "context_options" in records[0][1]:
        docs = []
        for lineno, record in records:
            where = f"{path}:{lineno}"
            expected = "{context_options, continuation, gold}"
            contexts = [str(c) for c in _field(record, "context_options", where, expected)]
            cont = str(_field(record, "continuation", where, expected)).strip()
            gold = _gold(_field(record, "gold", where, expected), len(contexts), where)
            docs.append(
                MultipleChoiceDoc(tuple(contexts), tuple(" " + cont for _ in contexts), tuple(contexts), gold)
            )
        return docs
    answers = _attach_labels(path, records, "answer")
    docs = []
    for (lineno, record), (label_where, answer) in zip(records, answers, strict=True):
        where = f"{path}:{lineno}"
        expected = "{sentence, option1, option2, answer}"
        options = [str(_field(record, k, where, expected)) for k in ("option1", "option2")]
        contexts, cont = _winogrande_partial(str(_field(record, "sentence", where, expected)), options, where)
        if str(answer).strip() not in ("1", "2"):
            raise ValueError(f"{label_where}: answer {answer!r} must be 1 or 2")
        gold = int(str(answer).strip()) - 1
        docs.append(
            MultipleChoiceDoc(tuple(contexts), tuple(" " + cont for _ in contexts), tuple(contexts), gold)
        )
    return docs


def parse_lambada(record: dict[str, Any], where: str) -> LoglikelihoodDoc:
    """LAMBADA: MosaicML {context, continuation} or lambada_openai {text} (split at the last space)."""
    if "context" in record:
        cont = _field(record, "continuation", where, "{context, continuation}")
        return LoglikelihoodDoc(str(record["context"]), " " + str(cont))
    text = str(_field(record, "text", where, "MosaicML {context, continuation} or {text}"))
    if " " not in text:
        raise ValueError(f"{where}: text has no space to split off the last word")
    context, word = text.rsplit(" ", 1)
    return LoglikelihoodDoc(context, " " + word)


_JSONL_PARSERS = {
    "arc_easy": parse_arc,
    "arc_challenge": parse_arc,
    "openbookqa": parse_openbookqa,
    "hellaswag": parse_hellaswag,
    "lambada": parse_lambada,
}


def load_task(
    task: str, path: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None
) -> tuple[list[Doc], Path]:
    """Load every item of `task` from `path` (a file) or from the task's file under `data_dir`.

    Returns (docs, the file read). Raises FileNotFoundError / ValueError naming the file and line.
    """
    task = canonical_task(task)
    file = Path(path).expanduser() if path is not None else find_task_file(task, data_dir)
    if file.is_dir():
        file = find_task_file(task, file)
    if not file.is_file():
        raise FileNotFoundError(f"data file for task {task!r} not found: {file}")
    name = file.name.lower()
    docs: list[Doc]
    if task == "piqa":
        docs = list(load_piqa(file))
    elif task == "winogrande":
        docs = list(load_winogrande(file))
    elif task == "openbookqa" and name.endswith(".tsv"):
        docs = list(load_openbookqa_tsv(file))
    elif task == "hellaswag" and ".txt" in name:
        docs = list(load_hellaswag_text(file))
    else:
        parse = _JSONL_PARSERS[task]
        docs = [parse(record, f"{file}:{lineno}") for lineno, record in read_jsonl(file)]
    if not docs:
        raise ValueError(f"{file}: no items found for task {task!r}")
    return docs, file
