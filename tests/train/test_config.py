"""TrainConfig defaults and validation; it is also the settings dataclass of `mmfree train`."""

from __future__ import annotations

import dataclasses

import pytest

from mmfree.cli import _field_comments, main
from mmfree.models import PRESET_LR
from mmfree.train.config import TrainConfig


def test_every_setting_has_help_text() -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    comments = _field_comments(TrainConfig)
    assert set(comments) == fields and all(comments.values()), "every field needs a # comment (its --help)"


def test_defaults_follow_the_paper() -> None:
    for preset in ("370m", "1.3b", "2.7b"):
        assert TrainConfig(preset=preset).peak_lr == PRESET_LR[preset]
        assert TrainConfig(preset=preset, arch="transformer").peak_lr == 3e-4
    assert TrainConfig(lr=1e-2).peak_lr == 1e-2
    assert TrainConfig(max_steps=1000).warmup_steps == 50
    assert TrainConfig(max_steps=1000, warmup=7).warmup_steps == 7
    assert TrainConfig().data == ["stdlib"] and TrainConfig().preset == "debug"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"preset": "7b"}, "unknown preset"),
        ({"batch_size": 0}, "--batch-size"),
        ({"grad_accum": 0}, "--grad-accum"),
        ({"warmup": 500, "max_steps": 100}, "--warmup"),
        ({"lr": -1.0}, "--lr"),
        ({"val_fraction": 1.5}, "--val-fraction"),
        ({"data": []}, "--data"),
    ],
)
def test_validation_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs).validate()


def test_identity_ignores_logging_and_device() -> None:
    a, b = TrainConfig(), TrainConfig(save_every=7, log_every=3, device="cpu", progress=False, eval_every=5)
    assert a.identity() == b.identity()
    assert TrainConfig(batch_size=8).identity() != a.identity()


def test_unknown_flag_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--no-such-flag", "1"])
    assert info.value.code == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_help_lists_the_issue_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--preset",
        "--data",
        "--out",
        "--max-steps",
        "--save-every",
        "--resume",
        "--seed",
        "--device",
        "--arch",
        "--batch-size",
        "--seq-len",
        "--grad-accum",
        "--lr",
        "--warmup",
        "--weight-decay",
        "--clip",
        "--eval-every",
        "--compile",
        "--activation-checkpointing",
        "--tokenizer",
        "--vocab-size",
        "--parallel",
    ):
        assert flag in text


def test_ablation_settings_reach_the_model_and_schedule() -> None:
    from mmfree.train.model import model_config
    from mmfree.train.schedule import lr_factor, make_scheduler

    cfg = TrainConfig(gate_form="paper", use_lower_bound=False, ternary_lm_head=False, lr_halving=False)
    mcfg = model_config(cfg, vocab_size=300, eos_token_id=2, bos_token_id=1)
    assert (mcfg.gate_form, mcfg.use_lower_bound, mcfg.ternary_lm_head) == ("paper", False, False)
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    for halving in (True, False):
        sched = make_scheduler(opt, 100, 0, "mmfree", halving)
        expected = lr_factor(60, 100, 0, halve=halving, floor=0.0)
        assert sched.lr_lambdas[0](60) == expected
    assert make_scheduler(opt, 100, 0, "mmfree", False).lr_lambdas[0](60) == 2 * lr_factor(
        60, 100, 0, halve=True, floor=0.0
    )
