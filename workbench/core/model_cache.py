"""Keep one loaded model in memory for the app (chat, screening, paraphrasing) and hand it
back on request. One model at a time: on an 8 GB GPU two would not fit, and the training
worker needs the memory back (`release`)."""

from __future__ import annotations

import gc
import threading

from workbench.core.config import ModelConfig
from workbench.core.models import LoadedModel, load_model


class ModelCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, str, str, str] | None = None
        self._loaded: LoadedModel | None = None

    @staticmethod
    def _key_of(cfg: ModelConfig) -> tuple[str, str, str, str]:
        return (cfg.name_or_path.strip(), cfg.quantization, cfg.device, cfg.dtype)

    def get(self, cfg: ModelConfig) -> LoadedModel:
        """The model for `cfg`, loading it (and dropping any other) if needed."""
        with self._lock:
            key = self._key_of(cfg)
            if self._loaded is None or self._key != key:
                self._drop()
                self._loaded = load_model(cfg)
                self._key = key
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
