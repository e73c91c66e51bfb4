"""Batched log-likelihood scoring checked against one plain forward pass per (context, continuation)."""

from __future__ import annotations

import math
from typing import Any

import torch

from mmfree.eval.runner import score_lambada, score_multiple_choice
from mmfree.eval.scoring import encode_pair, loglikelihood_tokens, mean_and_stderr
from mmfree.eval.tasks import LoglikelihoodDoc, MultipleChoiceDoc


def reference_ll(
    model: torch.nn.Module, tokenizer: Any, context: str, continuation: str
) -> tuple[float, bool]:
    """Independent computation: tokenize the joined text and the context alone, one forward pass."""
    stripped = context.rstrip()
    moved = context[len(stripped) :] + continuation
    whole = tokenizer(stripped + moved, add_special_tokens=False)["input_ids"]
    n_ctx = len(tokenizer(stripped, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([whole])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    total, greedy = 0.0, True
    for t in range(n_ctx, len(whole)):
        total += float(logp[t - 1, whole[t]])
        greedy &= int(logp[t - 1].argmax()) == whole[t]
    return total, greedy


DOCS = [
    MultipleChoiceDoc(("Question: Which gas do plants take in?\nAnswer:",) * 3, (" carbon dioxide", " oxygen", " dog"),
                      ("carbon dioxide", "oxygen", "dog"), 0),
    MultipleChoiceDoc(("The quick brown fox",) * 2, (" jumps over the lazy dog.", " sleeps."),
                      ("jumps over the lazy dog.", "sleeps."), 1),
    MultipleChoiceDoc(("Sarah was better so Sarah", "Sarah was better so Maria"), (" got hard cases.",) * 2,
                      ("Sarah was better so Sarah", "Sarah was better so Maria"), 1),
    MultipleChoiceDoc(("How do you boil water? ",) * 2, ("Heat it.", "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 stone"),
                      ("Heat it.", "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 stone"), 0),
    MultipleChoiceDoc(("In my palm",) * 4, (" is", " a clear stone", " x", " the dog sleeps"),
                      ("is", "a clear stone", "x", "the dog sleeps"), 2),
]  # fmt: skip


def test_encode_pair_moves_trailing_space_and_splits_joint_encoding(tokenizer: Any) -> None:
    ctx, cont = encode_pair(tokenizer, "How do you boil water? ", "Heat it.")
    assert ctx + cont == tokenizer("How do you boil water? Heat it.", add_special_tokens=False)["input_ids"]
    assert ctx == tokenizer("How do you boil water?", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(cont) == " Heat it."
    assert encode_pair(tokenizer, "", "dog") == ([tokenizer.bos_token_id], tokenizer.encode("dog"))


def test_batched_scores_match_per_request_forward(model: torch.nn.Module, tokenizer: Any) -> None:
    pairs = [(c, k) for d in DOCS for c, k in zip(d.contexts, d.continuations)]
    requests = [encode_pair(tokenizer, c, k) for c, k in pairs]
    got = loglikelihood_tokens(model, requests, batch_size=3, max_length=256, progress=False)
    for (c, k), (ll, greedy) in zip(pairs, got):
        ref_ll, ref_greedy = reference_ll(model, tokenizer, c, k)
        assert math.isclose(ll, ref_ll, rel_tol=1e-4, abs_tol=1e-3), (c, k, ll, ref_ll)
        assert greedy == ref_greedy


def test_left_truncation_to_max_length(model: torch.nn.Module, tokenizer: Any) -> None:
    ctx, cont = encode_pair(tokenizer, "The quick brown fox jumps over the lazy", " dog. The dog")
    assert len(cont) < 8 < len(ctx)
    (ll, _), = loglikelihood_tokens(model, [(ctx, cont)], max_length=8, progress=False)  # fmt: skip
    ids = (ctx + cont)[-9:]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0].double(), dim=-1)
    ref = sum(float(logp[i - 1, ids[i]]) for i in range(len(ids) - len(cont), len(ids)))
    assert math.isclose(ll, ref, rel_tol=1e-4, abs_tol=1e-3)


def test_acc_and_acc_norm_against_reference(model: torch.nn.Module, tokenizer: Any) -> None:
    res = score_multiple_choice(model, tokenizer, DOCS, ("acc", "acc_norm"), batch_size=4, progress=False)
    acc, acc_norm = [], []
    for doc in DOCS:
        lls = [reference_ll(model, tokenizer, c, k)[0] for c, k in zip(doc.contexts, doc.continuations)]
        normed = [ll / len(text) for ll, text in zip(lls, doc.choice_texts)]
        acc.append(float(max(range(len(lls)), key=lambda i: lls[i]) == doc.gold))
        acc_norm.append(float(max(range(len(lls)), key=lambda i: normed[i]) == doc.gold))
    n = len(DOCS)
    for name, vals in (("acc", acc), ("acc_norm", acc_norm)):
        p = sum(vals) / n
        assert res["metrics"][name] == p
        if 0 < p < 1:
            assert math.isclose(res["stderr"][name], math.sqrt(p * (1 - p) / (n - 1)), rel_tol=1e-9)
    assert res["num_examples"] == n
    assert acc != acc_norm  # the items are chosen so that length normalization changes some picks


def test_lambada_acc_and_perplexity(model: torch.nn.Module, tokenizer: Any) -> None:
    docs = [
        LoglikelihoodDoc("The quick brown fox jumps over the lazy", " dog"),
        LoglikelihoodDoc("In my palm is a", " clear"),
    ]
    res = score_lambada(model, tokenizer, docs, batch_size=2, progress=False)
    refs = [reference_ll(model, tokenizer, d.context, d.continuation) for d in docs]
    assert math.isclose(res["metrics"]["perplexity"], math.exp(-sum(r[0] for r in refs) / 2), rel_tol=1e-4)
    assert res["metrics"]["acc"] == sum(r[1] for r in refs) / 2


def test_mean_stderr_is_binomial_for_accuracies() -> None:
    mu, se = mean_and_stderr([1.0, 0.0, 1.0, 1.0])
    assert mu == 0.75 and math.isclose(se, math.sqrt(0.75 * 0.25 / 3))
    assert math.isnan(mean_and_stderr([1.0])[1])
