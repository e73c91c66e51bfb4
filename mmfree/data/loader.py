"""Deterministic training batches and evaluation windows over a token stream.

The stream is cut into non-overlapping windows: window i covers tokens [i*T, i*T + T + 1), so consecutive
windows share one token and every token after the first is a label exactly once. `TokenBatches` visits the
windows of each epoch in a seeded random order; step s of an epoch takes the global batch
perm[s*G : (s+1)*G] (G = batch_size * world_size), and rank r gets its slice [r*B : (r+1)*B]. The windows left
over at the end of an epoch (fewer than G) are skipped; the next epoch uses a fresh permutation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch


class Tokens(Protocol):
    """Anything with a length and step-1 slicing to an integer array (TokenArray, np.ndarray)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> np.ndarray: ...


def _num_windows(tokens: Tokens, seq_len: int) -> int:
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    return max(0, (len(tokens) - 1) // seq_len)


def _gather(tokens: Tokens, windows: np.ndarray, seq_len: int) -> torch.Tensor:
    rows = [
        np.asarray(tokens[int(i) * seq_len : int(i) * seq_len + seq_len + 1], dtype=np.int64) for i in windows
    ]
    return torch.from_numpy(np.stack(rows))  # [len(windows), T + 1]


class TokenBatches:
    """Infinite iterator of `[batch_size, seq_len + 1]` int64 batches (inputs = [:, :-1], labels = [:, 1:]).

    `batch_size` is per rank; ranks with the same seed see disjoint windows whose union, rank by rank, is the
    global batch a single process with `batch_size * world_size` would see. `state_dict()` records the
    position (epoch, step); `load_state_dict()` restores it so the next batch is exactly the one that was
    next, also under a different world_size as long as the global batch size is unchanged.
    """

    def __init__(
        self,
        tokens: Tokens,
        batch_size: int,
        seq_len: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_windows = _num_windows(tokens, seq_len)
        self.global_batch_size = batch_size * world_size
        self.steps_per_epoch = self.num_windows // self.global_batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(tokens)} tokens make {self.num_windows} windows of seq_len+1={seq_len + 1} tokens, fewer than "
                f"one global batch of {self.global_batch_size}; use more data or a smaller batch_size/seq_len"
            )
        self.epoch = 0
        self.step = 0
        self._perm_epoch = -1
        self._perm = np.zeros(0, dtype=np.int64)

    def _permutation(self) -> np.ndarray:
        if self._perm_epoch != self.epoch:
            self._perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_windows)
            self._perm_epoch = self.epoch
        return self._perm

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        if self.step >= self.steps_per_epoch:
            self.epoch += 1
            self.step = 0
        start = self.step * self.global_batch_size + self.rank * self.batch_size
        windows = self._permutation()[start : start + self.batch_size]  # [B]
        self.step += 1
        return _gather(self.tokens, windows, self.seq_len)  # [B, T + 1]

    @property
    def tokens_per_step(self) -> int:
        """Label tokens in one global batch (all ranks together)."""
        return self.global_batch_size * self.seq_len

    def state_dict(self) -> dict[str, Any]:
        """The exact position: the next batch is step `step` of epoch `epoch`."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "global_batch_size": self.global_batch_size,
            "num_windows": self.num_windows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a saved position; raise ValueError when the data or batch geometry differ."""
        for key in ("seed", "seq_len", "global_batch_size", "num_windows"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"cannot resume batches: saved {key}={state.get(key)!r} but this loader has "
                    f"{getattr(self, key)!r}; resume with the same data, seed, seq_len and global batch size"
                )
        if not 0 <= int(state["step"]) <= self.steps_per_epoch or int(state["epoch"]) < 0:
            raise ValueError(f"bad loader state: epoch={state['epoch']}, step={state['step']}")
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])


def iter_eval_windows(
    tokens: Tokens,
    seq_len: int,
    batch_size: int,
    max_tokens: int | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[torch.Tensor]:
    """Non-overlapping `[b, seq_len + 1]` int64 windows in order (b <= batch_size; the last batch may be short).

    Every label token is scored once; at most `max_tokens` label tokens (whole windows) are covered, and the
    tail shorter than a window is left out. With world_size > 1, rank r takes windows r, r + world_size, ...
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    n = _num_windows(tokens, seq_len)
    if max_tokens is not None:
        n = min(n, max_tokens // seq_len)
    if n == 0:
        raise ValueError(
            f"no evaluation window fits: {len(tokens)} tokens, seq_len={seq_len}, max_tokens={max_tokens}; "
            "use a smaller seq_len or more validation data"
        )
    mine = np.arange(rank, n, world_size, dtype=np.int64)  # [n / world_size]
    for start in range(0, len(mine), batch_size):
        yield _gather(tokens, mine[start : start + batch_size], seq_len)  # [b, T + 1]
