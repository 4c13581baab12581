from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from workbench.core.config import ModelConfig
from workbench.core.device import describe_device, pick_device, pick_dtype
from workbench.core.errors import ModelLoadError, WorkbenchError
from workbench.core.models import check_model, load_model, resolve_source


def _generate(loaded, question: str = "What is the capital of France?") -> torch.Tensor:
    enc = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = enc["input_ids"].to(loaded.device)
    with torch.no_grad():
        out = loaded.model.generate(ids, max_new_tokens=4, do_sample=False,
                                    pad_token_id=loaded.tokenizer.pad_token_id)
    return out[0, ids.shape[1]:]


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_qwen2"])
def test_tiny_models_of_real_architectures_load_and_generate(fixture, request) -> None:
    folder: Path = request.getfixturevalue(fixture)
    loaded = load_model(ModelConfig(name_or_path=str(folder), device="cpu"))
    assert loaded.source.kind == "local"
    assert loaded.device == "cpu" and loaded.dtype is torch.float32
    assert loaded.quantization == "none"
    assert not loaded.chat_template_fallback
    assert loaded.parameters == sum(p.numel() for p in loaded.model.parameters())
    assert len(_generate(loaded)) == 4


def test_4bit_nf4_loading_runs_on_cpu(tiny_llama: Path) -> None:
    import bitsandbytes as bnb

    full = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    quant = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu", quantization="4bit"))
    linear4 = [m for m in quant.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linear4, "no layer was quantized"
    weight = linear4[0].weight
    assert weight.quant_state.quant_type == "nf4"
    assert weight.quant_state.nested  # double quantization
    # Parameters are counted as defined, not as packed bytes.
    assert quant.parameters == full.parameters
    assert len(_generate(quant)) == 4
    report = check_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu", quantization="4bit"))
    assert report["quantization"] == "4bit" and report["parameters"] == full.parameters


def test_8bit_loading_runs_on_cpu(tiny_qwen2: Path) -> None:
    import bitsandbytes as bnb

    loaded = load_model(ModelConfig(name_or_path=str(tiny_qwen2), device="cpu", quantization="8bit"))
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in loaded.model.modules())
    assert len(_generate(loaded)) == 4


def test_a_base_model_without_chat_template_gets_the_fallback(tiny_base_model: Path) -> None:
    loaded = load_model(ModelConfig(name_or_path=str(tiny_base_model), device="cpu"))
    assert loaded.chat_template_fallback
    text = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Ada."}],
        tokenize=False,
    )
    assert "### Question:\nWho?" in text and text.rstrip().endswith("Ada.<|eos|>")
    assert len(_generate(loaded)) == 4


def test_auto_device_and_dtype() -> None:
    device = pick_device("auto")
    if not torch.cuda.is_available():
        assert device in ("cpu", "mps")
        with pytest.raises(WorkbenchError, match="PyTorch sees no CUDA GPU"):
            pick_device("cuda")
    assert pick_dtype("cpu") is torch.float32
    assert pick_dtype("cpu", "bfloat16") is torch.bfloat16
    info = describe_device("cpu")
    assert info.total_memory > 0 and info.cpu_cores >= 1 and "RAM" in info.summary()


def test_resolve_source_tells_folders_from_hub_ids(tmp_path, tiny_llama) -> None:
    assert resolve_source(str(tiny_llama)).kind == "local"
    assert resolve_source("Qwen/Qwen2.5-0.5B-Instruct").kind == "hub"
    assert resolve_source("gpt2").kind == "hub"
    for bad in ["./missing-folder", "/no/such/model", "a/b/c", "not a model"]:
        with pytest.raises(ModelLoadError, match="not a valid hub id"):
            resolve_source(bad)
    (tmp_path / "weights.safetensors").write_text("x")
    with pytest.raises(ModelLoadError, match="is a file, not a model folder"):
        resolve_source(str(tmp_path / "weights.safetensors"))


def _copy_without(src: Path, dst: Path, *, drop: tuple[str, ...]) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*drop))
    return dst


def test_folder_without_config_json(tmp_path, tiny_llama) -> None:
    folder = _copy_without(tiny_llama, tmp_path / "m", drop=("config.json",))
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_model(ModelConfig(name_or_path=str(folder)))


def test_folder_without_tokenizer(tmp_path, tiny_llama) -> None:
    folder = _copy_without(tiny_llama, tmp_path / "m", drop=("tokenizer*", "chat_template*"))
    with pytest.raises(ModelLoadError, match="has no tokenizer"):
        load_model(ModelConfig(name_or_path=str(folder)))


def test_pickle_weights_are_refused(tmp_path, tiny_llama) -> None:
    folder = _copy_without(tiny_llama, tmp_path / "m", drop=("*.safetensors",))
    (folder / "pytorch_model.bin").write_bytes(b"not loaded, never unpickled")
    with pytest.raises(ModelLoadError, match="only pickle weights"):
        load_model(ModelConfig(name_or_path=str(folder)))


def test_unknown_hub_id_while_offline(monkeypatch, tmp_path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        load_model(ModelConfig(name_or_path="nobody/no-such-model-xyz"))


def test_quantization_on_mps_is_refused_plainly() -> None:
    from workbench.core.models import _quantization_config

    with pytest.raises(ModelLoadError, match="not supported on Apple MPS"):
        _quantization_config("4bit", "mps", torch.float16)
