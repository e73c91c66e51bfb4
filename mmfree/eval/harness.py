"""lm-evaluation-harness integration: an `mmfree` model type and the command reproducing the paper's table.

lm-eval's `hf` model loads checkpoints through transformers' AutoModelForCausalLM, which knows
model_type "mmfree" only once `mmfree.models` has been imported (it registers the Auto classes on
import). lm-eval's own `lm_eval` console script never imports mmfree, so run it through this module:

    python -m mmfree.eval.harness --model mmfree --model_args pretrained=DIR --tasks ... (lm-eval's flags)

which imports mmfree (registering the Auto classes and the lm-eval model type `mmfree`) and then hands
the command line to lm-eval unchanged (`--model hf` works the same way). `harness_command` writes the
full command for the paper's zero-shot table. This module imports without lm-eval; `MMFreeLM` and
`main` need it (`pip install 'mmfree[eval]'`) and raise a clear ImportError otherwise.
"""

from __future__ import annotations

import shlex
from typing import Any

PAPER_TASKS: tuple[str, ...] = ("arc_easy", "arc_challenge", "hellaswag", "openbookqa", "piqa", "winogrande")
# The metric the paper reports for each task (PAPER.md: acc_norm for the first four, acc for the last two).
PAPER_METRICS: dict[str, str] = {
    "arc_easy": "acc_norm",
    "arc_challenge": "acc_norm",
    "hellaswag": "acc_norm",
    "openbookqa": "acc_norm",
    "piqa": "acc",
    "winogrande": "acc",
}
# lm-eval's names for the tasks whose names differ here.
LM_EVAL_NAMES: dict[str, str] = {"lambada": "lambada_openai"}

_INSTALL_HINT = "lm-evaluation-harness is not installed; install it with `pip install 'mmfree[eval]'`"
_IMPORT_ERROR: ImportError | None = None
_MODEL_CLASS: type | None = None


def harness_command(
    model_dir: str,
    tasks: list[str] | None = None,
    *,
    batch_size: int | str = "auto",
    device: str = "cuda:0",
    dtype: str | None = None,
    output_path: str | None = None,
    model: str = "mmfree",
) -> str:
    """The shell command that evaluates `model_dir` with lm-eval, zero-shot, as the paper did.

    Args:
        model_dir: a saved transformers directory (e.g. written by `mmfree convert`).
        tasks: task names (default: the paper's six, PAPER_TASKS); "lambada" maps to "lambada_openai".
        batch_size: lm-eval's --batch_size ("auto" lets it probe the largest that fits).
        device: lm-eval's --device.
        dtype: model dtype passed in --model_args (default: the checkpoint's own, lm-eval's "auto").
        output_path: lm-eval's --output_path for the JSON results (omitted if None).
        model: "mmfree" (this package's lm-eval model type) or "hf" (plain HFLM; mmfree is still
            imported by the wrapper, so the Auto classes are registered).

    The model args pin `add_bos_token=False`, lm-eval's default before v0.4.5 (the paper's era);
    newer versions default to the tokenizer's own choice, which for the Mistral tokenizer adds BOS.
    """
    tasks = list(tasks) if tasks else list(PAPER_TASKS)
    names = []
    for task in tasks:
        if task.startswith("lm:"):
            raise ValueError(
                f"{task!r} is an mmfree-only task; run `mmfree eval` for language-modelling metrics"
            )
        names.append(LM_EVAL_NAMES.get(task, task))
    model_args = f"pretrained={model_dir},add_bos_token=False"
    if dtype:
        model_args += f",dtype={dtype}"
    parts = [
        "python -m mmfree.eval.harness",
        f"--model {shlex.quote(model)}",
        f"--model_args {shlex.quote(model_args)}",
        f"--tasks {shlex.quote(','.join(names))}",
        "--num_fewshot 0",
        f"--batch_size {shlex.quote(str(batch_size))}",
        f"--device {shlex.quote(device)}",
    ]
    if output_path:
        parts.append(f"--output_path {shlex.quote(output_path)}")
    return " \\\n  ".join(parts)


def _define_model_class() -> type:
    """Define and register the lm-eval model type `mmfree` (an HFLM that imports mmfree first)."""
    from lm_eval.api.registry import register_model
    from lm_eval.models.huggingface import HFLM

    import mmfree.models  # noqa: F401  (registers model_type "mmfree" with transformers' Auto classes)

    class MMFreeLM(HFLM):
        """lm-eval's HF causal-LM wrapper for mmfree checkpoints; `add_bos_token` defaults to False."""

        def __init__(self, pretrained: Any = None, add_bos_token: bool | None = False, **kwargs: Any) -> None:
            if pretrained is None:
                raise ValueError(
                    "the mmfree model needs --model_args pretrained=DIR (a saved model directory)"
                )
            kwargs.setdefault("backend", "causal")  # lm-eval cannot tell from transformers' built-in mapping
            super().__init__(pretrained=pretrained, add_bos_token=add_bos_token, **kwargs)

    try:
        register_model("mmfree")(MMFreeLM)
    except ValueError as exc:  # already registered under that name by a different class
        raise ImportError(f"cannot register the lm-eval model type 'mmfree': {exc}") from exc
    return MMFreeLM


def _model_class() -> type:
    global _IMPORT_ERROR, _MODEL_CLASS
    if _MODEL_CLASS is None and _IMPORT_ERROR is None:
        try:
            _MODEL_CLASS = _define_model_class()
        except ImportError as exc:
            _IMPORT_ERROR = exc
    if _MODEL_CLASS is None:
        assert _IMPORT_ERROR is not None
        missing = getattr(_IMPORT_ERROR, "name", "") or ""
        if missing.split(".")[0] == "lm_eval":
            raise ImportError(_INSTALL_HINT) from _IMPORT_ERROR
        raise ImportError(f"cannot set up the lm-eval integration: {_IMPORT_ERROR}") from _IMPORT_ERROR
    return _MODEL_CLASS


def lm_eval_available() -> bool:
    """Whether lm-evaluation-harness can be imported."""
    import importlib.util

    return importlib.util.find_spec("lm_eval") is not None


def __getattr__(name: str) -> Any:
    if name == "MMFreeLM":
        return _model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """`python -m mmfree.eval.harness ARGS`: register mmfree, then run lm-eval's CLI on ARGS."""
    if not lm_eval_available():
        raise SystemExit(_INSTALL_HINT)
    _model_class()
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
