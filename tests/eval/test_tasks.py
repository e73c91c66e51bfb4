"""Loaders of every task format: prompts as lm-eval builds them, format equivalences, and bad input."""

from __future__ import annotations

import bz2
import json
from pathlib import Path

import pytest

from mmfree.eval.tasks import (
    LoglikelihoodDoc,
    MultipleChoiceDoc,
    canonical_task,
    default_data_dir,
    find_task_file,
    hellaswag_preprocess,
    load_task,
)

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_arc_formats_agree_and_match_lm_eval_prompt(tmp_path: Path) -> None:
    mosaic = write_jsonl(
        tmp_path / "mosaic.jsonl",
        [{"query": "Question: Which is a gas?", "choices": ["ice", "steam"], "gold": 1}],
    )
    allenai = write_jsonl(
        tmp_path / "allenai.jsonl",
        [
            {
                "id": "x",
                "question": {
                    "stem": "Which is a gas?",
                    "choices": [{"text": "ice", "label": "A"}, {"text": "steam", "label": "B"}],
                },
                "answerKey": "B",
            }
        ],
    )
    hf = write_jsonl(
        tmp_path / "hf.jsonl",
        [
            {
                "question": "Which is a gas?",
                "choices": {"text": ["ice", "steam"], "label": ["1", "2"]},
                "answerKey": "2",
            }
        ],
    )
    expected = MultipleChoiceDoc(
        contexts=("Question: Which is a gas?\nAnswer:",) * 2,
        continuations=(" ice", " steam"),
        choice_texts=("ice", "steam"),
        gold=1,
    )
    for path in (mosaic, allenai, hf):
        docs, source = load_task("arc_easy", path)
        assert docs == [expected]
        assert source == path


def test_openbookqa_jsonl_and_tsv(tmp_path: Path) -> None:
    mosaic = write_jsonl(
        tmp_path / "o.jsonl", [{"query": "Predators eat", "choices": ["grass", "bunnies"], "gold": 1}]
    )
    tsv = tmp_path / "test.tsv"
    tsv.write_text(
        "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n"
        "7\tPredators eat\t(A) grass (B) bunnies\tPredators eat (A) grass (B) bunnies\tB\n",
        encoding="utf-8",
    )
    hf = write_jsonl(
        tmp_path / "hf.jsonl",
        [
            {
                "question_stem": "Predators eat",
                "choices": {"text": ["grass", "bunnies"], "label": ["A", "B"]},
                "answerKey": "B",
            }
        ],
    )
    expected = [MultipleChoiceDoc(("Predators eat",) * 2, (" grass", " bunnies"), ("grass", "bunnies"), 1)]
    for path in (mosaic, tsv, hf):
        assert load_task("openbookqa", path)[0] == expected


def test_hellaswag_text_layout_recovers_lm_eval_query(tmp_path: Path) -> None:
    rows = [
        {
            "activity_label": "Roof shingle removal",
            "ctx_a": "A man is sitting on a roof.",
            "ctx_b": "he",
            "endings": ["is using wrap.", "starts pulling up roofing [title] on a roof.", "a", "b"],
            "label": 1,
        },
        {
            "activity_label": "Home and Garden",
            "ctx_a": "[header] How to dig [title] Pick a spot. [step] Clear the ground.",
            "ctx_b": "",
            "endings": ["Dig.", "Wait.", "Rest.", "Go."],
            "label": "3",
        },
    ]
    hf_docs, _ = load_task("hellaswag", write_jsonl(tmp_path / "hellaswag_val.jsonl", rows))
    assert hf_docs[0].contexts[0] == "Roof shingle removal: A man is sitting on a roof. He"
    assert hf_docs[0].continuations[1] == " starts pulling up roofing. on a roof."
    assert hf_docs[1].contexts[0] == "Home and Garden: How to dig. Pick a spot. Clear the ground."
    assert [d.gold for d in hf_docs] == [1, 3]
    # The 6-line layout stores the cleaned ctx = ctx_a + " " + ctx_b without capitalizing ctx_b.
    text = (
        "Roof shingle removal: A man is sitting on a roof. he\n1\nis using wrap.\n"
        "starts pulling up roofing. on a roof.\na\nb\n"
        "Home and Garden: How to dig. Pick a spot. Clear the ground.\n3\nDig.\nWait.\nRest.\nGo.\n"
    )
    plain = tmp_path / "hellaswag_val_full.txt"
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / "h.txt.bz2"
    packed.write_bytes(bz2.compress(text.encode("utf-8")))
    assert load_task("hellaswag", plain)[0] == hf_docs
    assert load_task("hellaswag", packed)[0] == hf_docs


