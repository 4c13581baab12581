"""The running server's file routes serve the app's own assets and uploads, and nothing else:
not the workspace (database, run folders), not the source tree, not the Hugging Face cache,
not ~/.ssh, not /etc/passwd — by absolute path, `../` traversal, URL-encoding, double slashes
or case variants. Uploads over the limit are refused. Requests go to the real server
(`python launch.py`) with the path sent as written (no client-side normalisation)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from pathlib import Path

import pytest

from conftest import REPO, ServedApp

ASSETS = REPO / "assets"
UPLOAD_LIMIT = 50 * 2**20  # workbench/ui/server.py MAX_UPLOAD


def get(app: ServedApp, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as given: http.client sends it unnormalised."""
    parts = urllib.parse.urlsplit(app.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def upload(app: ServedApp, name: str, data: bytes) -> tuple[int, bytes]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() \
        + data + f"\r\n--{boundary}--\r\n".encode()
    parts = urllib.parse.urlsplit(app.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", "/gradio_api/upload", body=body,
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def variants(target: Path) -> list[str]:
    """Ways to name `target` on the file routes: plain, encoded, traversal out of the allowed
    assets folder (raw, encoded, double-encoded), doubled slashes, a case variant."""
    text = str(target)
    up = "../" * len(ASSETS.parts)  # enough to climb from assets/ to /
    return [
        f"/gradio_api/file={text}",
        f"/gradio_api/file={urllib.parse.quote(text, safe='')}",
        f"/gradio_api/file={ASSETS}/{up}{text.lstrip('/')}",
        f"/gradio_api/file={ASSETS}/{up.replace('../', '%2e%2e/')}{text.lstrip('/')}",
        f"/gradio_api/file={ASSETS}/{up.replace('../', '..%2f')}{text.lstrip('/')}",
        f"/gradio_api/file={ASSETS}/{up.replace('../', '%252e%252e%252f')}{text.lstrip('/')}",
        f"/gradio_api/file=/{text}",
        f"/gradio_api/file={text.upper()}",
        f"/file={text}",
        f"/static/{up}{text.lstrip('/')}",
        f"/assets/{up.replace('../', '..%2f')}{text.lstrip('/')}",
    ]


@pytest.fixture(scope="module")
def canaries(served_app: ServedApp, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Readable files the server must never hand out, each with unique content."""
    token = uuid.uuid4().hex
    home = tmp_path_factory.mktemp("home")
    places = {
        "database": served_app.workspace / "workbench.db",
        "run folder": served_app.workspace / "runs" / "1" / "train.log",
        "ssh key": home / ".ssh" / "id_ed25519",
        "hugging face token": home / ".cache" / "huggingface" / "token",
        "hugging face weights": home / ".cache" / "huggingface" / "hub" / "model.safetensors",
    }
    for name, path in places.items():
        if name == "database":
            continue  # the real database, as the app wrote it
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"canary {name} {token}")
    return {**places, "source": REPO / "pyproject.toml", "passwd": Path("/etc/passwd"),
            "environment": Path("/proc/self/environ")}


def test_the_routes_work_for_what_the_app_serves(served_app: ServedApp) -> None:
    """The positive control: the refusals below are refusals, not a broken route."""
    status, body = get(served_app, f"/gradio_api/file={ASSETS / 'logo.svg'}")
    assert status == 200 and b"<svg" in body
    status, body = upload(served_app, "note.txt", b"an upload")
    assert status == 200
    stored = json.loads(body)[0]
    assert get(served_app, f"/gradio_api/file={stored}") == (200, b"an upload")


@pytest.mark.parametrize("name", ["database", "run folder", "ssh key", "hugging face token",
                                  "hugging face weights", "source", "passwd", "environment"])
def test_no_file_outside_the_app_is_served(served_app: ServedApp, canaries, name: str) -> None:
    target = canaries[name]
    assert target.exists()
    secret = target.read_bytes()[:64] if target.stat().st_size else b""
    for path in variants(target):
        status, body = get(served_app, path)
        assert status != 200, (path, status)
        assert not (secret and secret in body), path


def test_an_upload_over_the_limit_is_refused_and_one_under_it_is_kept(served_app) -> None:
    status, body = upload(served_app, "big.bin", b"x" * (UPLOAD_LIMIT + 2**20))
    assert status == 413 and b"maximum allowed size" in body
    status, _ = upload(served_app, "small.bin", b"x" * 1024)
    assert status == 200
