"""The quality study: MatMul-free against Transformer++ at equal compute, a small scaling law, ablations.

`study.prepare` (corpus slice -> tokenizer + token shards), `study.plan` (the study config, run specs,
parameter and FLOP counts), `study.run` (train + evaluate a named batch of runs through the project's
trainer and evaluator), `study.results` (the per-run JSON files and their bundle), `study.fit` (the L(C) = a * C^-b + c fit) and `study.report` (the markdown report
and the scaling plot). See docs/results/README.md for how the lead runs it on the GPU machine.
"""
