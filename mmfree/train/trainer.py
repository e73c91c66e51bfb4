"""The training loop: `run_training(cfg) -> TrainResult`.

One optimizer step = `grad_accum` micro-steps of `batch_size` windows (split evenly over the ranks) of
`seq_len` scored tokens; bf16 autocast on GPU, fp32 on CPU; gradient clipping; the LR schedule of
`schedule.py`. A non-finite loss or gradient norm stops the run before the optimizer step, so no checkpoint
ever holds diverged weights. Checkpoints (`checkpoint.py`) restore model, optimizer, scheduler, RNG states
and data position, so a resumed run continues exactly (bitwise on CPU with a fixed thread count).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmfree.train import checkpoint as ckpt
from mmfree.train import parallel
from mmfree.train.config import TrainConfig
from mmfree.train.data import RunData, resolve_data
from mmfree.train.metrics import LOG_FILE, RunLog, bits_per_byte, unigram_loss
from mmfree.train.model import block_types, build_model, make_optimizer, window_loss
from mmfree.train.parallel import DistEnv
from mmfree.train.plot import plot_loss
from mmfree.train.schedule import make_scheduler

logger = logging.getLogger("mmfree.train")
FINAL_DIR = "final"
OOM_HINT = "lower --batch-size or --seq-len, or use --grad-accum / --activation-checkpointing"


class TrainingError(ValueError):
    """The run cannot continue (diverged, or out of memory); the message says why and what to change."""


@dataclass
class Evaluation:
    """Validation numbers: loss (nats/token), perplexity, bits per byte, scored tokens."""

    loss: float
    ppl: float
    bpb: float
    tokens: int


@dataclass
class TrainResult:
    """What a finished run reports (on rank 0; other ranks get the same numbers where they are known)."""

    out_dir: Path
    final_dir: Path
    steps: int
    resumed_from: int | None
    final_loss: float
    val: Evaluation | None
    unigram_loss: float
    unigram_bpb: float
    sample: str
    tokens_per_s: float
    elapsed_s: float


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _grad_norm(params: list[nn.Parameter], clip: float) -> float:
    if clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    full = getattr(norm, "full_tensor", None)
    return float((full() if full is not None else norm).item())


def evaluate(model: nn.Module, data: RunData, cfg: TrainConfig, env: DistEnv) -> Evaluation:
    """Validation loss over the first `eval_tokens` tokens of the val split (all ranks take part)."""
    from mmfree.data.loader import iter_eval_windows

    windows = max(1, min(cfg.eval_tokens, len(data.val) - 1) // cfg.seq_len)
    windows = max(env.world_size, windows // env.world_size * env.world_size)
    batch = max(1, cfg.batch_size // env.world_size)
    total = torch.zeros(2, dtype=torch.float64, device=env.device)  # [loss sum, tokens]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for window in iter_eval_windows(
            data.val, cfg.seq_len, batch, windows * cfg.seq_len, rank=env.rank, world_size=env.world_size
        ):
            window = window.to(env.device)  # [b, T + 1]
            with _autocast(env.device):
                loss = window_loss(model, window, cfg.arch, data.eos_token_id)
            count = window.shape[0] * cfg.seq_len
            total += torch.stack(
                [loss.double() * count, torch.tensor(count, dtype=torch.float64, device=env.device)]
            )
    model.train(was_training)
    total = parallel.all_reduce_sum(total, env)
    loss_value = float(total[0] / total[1])
    split = data.meta["splits"]["val"]
    return Evaluation(
        loss_value,
        math.exp(min(loss_value, 700.0)),
        bits_per_byte(loss_value, int(split["tokens"]), int(split["bytes"])),
        int(total[1]),
    )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _save(
    out: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loader: Any,
    cfg: TrainConfig,
    env: DistEnv,
) -> tuple[Path | None, dict[str, Any]]:
    """Collective: gather full state dicts and write a checkpoint on rank 0; returns (path, model state)."""
    model_state, optim_state = parallel.full_state(model, optimizer)
    data_states = parallel.all_gather_object(loader.state_dict(), env)
    if not env.is_main:
        return None, model_state
    state = {
        "step": step,
        "model": model_state,
        "optimizer": optim_state,
        "scheduler": scheduler.state_dict(),
        "rng": ckpt.rng_state(),
        "data": data_states,
        "identity": cfg.identity(),
        "world_size": env.world_size,
    }
    return ckpt.save_checkpoint(out, step, state, cfg.keep), model_state


def _save_final(out: Path, model: nn.Module, model_state: dict[str, Any], tokenizer: Any) -> Path:
    """Write out/final as a Hugging Face directory (config, safetensors, tokenizer), atomically."""
    import tempfile

    inner = parallel.unwrap(model)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{FINAL_DIR}-"))
    inner.save_pretrained(str(tmp), state_dict=model_state, safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    target = out / FINAL_DIR
    ckpt.replace_dir(tmp, target)
    return target


def _load_final(final_dir: Path, device: torch.device) -> nn.Module:
    """The saved final model, reloaded with from_pretrained, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    import mmfree.models  # noqa: F401  (registers the Auto classes)

    return AutoModelForCausalLM.from_pretrained(str(final_dir)).to(device).eval()


