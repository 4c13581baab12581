"""Keep one loaded model in memory for the app (chat, screening, paraphrasing, Compare) and
hand it back on request. One model at a time: on an 8 GB GPU two would not fit, and the
training worker needs the memory back (`release`).

Compare asks for the base with some runs' LoRA adapters on it (`adapters`): they are loaded
into the same model (a few MB each), so base and tuned answers come from one copy of the
weights. A later plain request takes the adapters off again (peft `unload`, no reload), so
screening and paraphrasing never see a tuned model.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Mapping
from pathlib import Path

from workbench.core.sections import ModelConfig
from workbench.core.models import LoadedModel, load_model, safe_adapter_dir
from workbench.core.progress import Progress, no_progress


class ModelCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, str, str, str] | None = None
        self._loaded: LoadedModel | None = None

    @staticmethod
    def _key_of(cfg: ModelConfig) -> tuple[str, str, str, str]:
        return (cfg.name_or_path.strip(), cfg.quantization, cfg.device, cfg.dtype)

    def get(self, cfg: ModelConfig, adapters: Mapping[str, Path] | None = None, *,
            progress: Progress = no_progress) -> LoadedModel:
        """The model for `cfg`, loading it (and dropping any other) if needed; with
        `adapters` (name → peft adapter folder) loaded onto it, or bare without. `progress`
        follows a first-use download or GGUF import."""
        with self._lock:
            key = self._key_of(cfg)
            if self._loaded is None or self._key != key:
                self._drop()
                self._loaded = load_model(cfg, progress=progress)
                self._key = key
            if adapters:
                attach_adapters(self._loaded, adapters)
            else:
                detach_adapters(self._loaded)
            return self._loaded

    @property
    def current(self) -> LoadedModel | None:
        return self._loaded

    def release(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._loaded is None:
            return
        device = self._loaded.device
        self._loaded, self._key = None, None
        gc.collect()
        if device == "cuda":
            import torch

            torch.cuda.empty_cache()


def loaded_adapters(loaded: LoadedModel) -> set[str]:
    return set(getattr(loaded.model, "peft_config", {}) or {})


def attach_adapters(loaded: LoadedModel, adapters: Mapping[str, Path]) -> None:
    """Make `adapters` exactly the adapters on `loaded.model`: load the missing ones (wrapping
    the model in a PeftModel first) and delete the rest. Without the deletion every run ever
    compared, and every older adapter of a resumed run, would stay in memory for the app's
    lifetime: tens of MB each for a 7B model's all-linear LoRA."""
    from peft import PeftModel

    for name, folder in adapters.items():
        if name in loaded_adapters(loaded):
            continue
        path = safe_adapter_dir(folder)
        if isinstance(loaded.model, PeftModel):
            loaded.model.load_adapter(path, adapter_name=name)
        else:
            loaded.model = PeftModel.from_pretrained(loaded.model, path, adapter_name=name)
    if adapters:  # new ones are loaded first: peft cannot delete the only adapter
        for name in loaded_adapters(loaded) - set(adapters):
            loaded.model.delete_adapter(name)
    loaded.model.eval()


def detach_adapters(loaded: LoadedModel) -> None:
    """Take every adapter off, leaving the base weights exactly as loaded (nothing merged)."""
    from peft import PeftModel

    if isinstance(loaded.model, PeftModel):
        loaded.model = loaded.model.unload()
        loaded.model.eval()
