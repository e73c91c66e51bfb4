"""The MatMul-free LM as transformers models: `MMFreeModel` and `MMFreeForCausalLM` (model_type `mmfree`).

Parameter names match the official `hgrn_bit` checkpoints (`model.embeddings`, `model.lower_bounds`,
`model.layers.N.attn.{i,f,g,o}_proj`, `...mlp.gate_proj`, `lm_head`, each BitLinear with its `norm`).
Generation carries an `MMFreeCache` of per-layer recurrent states, so memory is constant in length.
"""

from __future__ import annotations

import math
from dataclasses import make_dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils import generic as _generic

from mmfree.layers import BitLinear, MMFreeBlock, RMSNorm
from mmfree.models.cache import MMFreeCache
from mmfree.models.checkpoint import (
    CheckpointError,
    checkpoint_tensors,
    compare_state,
    read_config,
    weight_files,
)
from mmfree.models.configuration import MMFreeConfig
from mmfree.ops.mlgru import reset_from_cu_seqlens

# transformers renamed the cache in model outputs from `past_key_values` to `cache` (5.2x); use the field
# name of the installed version so both `out.past_key_values` and generation keep working.
CACHE_FIELD = "cache" if hasattr(_generic, "_rename_kwargs_for_bc") else "past_key_values"

MMFreeModelOutput = make_dataclass(
    "MMFreeModelOutput",
    [
        ("last_hidden_state", torch.Tensor | None, None),  # [B, T, d]
        (CACHE_FIELD, MMFreeCache | None, None),
        ("hidden_states", tuple | None, None),  # per layer [B, T, d]
    ],
    bases=(ModelOutput,),
)
MMFreeModelOutput.__doc__ = (
    "Output of MMFreeModel: final hidden states, the recurrent cache, optional hidden states."
)

MMFreeCausalLMOutput = make_dataclass(
    "MMFreeCausalLMOutput",
    [
        ("loss", torch.Tensor | None, None),  # []
        ("logits", torch.Tensor | None, None),  # [B, T, V]
        (CACHE_FIELD, MMFreeCache | None, None),
        ("hidden_states", tuple | None, None),
    ],
    bases=(ModelOutput,),
)
MMFreeCausalLMOutput.__doc__ = (
    "Output of MMFreeForCausalLM: loss (with labels), logits, cache, hidden states."
)


def output_cache(out: ModelOutput) -> MMFreeCache | None:
    """The cache carried by a model output, whatever transformers calls the field."""
    return getattr(out, CACHE_FIELD)


