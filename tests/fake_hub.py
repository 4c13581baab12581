"""A Hugging Face hub on 127.0.0.1 serving model folders, for `HF_ENDPOINT`: the model-info
API with file sizes and the resolve URLs (HEAD and GET, with the commit and ETag headers
huggingface_hub reads). It counts every request, so a test can prove a load made none."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                return None

            def do_HEAD(self) -> None:  # noqa: N802
                hub._answer(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, req: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlparse(req.path).path)
        self.requests.append(f"{req.command} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo = "/".join(parts[2:4])
            folder = self.repos.get(repo)
            if folder is None:
                return self._missing(req, "RepoNotFound")
            siblings = [{"rfilename": f.name, "size": f.stat().st_size}
                        for f in sorted(folder.iterdir()) if f.is_file()]
            return self._send(req, json.dumps({"id": repo, "sha": COMMIT,
                                               "siblings": siblings}).encode(), body,
                              "application/json")
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
            folder = self.repos.get(repo)
            if folder is None:
                return self._missing(req, "RepoNotFound")
            file = folder / filename
            if not file.is_file():
                return self._missing(req, "EntryNotFound")
            data = file.read_bytes()
            headers = {"X-Repo-Commit": COMMIT,
                       "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
            return self._send(req, data, body, "application/octet-stream", headers)
        self._missing(req, "RepoNotFound")

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, data: bytes, body: bool, kind: str,
              headers: dict[str, str] | None = None) -> None:
        req.send_response(200)
        req.send_header("Content-Type", kind)
        req.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        if body:
            req.wfile.write(data)

    @staticmethod
    def _missing(req: BaseHTTPRequestHandler, code: str) -> None:
        message = json.dumps({"error": code}).encode()
        req.send_response(404)
        req.send_header("X-Error-Code", code)
        req.send_header("X-Error-Message", code)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(message)))
        req.end_headers()
        req.wfile.write(message)
