"""Evaluation: zero-shot multiple choice scored as lm-evaluation-harness does, and LM metrics.

`run_eval(model_dir, tasks, ...)` loads a saved model and evaluates it; `evaluate(model, tokenizer,
tasks, ...)` takes objects; `format_results(results)` renders the table; `harness_command(model_dir,
tasks)` prints the lm-evaluation-harness command that reproduces the paper's zero-shot table.
"""

from __future__ import annotations

from mmfree.eval.harness import PAPER_METRICS, PAPER_TASKS, harness_command
from mmfree.eval.runner import evaluate, format_results, load_model, run_eval, write_results
from mmfree.eval.tasks import KNOWN_TASKS, default_data_dir, load_task

__all__ = [
    "KNOWN_TASKS",
    "PAPER_METRICS",
    "PAPER_TASKS",
    "default_data_dir",
    "evaluate",
    "format_results",
    "harness_command",
    "load_model",
    "load_task",
    "run_eval",
    "write_results",
]
