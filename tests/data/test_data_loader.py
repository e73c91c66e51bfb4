"""TokenBatches (determinism, epoch coverage, resume, rank sharding) and iter_eval_windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmfree.data.loader import TokenBatches, iter_eval_windows
from mmfree.data.shards import TokenArray

T = 8


def take(loader: TokenBatches, n: int) -> list[torch.Tensor]:
    return [next(loader) for _ in range(n)]


def test_batches_are_contiguous_windows_and_deterministic() -> None:
    tokens = np.arange(1000, dtype=np.int64)
    a = take(TokenBatches(tokens, 4, T, seed=3), 5)
    b = take(TokenBatches(tokens, 4, T, seed=3), 5)
    c = take(TokenBatches(tokens, 4, T, seed=4), 5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    for batch in a:
        assert batch.shape == (4, T + 1) and batch.dtype == torch.int64
        starts = batch[:, 0]
        assert torch.all(starts % T == 0)
        assert torch.equal(batch, starts[:, None] + torch.arange(T + 1))


def test_every_window_once_per_epoch() -> None:
    tokens = np.arange(24 * T + 1, dtype=np.int64)  # exactly 24 windows
    loader = TokenBatches(tokens, 3, T, seed=0, world_size=1)
    assert loader.steps_per_epoch == 8
    epoch0 = torch.cat(take(loader, 8))[:, 0].tolist()
    assert sorted(epoch0) == [i * T for i in range(24)]
    epoch1 = torch.cat(take(loader, 8))[:, 0].tolist()
    assert sorted(epoch1) == sorted(epoch0) and epoch1 != epoch0 and loader.epoch == 1


def test_state_dict_resume_gives_exactly_the_next_batches() -> None:
    tokens = np.arange(40 * T + 5, dtype=np.int64)
    full = take(TokenBatches(tokens, 3, T, seed=11), 30)  # crosses epoch boundaries (13 steps per epoch)
    first = TokenBatches(tokens, 3, T, seed=11)
    take(first, 12)
    state = first.state_dict()
    resumed = TokenBatches(tokens, 3, T, seed=11)
    resumed.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(take(resumed, 18), full[12:]))


def test_ranks_split_the_global_batch() -> None:
    tokens = np.arange(50 * T + 1, dtype=np.int64)
    single = take(TokenBatches(tokens, 6, T, seed=5), 20)
    ranks = [take(TokenBatches(tokens, 2, T, seed=5, rank=r, world_size=3), 20) for r in range(3)]
    for step in range(20):
        assert torch.equal(torch.cat([ranks[r][step] for r in range(3)]), single[step])
    # A run saved on 3 ranks resumes on 1 process with the same global batch.
    saved = TokenBatches(tokens, 2, T, seed=5, rank=1, world_size=3)
    take(saved, 7)
    one = TokenBatches(tokens, 6, T, seed=5)
    one.load_state_dict(saved.state_dict())
    assert torch.equal(next(one), single[7])


def test_loader_errors() -> None:
    tokens = np.arange(10 * T + 1, dtype=np.int64)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        TokenBatches(tokens, 6, T, world_size=2)
    with pytest.raises(ValueError, match="rank < world_size"):
        TokenBatches(tokens, 1, T, rank=2, world_size=2)
    state = TokenBatches(tokens, 2, T, seed=1).state_dict()
    with pytest.raises(ValueError, match="saved seq_len=8"):
        TokenBatches(tokens, 2, 4, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="saved seed=1"):
        TokenBatches(tokens, 2, T, seed=2).load_state_dict(state)


def test_eval_windows_in_order_and_capped() -> None:
    tokens = np.arange(10 * T + 3, dtype=np.int64)  # 10 full windows and a short tail
    batches = list(iter_eval_windows(tokens, T, 4))
    assert [b.shape[0] for b in batches] == [4, 4, 2]
    rows = torch.cat(batches)
    assert rows[:, 0].tolist() == [i * T for i in range(10)]
    assert torch.equal(rows, rows[:, :1] + torch.arange(T + 1))
    assert sum(b.shape[0] for b in iter_eval_windows(tokens, T, 4, max_tokens=3 * T + 1)) == 3
    parts = [torch.cat(list(iter_eval_windows(tokens, T, 2, rank=r, world_size=3))) for r in range(3)]
    assert sorted(torch.cat(parts)[:, 0].tolist()) == rows[:, 0].tolist()
    with pytest.raises(ValueError, match="no evaluation window fits"):
        list(iter_eval_windows(tokens[:T], T, 4))


def test_token_array_over_shards(tmp_path: Path) -> None:
    data = np.arange(3000, dtype=np.int64) % 65000
    paths = []
    for i, (a, b) in enumerate([(0, 700), (700, 701), (701, 3000)]):
        paths.append(tmp_path / f"train-{i:05d}.bin")
        data[a:b].astype("<u2").tofile(paths[-1])
    arr = TokenArray(paths, np.dtype("<u2"), documents=3, raw_bytes=123)
    assert len(arr) == 3000 and arr.bytes == 123 and arr[700] == 700 and arr[-1] == 2999
    assert arr[695:710].tolist() == list(range(695, 710)) and arr[5:2].tolist() == []
    loader = TokenBatches(arr, 2, T, seed=0)
    batch = next(loader)
    assert torch.equal(batch, batch[:, :1] + torch.arange(T + 1))
    with pytest.raises(IndexError):
        arr[3000]