class MMFreePreTrainedModel(PreTrainedModel):
    """Weight init and transformers plumbing shared by the mmfree models."""

    config_class = MMFreeConfig
    config: MMFreeConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MMFreeBlock"]
    _is_stateful = True
    _supports_cache_class = True

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | Path, *model_args: Any, **kwargs: Any
    ) -> Any:
        """transformers' loader, after checking a local checkpoint is complete (no silent partial loads)."""
        path = Path(str(pretrained_model_name_or_path))
        if path.is_dir():
            from mmfree.infer.packed import is_packed_checkpoint, load_packed

            if is_packed_checkpoint(path):  # BitLinears stay packed at 2 bits (mmfree pack)
                if cls is not MMFreeForCausalLM:
                    raise CheckpointError(f"{path} is a packed checkpoint; load it with MMFreeForCausalLM")
                dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
                return load_packed(
                    path, kwargs.get("device_map") or "cpu", None if dtype == "auto" else dtype
                )
            _check_checkpoint(cls, path)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Official init: token-mixer BitLinears xavier (gain 2^-2.5), the rest normal(0, std), the
        residual output projections (o_proj, down_proj) scaled by 1/sqrt(2 * layers)."""
        std = self.config.initializer_range
        rescale = 1.0 / math.sqrt(2 * self.config.num_hidden_layers)
        if isinstance(module, nn.Linear):  # BitLinear too; its parent chose the scheme (layers/bitlinear.py)
            scheme = getattr(module, "init_scheme", "normal")
            scale = rescale if scheme.endswith("_residual") else 1.0
            if scheme.startswith("xavier"):
                init.xavier_uniform_(module.weight, gain=2**-2.5 * scale)
            else:
                init.normal_(module.weight, mean=0.0, std=std * scale)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, MMFreeModel) and module.lower_bounds is not None:
            init.zeros_(module.lower_bounds)


def _check_checkpoint(cls: type[MMFreePreTrainedModel], path: Path) -> None:
    """Refuse a checkpoint of another model type, an invalid config, or missing/extra/mis-shaped tensors."""
    raw = read_config(path)
    model_type = raw.get("model_type")
    if model_type == "hgrn_bit":
        raise CheckpointError(
            f"{path} is an official MMfreeLM (hgrn_bit) checkpoint; convert it first: mmfree convert {path} DST"
        )
    if model_type != MMFreeConfig.model_type:
        raise CheckpointError(
            f"{path} holds a {model_type!r} model, not an mmfree one (config.json model_type)"
        )
    config = MMFreeConfig.from_dict(raw)
    if not weight_files(path):
        return  # a PyTorch .bin checkpoint: transformers checks it
    found, _ = checkpoint_tensors(path)
    with torch.device("meta"):
        expected = {k: v.shape for k, v in cls(config).state_dict().items()}
    if cls is MMFreeModel:
        found = {k.removeprefix("model."): v for k, v in found.items() if not k.startswith("lm_head.")}
    compare_state(expected, {k: shape for k, (_, shape) in found.items()}, str(path))


class MMFreeModel(MMFreePreTrainedModel):
    """Embedding, blocks and final norm: `input_ids [B, T] -> hidden [B, T, d]`."""

    def __init__(self, config: MMFreeConfig) -> None:
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.lower_bounds = (
            nn.Parameter(torch.zeros(config.num_hidden_layers, config.hidden_size * config.expand_ratio))
            if config.use_lower_bound
            else None
        )
        self.layers = nn.ModuleList(
            MMFreeBlock(
                config.hidden_size,
                config.intermediate_size,
                layer_idx=idx,
                expand_ratio=config.expand_ratio,
                num_heads=config.num_heads,
                gate_form=config.gate_form,
                norm_eps=config.rms_norm_eps,
                bitlinear_eps=config.bitlinear_eps,
            )
            for idx in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def layer_lower_bounds(self) -> list[torch.Tensor | None]:
        """Per-layer forget-gate lower bounds: cumsum(softmax(lower_bounds, 0)) minus its first row."""
        if self.lower_bounds is None:
            return [None] * len(self.layers)
        lb = self.lower_bounds.float().softmax(0)  # [L, d']
        lb = lb.cumsum(0) - lb[0]  # [L, d']
        return [None if idx == 0 else lb[idx] for idx in range(len(self.layers))]

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: MMFreeCache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        reset: torch.Tensor | None = None,
        cu_seqlens: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MMFreeModelOutput | tuple:
        """input_ids `[B, T]` (or inputs_embeds `[B, T, d]`); attention_mask `[B, T]` or `[B, past + T]`
        (0 marks left padding); reset `[B, T]` bool or cu_seqlens `[N + 1]` (B = 1) mark document starts."""
        if past_key_values is None:
            past_key_values = kwargs.pop("cache", None)
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = bool(output_hidden_states)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:  # an embedding stored narrower (`mmfree pack --embedding-dtype`) computes
            inputs_embeds = self.embeddings(input_ids).to(self.norm.weight.dtype)  # in the model's dtype
        x = inputs_embeds  # [B, T, d]
        B, T = x.shape[:2]
        if cu_seqlens is not None:
            if B != 1:
                raise ValueError(f"cu_seqlens needs a packed batch of one row; got batch size {B}")
            reset = reset_from_cu_seqlens(cu_seqlens.to(x.device), T)
        mask = None
        if attention_mask is not None:
            if attention_mask.ndim != 2 or attention_mask.shape[0] != B or attention_mask.shape[1] < T:
                raise ValueError(
                    f"attention_mask must be [batch, length >= {T}] (1 = token, 0 = left padding); "
                    f"got {tuple(attention_mask.shape)}"
                )
            mask = attention_mask[:, -T:]  # [B, T]; applied even when all ones (no host sync to check)
        if use_cache and past_key_values is None:
            past_key_values = MMFreeCache(len(self.layers))
        if past_key_values is not None and len(past_key_values) != len(self.layers):
            raise ValueError(f"cache has {len(past_key_values)} layers; this model has {len(self.layers)}")
        hidden: tuple[torch.Tensor, ...] = ()
        for layer, lb in zip(self.layers, self.layer_lower_bounds()):
            if output_hidden_states:
                hidden += (x,)
            state = past_key_values.states[layer.layer_idx] if past_key_values is not None else None
            if self.gradient_checkpointing and self.training:
                x, final = self._gradient_checkpointing_func(layer.__call__, x, lb, state, reset, mask)
            else:
                x, final = layer(x, lb, state, reset, mask)
            if past_key_values is not None:
                past_key_values.update(layer.layer_idx, final)
        if past_key_values is not None:
            past_key_values.seen_tokens += T
        x = self.norm(x)
        if output_hidden_states:
            hidden += (x,)
        cache_out = past_key_values if use_cache else None
        if not return_dict:
            return tuple(v for v in (x, cache_out, hidden or None) if v is not None)
        return MMFreeModelOutput(
            last_hidden_state=x, hidden_states=hidden or None, **{CACHE_FIELD: cache_out}
        )


class MMFreeForCausalLM(MMFreePreTrainedModel, GenerationMixin):
    """MMFreeModel plus the LM head (ternary BitLinear by default, as in the official model)."""

    def __init__(self, config: MMFreeConfig) -> None:
        super().__init__(config)
        self.model = MMFreeModel(config)
        self.vocab_size = config.vocab_size
        if config.ternary_lm_head:
            self.lm_head: nn.Linear = BitLinear(
                config.hidden_size, config.vocab_size, eps=config.bitlinear_eps
            )
        else:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    def get_decoder(self) -> MMFreeModel:
        return self.model

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: MMFreeCache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        reset: torch.Tensor | None = None,
        cu_seqlens: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> MMFreeCausalLMOutput | tuple:
        """As MMFreeModel, plus `labels [B, T]` (shifted inside; -100 ignored) for the mean next-token loss.

        With labels and `config.fuse_cross_entropy`, the loss is computed in token chunks and logits are
        not returned (None); otherwise logits `[B, T, V]` (the last `logits_to_keep` positions if > 0).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            past_key_values=past_key_values if past_key_values is not None else kwargs.pop("cache", None),
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            reset=reset,
            cu_seqlens=cu_seqlens,
        )
        h = out.last_hidden_state  # [B, T, d]
        loss = logits = None
        if labels is not None:
            if labels.shape != h.shape[:2]:
                raise ValueError(
                    f"labels must be [batch, length] = {tuple(h.shape[:2])}; got {tuple(labels.shape)}"
                )
            shift = torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), -100)], dim=1)  # [B, T]
            if self.config.fuse_cross_entropy:
                loss = self.lm_loss(h, shift)
            else:
                logits = self.lm_head(h)
                loss = F.cross_entropy(logits.float().flatten(0, 1), shift.flatten(), ignore_index=-100)
        if logits is None and (labels is None or not self.config.fuse_cross_entropy):
            keep = h[:, -logits_to_keep:] if logits_to_keep else h
            logits = self.lm_head(keep)  # [B, T', V]
        if not return_dict:
            return tuple(v for v in (loss, logits, output_cache(out), out.hidden_states) if v is not None)
        return MMFreeCausalLMOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, **{CACHE_FIELD: output_cache(out)}
        )

    def lm_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the head on `hidden [B, T, d]` against `targets [B, T]` (-100 ignored)."""
        from mmfree.ops.loss import lm_head_loss

        head = self.lm_head
        norm_weight = head.norm.weight if isinstance(head, BitLinear) else None
        eps = head.norm.eps if isinstance(head, BitLinear) else 0.0
        return lm_head_loss(
            hidden.flatten(0, 1),
            head.weight,
            targets.flatten(),
            norm_weight,
            isinstance(head, BitLinear),
            eps,
        )

    # -- generation plumbing (works with transformers 5.x, which named the cache `past_key_values` and later
    # `cache`): feed only the tokens the cache has not seen, and carry our MMFreeCache between steps.
    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        past_key_values: MMFreeCache | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        cache: MMFreeCache | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        cache = past_key_values if past_key_values is not None else cache
        seen = cache.get_seq_length() if isinstance(cache, MMFreeCache) else 0
        inputs: dict[str, Any] = {
            "past_key_values": cache,
            "use_cache": use_cache,
            "attention_mask": attention_mask,
        }
        if inputs_embeds is not None and seen == 0:
            inputs["inputs_embeds"] = inputs_embeds
        else:
            inputs["input_ids"] = input_ids[:, seen:].contiguous()
        if "logits_to_keep" in kwargs:
            inputs["logits_to_keep"] = kwargs["logits_to_keep"]
        return inputs

    def _update_model_kwargs_for_generation(
        self,
        outputs: Any,
        model_kwargs: dict[str, Any],
        is_encoder_decoder: bool = False,
        num_new_tokens: int = 1,
    ) -> dict[str, Any]:
        model_kwargs = super()._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=is_encoder_decoder, num_new_tokens=num_new_tokens
        )
        model_kwargs["past_key_values"] = output_cache(outputs)
        model_kwargs.pop("cache", None)
        return model_kwargs
