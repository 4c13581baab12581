"""A planted pickle payload is never executed. Files named like model weights, an adapter, a
checkpoint's optimizer / RNG state and training arguments hold a real payload that would write
a canary file when unpickled; every load either refuses with a clear message or ignores them,
and the canary never appears. A model whose config asks for its own code is refused unless
the user opts in."""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from workbench.core.config import MethodConfig, ModelConfig
from workbench.core.errors import WorkbenchError
from workbench.core.methods.registry import get_method
from workbench.core.models import ModelLoadError, load_model
from workbench.core.train.checkpoint import latest_complete, load_checkpoint, save_checkpoint


class Payload:
    """Unpickling this calls Path.write_text(canary, "executed")."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return pathlib.Path.write_text, (pathlib.Path(self.canary), "executed")


def plant(path: Path, canary: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Payload(canary)))


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "CANARY"
    probe = tmp_path / "probe.bin"
    plant(probe, path)  # the payload really works: unpickling it writes the canary
    pickle.loads(probe.read_bytes())
    assert path.read_text() == "executed"
    path.unlink()
    return path


def test_a_model_folder_with_only_pickle_weights_is_refused(tmp_path, tiny_llama, canary) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    plant(folder / "pytorch_model.bin", canary)
    with pytest.raises(ModelLoadError, match="only pickle weights"):
        load_model(ModelConfig(name_or_path=str(folder)))
    assert not canary.exists()


def test_pickle_files_beside_safetensors_are_never_opened(tmp_path, tiny_llama, canary) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama, folder)
    for name in ("pytorch_model.bin", "training_args.bin", "optimizer.pt", "rng_state.pth"):
        plant(folder / name, canary)
    loaded = load_model(ModelConfig(name_or_path=str(folder), device="cpu"))
    assert loaded.model is not None and not canary.exists()


def test_an_adapter_saved_as_pickle_is_refused(tmp_path, tiny_llama, canary) -> None:
    from workbench.core.model_cache import attach_adapters

    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    model = get_method("lora").apply(loaded.model, MethodConfig(name="lora", lora_r=4))
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    (adapter / "adapter_model.safetensors").unlink()
    plant(adapter / "adapter_model.bin", canary)
    fresh = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    with pytest.raises((WorkbenchError, ValueError, OSError)):
        attach_adapters(fresh, {"planted": adapter})
    assert not canary.exists()


def test_a_checkpoint_never_opens_pickle_files(tmp_path, tiny_llama, canary) -> None:
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    model = get_method("lora").apply(loaded.model, MethodConfig(name="lora", lora_r=4))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    path = save_checkpoint(tmp_path, 1, model, optimizer, None, {"step": 1})
    # The names Hugging Face's Trainer uses for pickled state, planted in a complete checkpoint.
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin",
                 "pytorch_model.bin"):
        plant(path / name, canary)
    assert latest_complete(tmp_path) == path
    assert load_checkpoint(path, model, optimizer, None)["step"] == 1
    # A payload in place of the weights file: the checkpoint reads as damaged, nothing runs.
    plant(path / "trainable.safetensors", canary)
    assert latest_complete(tmp_path) is None
    with pytest.raises(WorkbenchError):
        load_checkpoint(path, model, optimizer, None)
    assert not canary.exists()


def test_a_model_that_needs_its_own_code_is_refused_unless_allowed(tmp_path, tiny_llama) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "config.json").read_text())
    # An architecture transformers does not ship: only the folder's own code could load it.
    config.update(model_type="evilnet", architectures=["EvilForCausalLM"],
                  auto_map={"AutoConfig": "modeling_evil.EvilConfig",
                            "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    canary = tmp_path / "CANARY"
    (folder / "modeling_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(canary)!r}).write_text('executed')\n")
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        load_model(ModelConfig(name_or_path=str(folder), device="cpu"))
    assert not canary.exists()
    # Opting in runs the folder's code: the refusal above was the only thing stopping it.
    with pytest.raises(Exception):
        load_model(ModelConfig(name_or_path=str(folder), device="cpu", trust_remote_code=True))
    assert canary.read_text() == "executed"
