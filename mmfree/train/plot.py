"""The loss-curve PNG of a run (matplotlib with the Agg backend; skipped with a message if it is missing)."""

from __future__ import annotations

import logging
from pathlib import Path

from mmfree.train.metrics import read_log

logger = logging.getLogger("mmfree.train")


def plot_loss(log_path: Path, png_path: Path, title: str = "") -> bool:
    """Draw train loss (and validation loss where logged) against step into `png_path`; False if skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed: skipping the loss plot (pip install matplotlib)")
        return False
    records = read_log(log_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*train), label="train loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val loss", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(png_path)
    return True