def _check_saved(
    model: nn.Module, saved_model: nn.Module, final_dir: Path, data: RunData, arch: str, device: torch.device
) -> None:
    """Require that the reloaded final model computes the trained model's loss on two short validation
    windows (fp32, no autocast). A cache that kept stale weights, a wrong state dict or a lossy save would
    show here; raise TrainingError naming both losses."""
    from mmfree.data.loader import iter_eval_windows

    seq = max(1, min(128, len(data.val) // 2 - 1))
    window = next(iter_eval_windows(data.val, seq, 2, 2 * seq), None)
    if window is None:
        return
    window = window.to(device)  # [2, seq + 1]
    inner = parallel.unwrap(model)
    was_training = inner.training
    inner.eval()
    with torch.no_grad():
        trained = float(window_loss(inner, window, arch, data.eos_token_id))
        saved = float(window_loss(saved_model, window, arch, data.eos_token_id))
    inner.train(was_training)
    if not abs(saved - trained) <= 1e-3 * max(1.0, abs(trained)):
        raise TrainingError(
            f"the saved model in {final_dir} computes loss {saved:.5f} on a check batch, the trained model "
            f"{trained:.5f}: the saved weights are not what was trained (please report this as a bug)"
        )


def _sample(model: nn.Module, tokenizer: Any, prompt: str, tokens: int, device: torch.device) -> str:
    """Greedy continuation of `prompt` by the (reloaded) final model."""
    ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)], device=device)  # [1, P]
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )  # [1, P + N]
    return tokenizer.decode(out[0].tolist(), skip_special_tokens=True)


def run_training(cfg: TrainConfig) -> TrainResult:
    """Train (or resume) the run described by `cfg`; see the module docstring."""
    cfg.validate()
    env = parallel.init_distributed(cfg.device)
    try:
        return _Run(cfg, env).run()
    finally:
        parallel.shutdown(env)


