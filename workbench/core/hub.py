"""Hub models on a user's workstation: download once with a progress bar, then load from the
local cache with no network call at all.

A model already in the Hugging Face cache (every file a load needs, the weights complete) is
used from its snapshot folder: transformers then never asks the hub whether a newer version
exists, so a cached model loads offline, on a plane, behind a firewall (users of other tools
report offline failures of exactly this kind). Otherwise the repository's file list and sizes
are read first, so the size is shown and the disk checked before a byte is fetched; then only
the files a load needs (config, tokenizer, safetensors weights: no pickled `.bin`, no ONNX or
GGUF copies) are downloaded, each through `huggingface_hub` with its byte counts forwarded to
the caller's progress. Offline with no cached copy stays one clear line.
"""

from __future__ import annotations

import errno
import fnmatch
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.core.disk import require_free
from workbench.core.errors import ModelLoadError
from workbench.core.progress import Progress, no_progress
from workbench.core.units import format_bytes

# The top-level files a load reads; subfolders hold other formats (onnx/, original/, gguf/).
NEEDED = ("*.safetensors", "*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken")
SKIPPED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.gguf", "*.onnx", "*.msgpack", "*.h5")


def needed(name: str) -> bool:
    return "/" not in name and any(fnmatch.fnmatch(name, p) for p in NEEDED) and \
        not any(fnmatch.fnmatch(name, p) for p in SKIPPED)


def complete(folder: Path) -> bool:
    """A snapshot holds what a load needs: config.json and every safetensors shard (by the
    index when the weights are sharded)."""
    if not (folder / "config.json").is_file():
        return False
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError):
            return False
        return all((folder / shard).is_file() for shard in shards)
    return any(folder.glob("*.safetensors"))


def cached_snapshot(repo: str, revision: str | None) -> Path | None:
    """The complete local snapshot of `repo`, found without any network call; None if absent."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, revision=revision, local_files_only=True,
                                        allow_patterns=list(NEEDED)))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    return folder if complete(folder) else None


def fetch(repo: str, revision: str | None, progress: Progress = no_progress) -> Path:
    """The local snapshot folder of `repo`: from the cache, else downloaded with progress."""
    cached = cached_snapshot(repo, revision)
    if cached is not None:
        return cached
    with hub_errors(repo, revision):
        return _download(repo, revision, progress)


def _download(repo: str, revision: str | None, progress: Progress) -> Path:
    from huggingface_hub import HfApi, constants, hf_hub_download

    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    files = sorted(((s.rfilename, int(s.size or 0)) for s in info.siblings or []
                    if needed(s.rfilename)), key=lambda f: f[1])
    if not any(name.endswith(".safetensors") for name, _ in files):
        raise ModelLoadError(f"hub model {repo} has no safetensors weights; pickle weights are "
                             "refused because they can run code when loaded",
                             hint="use a repo that ships *.safetensors")
    total = sum(size for _, size in files) or 1
    require_free(Path(constants.HF_HUB_CACHE), total, repo, error=ModelLoadError,
                 hint="free some space, or set HF_HOME to a larger disk")
    progress(0.0, f"downloading {repo}: {format_bytes(total)} in {len(files)} files")
    done = 0

    def moved(n: int) -> None:
        nonlocal done
        done += n
        progress(min(done / total, 0.999), f"{repo}: {format_bytes(done)} of {format_bytes(total)}")

    path = ""
    for name, size in files:
        start = done
        # By the user's revision, not the commit: the cache then records which commit "main"
        # is, and the next load finds the snapshot without asking the hub.
        path = hf_hub_download(repo, name, revision=revision, tqdm_class=_bar_class(moved))
        done = start + size  # exact, whatever the bar reported (cached files report nothing)
    progress(1.0, f"{repo}: {format_bytes(total)} downloaded")
    return Path(path).parent


def _bar_class(moved: Callable[[int], None]) -> type:
    """A tqdm class for `hf_hub_download` that forwards each chunk's byte count and draws
    nothing itself (the caller's progress is the one bar)."""
    from tqdm.auto import tqdm

    class Forward(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            moved(int(n or 0))
            return super().update(n)

    return Forward


@contextmanager
def hub_errors(repo: str, revision: str | None = None) -> Iterator[None]:
    """Every way the hub can refuse, as one clear ModelLoadError."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - mapped below, or raised as it was
        mapped = _as_load_error(err, repo, revision)
        if mapped is None:
            raise
        raise mapped from None


def _as_load_error(err: Exception, name: str, revision: str | None) -> ModelLoadError | None:
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return ModelLoadError(f"the disk filled up while downloading {name}",
                              hint="free some space, or set HF_HOME to a larger disk")
    if isinstance(err, GatedRepoError):
        return ModelLoadError(f"{name} is a gated model and this machine is not granted access",
                              hint="accept its licence on the hub, then run `hf auth login`")
    if isinstance(err, RepositoryNotFoundError):
        return ModelLoadError(f"no model {name!r} on the Hugging Face hub",
                              hint="check the spelling; private models need `hf auth login`")
    if isinstance(err, RevisionNotFoundError):
        return ModelLoadError(f"model {name} has no revision {revision!r}",
                              hint="leave revision empty for the default branch")
    if isinstance(err, (LocalEntryNotFoundError, OfflineModeIsEnabled, OSError)) or \
            type(err).__module__.startswith(("httpx", "httpcore", "requests")):
        return ModelLoadError(
            f"model {name!r} is not in the local Hugging Face cache and the hub cannot be "
            "reached (offline)",
            hint=f"download it once while online (`hf download {name}`), or pass a local "
            "model folder")
    return None