def test_hellaswag_preprocess() -> None:
    assert hellaswag_preprocess(" a [title] b [step] c  d ") == "a. b c d"


def test_piqa_labels_from_lst_or_record(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "valid.jsonl",
        [{"goal": "g1", "sol1": "a", "sol2": "b"}, {"goal": "g2", "sol1": "c", "sol2": "d"}],
    )
    (tmp_path / "valid-labels.lst").write_text("1\n0\n", encoding="utf-8")
    docs, _ = load_task("piqa", data)
    assert docs[0] == MultipleChoiceDoc(("Question: g1\nAnswer:",) * 2, (" a", " b"), ("a", "b"), 1)
    assert docs[1].gold == 0
    hf = write_jsonl(tmp_path / "hf.jsonl", [{"goal": "g1", "sol1": "a", "sol2": "b", "label": 1}])
    assert load_task("piqa", hf)[0] == docs[:1]


def test_winogrande_partial_scoring_formats_agree(tmp_path: Path) -> None:
    original = write_jsonl(
        tmp_path / "dev.jsonl",
        [
            {
                "sentence": "Sarah beat Maria so _ got the easy cases.",
                "option1": "Sarah",
                "option2": "Maria",
                "answer": "2",
            }
        ],
    )
    mosaic = write_jsonl(
        tmp_path / "winogrande.jsonl",
        [
            {
                "context_options": ["Sarah beat Maria so Sarah", "Sarah beat Maria so Maria"],
                "continuation": "got the easy cases.",
                "gold": 1,
            }
        ],
    )
    expected = [
        MultipleChoiceDoc(
            contexts=("Sarah beat Maria so Sarah", "Sarah beat Maria so Maria"),
            continuations=(" got the easy cases.",) * 2,
            choice_texts=("Sarah beat Maria so Sarah", "Sarah beat Maria so Maria"),
            gold=1,
        )
    ]
    assert load_task("winogrande", original)[0] == expected
    assert load_task("winogrande", mosaic)[0] == expected
    unlabeled = write_jsonl(
        tmp_path / "test.jsonl",
        [
            {
                "sentence": "Sarah beat Maria so _ got the easy cases.",
                "option1": "Sarah",
                "option2": "Maria",
                "answer": "",
            }
        ],
    )
    (tmp_path / "test-labels.lst").write_text("2\n", encoding="utf-8")
    assert load_task("winogrande", unlabeled)[0] == expected


def test_lambada_formats(tmp_path: Path) -> None:
    mosaic = write_jsonl(tmp_path / "l.jsonl", [{"context": "He opened the", "continuation": "door"}])
    text = write_jsonl(tmp_path / "t.jsonl", [{"text": "He opened the door"}])
    expected = [LoglikelihoodDoc("He opened the", " door")]
    assert load_task("lambada_openai", mosaic)[0] == expected
    assert load_task("lambada", text)[0] == expected


