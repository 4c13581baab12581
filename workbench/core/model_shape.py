"""A model's shape, read from its config alone: parameter counts, layer sizes, the names of
its linears. Instantiated on the meta device (no memory, no weights read), so every count is
exact. The memory estimate and each method's memory terms read it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.errors import ModelLoadError
from workbench.core.models import ModelSource, _fetch_hub_config, _first_line, resolve_source
from workbench.core.sections import ModelConfig


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on, read from the model's config without loading weights."""

    source: str  # "hub model Qwen/..." or "folder /..."
    architecture: str  # LlamaForCausalLM
    total_params: int  # every parameter once (a tied head counts with the embeddings)
    embedding_params: int  # input embeddings
    head_params: int  # the output head; 0 when tied to the embeddings
    linear_params: int  # every nn.Linear but the head, weights + biases
    n_layers: int
    hidden: int
    n_heads: int
    q_dim: int  # heads × head_dim
    kv_dim: int  # key/value heads × head_dim
    intermediate: int
    vocab: int
    stored_dtype: str | None  # the checkpoint's dtype as its config states it
    layers_prefix: str  # "model.layers": the decoder blocks, numbered below it
    head_name: str  # "lm_head"
    linears: tuple[tuple[str, int, int], ...]  # (module name, in, out), the head included
    params: tuple[tuple[str, int], ...]  # (parameter name, count)

    @property
    def other_params(self) -> int:
        """Norms and anything else that is neither embedding, head nor linear."""
        return self.total_params - self.embedding_params - self.head_params - self.linear_params


def model_shape(model_cfg: ModelConfig) -> ModelShape:
    """The shape of `model_cfg`'s model: its config instantiated on the meta device (no
    memory, no weights read), so every count is exact. Cached per model and revision."""
    source = resolve_source(model_cfg.name_or_path, model_cfg.revision)
    stamp = 0.0
    if source.kind == "local":  # a rebuilt folder must not be served from the cache
        stamp = (Path(source.location) / "config.json").stat().st_mtime
    else:
        _fetch_hub_config(source)  # offline / unknown / gated → one clear ModelLoadError
    return _shape(source, model_cfg.trust_remote_code, stamp)


@functools.lru_cache(maxsize=32)
def _shape(source: ModelSource, trust_remote_code: bool, stamp: float) -> ModelShape:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(source.location, revision=source.revision,
                                            trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, ImportError, TypeError) as err:
        text = _first_line(err)
        if "trust_remote_code" in text:
            raise ModelLoadError(f"{source.describe()} needs its own Python code to load",
                                 hint="set model.trust_remote_code to true only if you trust "
                                      "its authors") from None
        raise ModelLoadError(f"cannot read the configuration of {source.describe()}: {text}",
                             hint="check that it is a causal language model") from None
    return _measure(model, config, source)


def _measure(model: Any, config: Any, source: ModelSource) -> ModelShape:
    import torch.nn as nn

    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    names = {id(m): n for n, m in model.named_modules()}
    head_name = names.get(id(head), "") if head is not None else ""
    tied = head is not None and head.weight is embed.weight
    linears = tuple((n, m.in_features, m.out_features) for n, m in model.named_modules()
                    if isinstance(m, nn.Linear))
    linear_params = sum(p.numel() for n, m in model.named_modules()
                        if isinstance(m, nn.Linear) and m is not head for p in m.parameters())
    blocks = max(((n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList)),
                 key=lambda nm: len(nm[1]), default=("", []))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(embed.weight.shape[1])
    heads = int(_first(text, "num_attention_heads", "n_head", default=1))
    head_dim = int(_first(text, "head_dim", default=0) or hidden // heads)
    kv_heads = int(_first(text, "num_key_value_heads", "n_head_kv", default=heads) or heads)
    dtype = getattr(config, "dtype", None)  # transformers 5 reads torch_dtype into it
    return ModelShape(
        source=source.describe(), architecture=type(model).__name__,
        total_params=sum(p.numel() for p in model.parameters()),
        embedding_params=embed.weight.numel(),
        head_params=0 if tied or head is None else sum(p.numel() for p in head.parameters()),
        linear_params=linear_params, n_layers=len(blocks[1]), hidden=hidden, n_heads=heads,
        q_dim=heads * head_dim, kv_dim=kv_heads * head_dim,
        intermediate=int(_first(text, "intermediate_size", "n_inner", default=0) or 4 * hidden),
        vocab=int(embed.weight.shape[0]),
        stored_dtype=str(dtype).removeprefix("torch.") if dtype else None,
        layers_prefix=blocks[0], head_name=head_name, linears=linears,
        params=tuple((n, p.numel()) for n, p in model.named_parameters()),
    )


def _first(config: Any, *names: str, default: Any) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default
