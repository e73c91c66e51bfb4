#!/usr/bin/env bash
# One-step setup of a fresh machine: PyTorch (a CPU build where there is no NVIDIA GPU), then mmfree
# with its development extras (triton for the kernels and their CPU interpreter, pytest, ruff, plots).
# Idempotent: a second run only checks. Uses the `python3` on PATH (activate a venv first if you want one).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$PY" -m pip install -q torch
  else
    # A pinned release resolves to a CPU wheel where a CPU wheel index or mirror is configured; see
    # docs/install.md for pip's --index-url option on machines where it would fetch a CUDA build.
    "$PY" -m pip install -q "torch==2.13.0"
  fi
fi
if ! "$PY" -c "import mmfree, triton, pytest" 2>/dev/null || [ "${MMFREE_REINSTALL:-0}" = 1 ]; then
  "$PY" -m pip install -q -e ".[dev]"
fi
"$PY" -c "import torch, mmfree; print(f'mmfree {mmfree.__version__} ready: torch {torch.__version__}, cuda={torch.cuda.is_available()}')"
