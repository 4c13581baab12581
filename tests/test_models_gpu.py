"""Model loading on a CUDA GPU: auto dtype, device placement, 4-bit and 8-bit through
bitsandbytes' CUDA kernels, and memory read from the CUDA allocator. Deselected by default;
run with `python -m pytest -m gpu`."""

from __future__ import annotations

import pytest
import torch

from workbench.core.config import ModelConfig
from workbench.core.device import describe_device, pick_device, pick_dtype
from workbench.core.models import check_model, load_model

pytestmark = pytest.mark.gpu


def test_auto_picks_cuda_and_bf16_where_supported() -> None:
    assert pick_device("auto") == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert pick_dtype("cuda") is expected
    info = describe_device()
    assert info.kind == "cuda" and info.total_memory > 2**30
    assert info.summary().startswith("GPU: ")


@pytest.mark.parametrize("quantization", ["none", "4bit", "8bit"])
def test_tiny_model_loads_on_the_gpu(tiny_llama, quantization) -> None:
    torch.cuda.empty_cache()
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), quantization=quantization))
    params = list(loaded.model.parameters())
    assert all(p.device.type == "cuda" for p in params)
    assert loaded.memory_delta > 0  # measured by torch.cuda.memory_allocated
    enc = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello?"}], add_generation_prompt=True, return_tensors="pt"
    )
    out = loaded.model.generate(enc["input_ids"].cuda(), max_new_tokens=3, do_sample=False,
                                pad_token_id=loaded.tokenizer.pad_token_id)
    assert out.shape[1] == enc["input_ids"].shape[1] + 3
    if quantization == "4bit":
        import bitsandbytes as bnb

        layer = next(m for m in loaded.model.modules() if isinstance(m, bnb.nn.Linear4bit))
        assert layer.weight.quant_state.quant_type == "nf4"
        assert layer.compute_dtype in (torch.bfloat16, torch.float16)
    report = check_model(ModelConfig(name_or_path=str(tiny_llama), quantization=quantization))
    print(quantization, report)
