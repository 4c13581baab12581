"""Hub ids on a user's workstation, against a local fake hub (never the real one): the first
load shows the size and a progress bar and downloads only what a load needs; a cached model
loads with no network call at all; offline with no cache is one clear line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from fake_hub import FakeHub

REPO = "acme/tiny-chat"


@pytest.fixture
def hub(tiny_llama: Path, tmp_path: Path):
    folder = tmp_path / "repo"
    shutil.copytree(tiny_llama, folder)
    (folder / "pytorch_model.bin").write_bytes(b"pickled weights are never fetched")
    (folder / "README.md").write_text("a model card")
    served = FakeHub({REPO: folder})
    yield served
    served.close()


def _env(hub: FakeHub, home: Path, **more: str) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_OFFLINE": "0", **more}


def test_download_with_size_and_progress_then_cached_with_no_network(hub, tmp_path) -> None:
    home = tmp_path / "hf"
    first = run_cli("models", "check", REPO, env=_env(hub, home), timeout=300)
    assert first.returncode == 0, first.stderr
    lines = [u.strip() for u in first.stderr.splitlines()]
    # The size comes before any byte, then the bar moves to 100%.
    start = next(i for i, line in enumerate(lines) if "downloading acme/tiny-chat:" in line)
    assert re.search(r"downloading acme/tiny-chat: [\d.]+ (KiB|MiB) in \d+ files", lines[start])
    done = [line for line in lines[start:] if re.match(r"\d+%", line)]
    assert done and done[-1].startswith("100%") and "downloaded" in done[-1]
    assert "hub model acme/tiny-chat" in first.stdout
    fetched = [r.split("/resolve/")[1] for r in hub.requests if r.startswith("GET /acme")]
    assert "config.json" in " ".join(fetched) and any(f.endswith(".safetensors") for f in fetched)
    assert not [f for f in fetched if f.endswith((".bin", ".md"))]  # only what a load reads

    hub.requests.clear()
    again = run_cli("models", "check", REPO, env=_env(hub, home), timeout=300)
    assert again.returncode == 0, again.stderr
    assert hub.requests == []  # the cached snapshot: not one request
    assert "downloading" not in again.stderr

    hub.close()  # the hub is gone; the cached model still loads
    offline = run_cli("models", "check", REPO, env=_env(hub, home), timeout=300)
    assert offline.returncode == 0, offline.stderr


def test_offline_without_a_cached_copy_is_one_line(hub, tmp_path) -> None:
    result = run_cli("models", "check", REPO,
                     env=_env(hub, tmp_path / "empty", HF_HUB_OFFLINE="1"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: model 'acme/tiny-chat' is not in the local Hugging "
                                "Face cache and the hub cannot be reached (offline)"), lines
    assert "Traceback" not in result.stderr


def test_unknown_repo_and_too_little_disk(hub, tmp_path, monkeypatch) -> None:
    missing = run_cli("models", "check", "acme/none", env=_env(hub, tmp_path / "hf"))
    assert missing.returncode == 2 and "no model 'acme/none' on the Hugging Face hub" in \
        missing.stderr

    import huggingface_hub.constants as constants

    from workbench.core import disk
    from workbench.core import hub as hub_module
    from workbench.core.errors import ModelLoadError

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)  # the suite runs offline
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(disk.shutil, "disk_usage",
                        lambda _: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(ModelLoadError, match=r"not enough disk for acme/tiny-chat: it needs"):
        hub_module._download(REPO, None, lambda f, m: None)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.safetensors"))
