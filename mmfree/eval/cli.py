"""`mmfree eval`: settings dataclass and the command function (a thin map onto `run_eval`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmfree.eval.runner import format_results, run_eval


@dataclass
class EvalArgs:
    """Settings of `mmfree eval`."""

    model_dir: str  # saved model directory (config.json, weights, tokenizer)
    tasks: list[str] = field(
        default_factory=lambda: ["lambada"]
    )  # comma-separated task names, TASK:FILE, or lm:PATH
    limit: int | None = None  # first N examples per task (lm tasks: N scored tokens)
    data_dir: str | None = None  # eval data directory (default: $MMFREE_EVAL_DATA, else ../shared/data/eval)
    batch_size: int = 8  # requests per forward pass
    output: str | None = None  # write the results as JSON to this file
    device: str = "cpu"  # torch device, e.g. cpu or cuda:0
    dtype: str = "float32"  # model dtype: float32, bfloat16 or float16
    harness_command: bool = False  # print the lm-eval command for these tasks instead


def evaluate(args: EvalArgs) -> int:
    """Print the results table (or the lm-eval command); write JSON when asked."""
    if args.harness_command:
        from mmfree.eval.harness import harness_command

        print(harness_command(args.model_dir, args.tasks, device=args.device))
        return 0
    results = run_eval(
        args.model_dir,
        args.tasks,
        args.limit,
        args.data_dir,
        args.batch_size,
        args.output,
        args.device,
        args.dtype,
    )
    print(format_results(results))
    if args.output:
        print(f"results written to {args.output}")
    return 0