class _Run:
    """One process's part of a run."""

    def __init__(self, cfg: TrainConfig, env: DistEnv) -> None:
        self.cfg = cfg
        self.env = env
        if cfg.batch_size % env.world_size:
            raise ValueError(
                f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({env.world_size})"
            )
        if cfg.resume and not cfg.out:
            raise ValueError("--resume needs --out: the run directory to continue")
        self.out = Path(parallel.broadcast_object(cfg.out_dir(), env))

    def _setup(self) -> Path | None:
        cfg, env = self.cfg, self.env
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        resume_from = ckpt.check_out_dir(self.out, cfg.identity(), cfg.resume)
        fresh = not self.out.is_dir() or not any(self.out.iterdir())
        parallel.barrier(env)
        try:
            self.data = resolve_data(cfg, self.out, env)
        except BaseException:
            if fresh and env.is_main:
                shutil.rmtree(self.out, ignore_errors=True)
            raise
        if env.is_main and not (self.out / ckpt.CONFIG_FILE).is_file():
            ckpt.write_run_config(self.out, dataclasses.asdict(cfg), cfg.identity())
        parallel.barrier(env)
        return resume_from

    def run(self) -> TrainResult:
        from mmfree.data.loader import TokenBatches

        cfg, env = self.cfg, self.env
        resume_from = self._setup()
        data = self.data
        _seed_everything(cfg.seed)
        bos = getattr(data.tokenizer, "bos_token_id", None)
        model = build_model(cfg, data.vocab_size, data.eos_token_id, bos).to(env.device)
        model.train()
        wrapped = parallel.wrap_model(model, env, cfg.parallel, block_types())
        params = [p for p in wrapped.parameters() if p.requires_grad]
        optimizer = make_optimizer(parallel.unwrap(wrapped), cfg, fused=env.device.type == "cuda")
        scheduler = make_scheduler(optimizer, cfg.max_steps, cfg.warmup_steps, cfg.arch, cfg.lr_halving)
        forward_model = torch.compile(wrapped) if cfg.compile else wrapped
        loader = TokenBatches(
            data.train,
            cfg.batch_size // env.world_size,
            cfg.seq_len,
            seed=cfg.seed,
            rank=env.rank,
            world_size=env.world_size,
        )
        step = 0
        if resume_from is not None:
            step = self._restore(resume_from, wrapped, optimizer, scheduler, loader)
        tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.seq_len
        log = RunLog(self.out, env.is_main, cfg.tensorboard, step if cfg.resume else None)
        if env.is_main:
            n_params = sum(p.numel() for p in model.parameters())
            logger.info(
                f"training {cfg.arch} ({cfg.preset}, {n_params / 1e6:.2f}M parameters, vocab {data.vocab_size}) "
                f"on {env.world_size} x {env.device.type}: {cfg.max_steps} steps of {tokens_per_step} tokens, "
                f"peak lr {cfg.peak_lr:g}, warmup {cfg.warmup_steps}; run directory {self.out}"
                + (f"; resumed at step {step}" if resume_from is not None else "")
            )
        bar = None
        if env.is_main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
        start = time.perf_counter()
        interval_start, interval_tokens = start, 0
        final_loss, val, model_state = float("nan"), None, None
        last_eval_step = -1
        try:
            while step < cfg.max_steps:
                lr = optimizer.param_groups[0]["lr"]
                loss, grad_norm = self._step(forward_model, wrapped, params, optimizer, loader, step)
                scheduler.step()
                step += 1
                interval_tokens += tokens_per_step
                final_loss = loss
                now = time.perf_counter()
                tok_s = interval_tokens / max(now - interval_start, 1e-9)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
                    bar.update(1)
                do_eval = step == cfg.max_steps or (cfg.eval_every and step % cfg.eval_every == 0)
                if do_eval or step % cfg.log_every == 0:
                    record: dict[str, Any] = {
                        "step": step,
                        "loss": loss,
                        "lr": lr,
                        "tokens": step * tokens_per_step,
                        "tokens_per_s": round(tok_s, 1),
                        "grad_norm": grad_norm,
                        "elapsed_s": round(now - start, 3),
                    }
                    if do_eval:
                        val = evaluate(forward_model, data, cfg, env)
                        last_eval_step = step
                        record.update(val_loss=val.loss, val_ppl=val.ppl, val_bpb=val.bpb)
                        if bar is not None:
                            bar.write(
                                f"step {step}: val loss {val.loss:.4f}, ppl {val.ppl:.2f}, bpb {val.bpb:.4f}"
                            )
                    log.write(record)
                    interval_start, interval_tokens = time.perf_counter(), 0
                if step == cfg.max_steps or (cfg.save_every and step % cfg.save_every == 0):
                    _, model_state = _save(self.out, step, wrapped, optimizer, scheduler, loader, cfg, env)
        finally:
            if bar is not None:
                bar.close()
            log.close()
        elapsed = time.perf_counter() - start
        if last_eval_step != step:
            val = evaluate(forward_model, data, cfg, env)
        if model_state is None:
            model_state, _ = parallel.full_state(wrapped, optimizer)
        return self._finish(wrapped, model_state, step, resume_from, final_loss, val, elapsed)

    def _step(
        self,
        forward_model: nn.Module,
        wrapped: nn.Module,
        params: list[nn.Parameter],
        optimizer: torch.optim.Optimizer,
        loader: Any,
        step: int,
    ) -> tuple[float, float]:
        """One optimizer step; returns (loss averaged over micro-steps and ranks, gradient norm)."""
        cfg, env = self.cfg, self.env
        optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=env.device)
        try:
            for micro in range(cfg.grad_accum):
                window = next(loader).to(env.device, non_blocking=True)  # [B / world, T + 1]
                with parallel.grad_sync(wrapped, env, sync=micro == cfg.grad_accum - 1):
                    with _autocast(env.device):
                        loss = window_loss(forward_model, window, cfg.arch, self.data.eos_token_id)
                    (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach().float()
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
            raise TrainingError(
                f"out of memory at step {step + 1} (batch {cfg.batch_size} x seq {cfg.seq_len} on "
                f"{env.device}): {OOM_HINT}"
            ) from None
        loss_value = float(parallel.all_reduce_mean(loss_sum / cfg.grad_accum, env).item())
        grad_norm = _grad_norm(params, cfg.clip)
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            last = ckpt.latest_checkpoint(self.out)
            raise TrainingError(
                f"training diverged at step {step + 1}: loss {loss_value}, gradient norm {grad_norm} (not finite). "
                f"Stopped before the update; no checkpoint was written with these weights"
                + (f" (the last good one is {last})" if last else "")
                + ". Lower --lr, raise --warmup, or keep --clip on, then start again or --resume"
            )
        optimizer.step()
        return loss_value, grad_norm

    def _restore(
        self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, loader: Any
    ) -> int:
        """Load a checkpoint into model, optimizer, scheduler, RNGs and loader; return its step."""
        env = self.env
        state = ckpt.load_checkpoint(path) if env.is_main else {}
        if env.is_main and state.get("identity") != self.cfg.identity():
            raise ValueError(
                f"checkpoint {path} belongs to a different run config; resume with the same settings"
            )
        parallel.load_full_state(model, optimizer, state.get("model", {}), state.get("optimizer", {}), env)
        small = parallel.broadcast_object(
            {k: v for k, v in state.items() if k not in ("model", "optimizer")}, env
        )
        scheduler.load_state_dict(small["scheduler"])
        ckpt.set_rng_state(small["rng"])
        loader.load_state_dict(small["data"][0])
        return int(small["step"])

    def _finish(
        self,
        model: nn.Module,
        model_state: dict[str, Any],
        step: int,
        resume_from: Path | None,
        final_loss: float,
        val: Evaluation | None,
        elapsed: float,
    ) -> TrainResult:
        cfg, env, data = self.cfg, self.env, self.data
        final_dir = self.out / FINAL_DIR
        uni = unigram_loss(data.train, data.val, data.vocab_size)
        split = data.meta["splits"]["val"]
        uni_bpb = bits_per_byte(uni, int(split["tokens"]), int(split["bytes"]))
        sample = ""
        if env.is_main:
            final_dir = _save_final(self.out, model, model_state, data.tokenizer)
            check = env.world_size == 1  # under DDP/FSDP the unwrapped forward may need every rank
            wants_sample = bool(cfg.sample_prompt) and cfg.sample_tokens > 0
            saved_model = _load_final(final_dir, env.device) if check or wants_sample else None
            if check:
                _check_saved(model, saved_model, final_dir, data, cfg.arch, env.device)
            plot_loss(self.out / LOG_FILE, self.out / "loss.png", f"{cfg.arch} {cfg.preset}")
            if wants_sample:
                sample = _sample(
                    saved_model, data.tokenizer, cfg.sample_prompt, cfg.sample_tokens, env.device
                )
            del saved_model
        parallel.barrier(env)
        done = max(0, step - (int(resume_from.name.split("-")[-1]) if resume_from else 0))
        tok_s = done * cfg.batch_size * cfg.grad_accum * cfg.seq_len / max(elapsed, 1e-9)
        return TrainResult(
            self.out,
            final_dir,
            step,
            int(resume_from.name.split("-")[-1]) if resume_from else None,
            final_loss,
            val,
            uni,
            uni_bpb,
            sample,
            tok_s,
            elapsed,
        )
