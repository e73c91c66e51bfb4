"""Everything torch.distributed for training (the only module that touches it).

Processes are launched by torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
without them the run is a single process and every helper here is a no-op. The backend is NCCL on CUDA
and gloo on CPU. Models are wrapped with DDP, or FSDP2 (`fully_shard` on every block, then the root).
State dicts go through torch.distributed.checkpoint's helpers with full (unsharded) state dicts, so a
checkpoint is the same file whatever the parallelism, and only rank 0 ever holds or writes it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)


@dataclass
class DistEnv:
    """This process's place in the run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistEnv:
    """Join the torchrun process group (if WORLD_SIZE > 1) and pick this rank's device.

    `device` is "cpu", "cuda" or "auto" (cuda when available).
    """
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(0, 1, 0, torch.device("cuda" if use_cuda else "cpu"))
    for var in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ValueError(
                f"WORLD_SIZE={world} but {var} is not set; launch multi-process runs with torchrun"
            )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(minutes=30))
    return DistEnv(rank, world, local_rank, dev)


def shutdown(env: DistEnv) -> None:
    """Leave the process group."""
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for every rank."""
    if env.distributed:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean of `value` over ranks (a new tensor; `value` is unchanged)."""
    out = value.detach().clone()
    if env.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= env.world_size
    return out


def all_reduce_sum(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum of `value` over ranks (a new tensor)."""
    out = value.detach().clone()
    if env.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_object(obj: Any, env: DistEnv) -> list[Any]:
    """`obj` from every rank, in rank order."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    """Rank 0's `obj` on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap_model(model: nn.Module, env: DistEnv, mode: str, block_types: tuple[type, ...]) -> nn.Module:
    """DDP, or FSDP2 (`fully_shard` on each module of `block_types`, then the root); unchanged on 1 process."""
    if not env.distributed:
        return model
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [env.local_rank] if env.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(env.device.type, (env.world_size,))
        for module in model.modules():
            if isinstance(module, block_types):
                fully_shard(module, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    raise ValueError(f"--parallel must be 'ddp' or 'fsdp'; got {mode!r}")


@contextlib.contextmanager
def grad_sync(model: nn.Module, env: DistEnv, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce of a non-final gradient-accumulation micro-step (`sync=False`)."""
    if not env.distributed or sync:
        if hasattr(model, "set_requires_gradient_sync"):
            model.set_requires_gradient_sync(True)
        yield
        return
    if hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        yield
    else:
        yield


def unwrap(model: nn.Module) -> nn.Module:
    """The user model inside DDP / torch.compile wrappers (FSDP2 shards in place, so it is the model)."""
    inner = getattr(model, "_orig_mod", model)
    inner = getattr(inner, "module", inner)
    return getattr(inner, "_orig_mod", inner)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full, CPU, FQN-keyed model and optimizer state dicts (collective: every rank calls; rank 0 gets them)."""
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    target = unwrap(model)
    return get_model_state_dict(target, options=opts), get_optimizer_state_dict(
        target, optimizer, options=opts
    )


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_state: dict[str, Any],
    optim_state: dict[str, Any],
    env: DistEnv,
) -> None:
    """Load full state dicts held by rank 0 (other ranks pass empty dicts) into a (possibly sharded) model."""
    opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=env.distributed)
    target = unwrap(model)
    set_model_state_dict(target, model_state, options=opts)
    set_optimizer_state_dict(target, optimizer, optim_state, options=opts)
