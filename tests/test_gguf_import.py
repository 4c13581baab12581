"""GGUF files as model input: what is refused, with what message, and the cache's rules.
The conversion itself runs on the real model in tests/test_real_model.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.core import gguf_import
from workbench.core.errors import ModelLoadError
from workbench.core.models import resolve_source


def write_gguf(path: Path, arch: str = "llama", dtype: type = np.float32) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny")
    writer.add_tensor("token_embd.weight", np.ones((64, 32), dtype=dtype))
    writer.add_tensor("output_norm.weight", np.ones((32,), dtype=dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(gguf_import.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_inspect_reads_the_header_of_a_valid_file(tmp_path: Path) -> None:
    info = gguf_import.inspect_gguf(write_gguf(tmp_path / "m.gguf"))
    assert info["architecture"] == "llama" and info["name"] == "tiny"
    assert info["types"] == ["F32"] and info["tensors"] == 2


def test_a_file_that_is_not_gguf_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello, I am text")
    with pytest.raises(ModelLoadError, match="notes.gguf is not a GGUF file") as err:
        resolve_source(str(bad))
    assert "\n" not in str(err.value)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    whole = write_gguf(tmp_path / "whole.gguf").read_bytes()
    for keep in (len(whole) - 100, len(whole) // 2, 40):
        cut = tmp_path / f"cut{keep}.gguf"
        cut.write_bytes(whole[:keep])
        with pytest.raises(ModelLoadError, match="truncated") as err:
            resolve_source(str(cut))
        assert "\n" not in str(err.value)
    assert not list((tmp_path / "cache").glob("gguf/*")), "nothing half-written in the cache"


def test_an_unsupported_architecture_names_the_supported_ones(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "rwkv.gguf", arch="rwkv6")
    with pytest.raises(ModelLoadError) as err:
        resolve_source(str(path))
    text = str(err.value)
    assert "rwkv6 model" in text and "llama" in text and "qwen2" in text and "gemma3" in text


def test_an_unsupported_tensor_type_is_named(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "f64.gguf", dtype=np.float64)
    with pytest.raises(ModelLoadError, match="quantized as F64") as err:
        resolve_source(str(path))
    assert "Q4_K" in str(err.value) and "Q8_0" in str(err.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no GGUF file at"):
        resolve_source(str(tmp_path / "absent.gguf"))


def test_conversion_happens_once_and_lands_complete(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The converter runs on first use only; a folder is renamed into place when complete,
    and an extension-less blob (as Ollama stores models) is recognised by its signature."""
    calls: list[Path] = []

    def fake_convert(path: Path, out: Path, progress: object) -> None:
        calls.append(path)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(gguf_import, "_convert", fake_convert)
    blob = write_gguf(tmp_path / "sha256-0123abcd")
    first = resolve_source(str(blob))
    second = resolve_source(str(blob))
    assert first == second and len(calls) == 1
    assert first.kind == "local" and first.gguf == str(blob)
    assert "GGUF file" in first.describe()
    folder = Path(first.location)
    assert (folder / "config.json").is_file() and (folder / gguf_import._COMPLETE).is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name], "no temp folder left"


def test_a_failed_conversion_leaves_no_cache_entry(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(path: Path, out: Path, progress: object) -> None:
        (out / "model.safetensors").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf_import, "_convert", full_disk)
    with pytest.raises(ModelLoadError, match="No space left on device"):
        resolve_source(str(write_gguf(tmp_path / "m.gguf")))
    assert not list((tmp_path / "cache" / "gguf").iterdir())
