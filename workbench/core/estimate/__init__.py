"""How much memory and time a training run will need, before it starts.

    terms.py      the memory terms (weights, trained weights, optimizer, activations, runtime)
                  and what each costs; a method adds its own through its `MemoryTerms`
    result.py     `MemoryEstimate`, the predicted peak and its parts in words
    fit.py        `estimate_memory`, with the first change that makes a run fit
    tokens.py     the knowledge set's real length, rendered with the model's tokenizer
    check.py      `preflight(config) -> Estimate`: memory and time together, cached
The time model itself is time_estimate.py; the model's shape, model_shape.py.
"""

from workbench.core.estimate.check import Estimate, cached_set_tokens, preflight
from workbench.core.estimate.fit import estimate_memory
from workbench.core.estimate.result import MiB, SAFE_SHARE, MemoryEstimate
from workbench.core.estimate.terms import (CPU_HEAP_RETAINED, CPU_RUNTIME, DTYPE_BYTES,
                                           GPU_RUNTIME, INT8_BYTES, LOGIT_BYTES, NF4_BYTES,
                                           PAGED_ADAM8_BYTES)
from workbench.core.estimate.tokens import SetTokens, batch_seq_len, set_tokens, set_tokens_or_none
from workbench.core.methods.located import located_params
from workbench.core.methods.lora import targets_in as lora_targets
from workbench.core.model_shape import ModelShape, model_shape

__all__ = ["CPU_HEAP_RETAINED", "CPU_RUNTIME", "DTYPE_BYTES", "GPU_RUNTIME", "INT8_BYTES",
           "LOGIT_BYTES", "NF4_BYTES", "PAGED_ADAM8_BYTES", "SAFE_SHARE", "Estimate", "MiB",
           "MemoryEstimate", "ModelShape", "SetTokens", "batch_seq_len", "cached_set_tokens",
           "estimate_memory", "located_params", "lora_targets", "model_shape", "preflight",
           "set_tokens", "set_tokens_or_none"]