def test_data_dir_lookup_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "piqa").mkdir()
    data = write_jsonl(
        tmp_path / "piqa" / "valid.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}]
    )
    assert find_task_file("piqa", tmp_path) == data
    monkeypatch.setenv("MMFREE_EVAL_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    assert load_task("piqa")[1] == data
    monkeypatch.setenv("MMFREE_EVAL_DATA", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="MMFREE_EVAL_DATA"):
        default_data_dir()


# ---- bad input --------------------------------------------------------------------------------------


def test_unknown_task_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown task 'mmlu'.*arc_easy.*lm:PATH"):
        canonical_task("mmlu")


def test_missing_task_file_names_task_and_paths(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"no data file for task 'hellaswag'.*hellaswag_val_full\.txt\.bz2"
    ):
        load_task("hellaswag", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nothere\.jsonl"):
        load_task("arc_easy", tmp_path / "nothere.jsonl")


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "arc.jsonl"
    path.write_text(
        '{"query": "Q", "choices": ["a", "b"], "gold": 0}\n\n{"query": "Q", "choi\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"arc\.jsonl:3: malformed JSON"):
        load_task("arc_easy", path)


def test_missing_field_and_bad_label_name_the_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "arc.jsonl", [{"query": "Q", "choices": ["a", "b"], "gold": 0}, {"query": "Q", "gold": 0}]
    )
    with pytest.raises(ValueError, match=r"arc\.jsonl:2: missing field 'choices'"):
        load_task("arc_easy", path)
    path = write_jsonl(tmp_path / "arc2.jsonl", [{"query": "Q", "choices": ["a", "b"], "gold": 5}])
    with pytest.raises(ValueError, match=r"arc2\.jsonl:1: label 5 is out of range for 2 choices"):
        load_task("arc_easy", path)


def test_label_count_mismatch(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "valid.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b"}] * 3)
    (tmp_path / "valid-labels.lst").write_text("0\n1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"valid-labels\.lst has 2 labels but .*valid\.jsonl has 3 examples"):
        load_task("piqa", data)
    (tmp_path / "valid-labels.lst").write_text("0\nx\n1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"valid-labels\.lst:2: label 'x' is not an integer"):
        load_task("piqa", data)
    (tmp_path / "valid-labels.lst").unlink()
    with pytest.raises(FileNotFoundError, match=r"no 'label' field and no labels file .*valid-labels\.lst"):
        load_task("piqa", data)


def test_hellaswag_incomplete_item(tmp_path: Path) -> None:
    path = tmp_path / "h.txt"
    path.write_text("A: b\n0\ne1\ne2\ne3\ne4\nC: d\n1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"h\.txt: 8 lines is not a multiple of 6 \(item at line 7"):
        load_task("hellaswag", path)


# ---- the stored real files (smoke) ------------------------------------------------------------------


@pytest.mark.skipif(not REAL.is_dir(), reason="shared eval data not present")
def test_real_files_first_items() -> None:
    counts = {"arc_easy": 2376, "arc_challenge": 1172, "hellaswag": 10042, "openbookqa": 500, "piqa": 1838,
              "winogrande": 1267, "lambada": 5153}  # fmt: skip
    for task, n in counts.items():
        docs, _ = load_task(task, data_dir=REAL)
        assert len(docs) == n, task
    arc = load_task("arc_challenge", data_dir=REAL)[0][0]
    assert arc.contexts[0].startswith("Question: An astronomer observes") and arc.contexts[0].endswith(
        "?\nAnswer:"
    )
    assert arc.continuations[2] == " Planetary days will become shorter." and arc.gold == 2
    hs = load_task("hellaswag", data_dir=REAL)[0][0]
    assert hs.contexts[0] == "Roof shingle removal: A man is sitting on a roof. He" and hs.gold == 3
    lam = load_task("lambada", data_dir=REAL)[0][0]
    assert lam.continuation == " signs" and lam.context.endswith("I don't care about")
    # OpenBookQA's release TSV and MosaicML's jsonl give identical requests on all 500 items.
    assert (
        load_task("openbookqa", REAL / "openbookqa" / "test.tsv")[0]
        == load_task("openbookqa", data_dir=REAL)[0]
    )
    wino = load_task("winogrande", data_dir=REAL)[0]
    labels = (REAL / "winogrande" / "dev-labels.lst").read_text().split()
    assert [d.gold + 1 for d in wino] == [int(x) for x in labels]
