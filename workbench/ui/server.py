"""Start the web app safely: local by default, password required for anything exposed."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from workbench.core.errors import WorkbenchError
from workbench.core.workspace import resolve_workspace

PASSWORD_ENV = "WORKBENCH_PASSWORD"
USERNAME = "workbench"
# Uploads are facts, CSVs and documents; anything larger is a mistake or an attack.
MAX_UPLOAD = "50mb"


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    password: str | None = None
    workspace: str | None = None
    open_browser: bool = False


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve anywhere


def check_exposure(host: str, share: bool, password: str | None) -> None:
    """Refuse to serve beyond this machine without a password: the app can read and train
    on local files and models, so an open port is an open door."""
    if password:
        return
    if share:
        raise WorkbenchError(
            "a public share link needs a password",
            hint=f"pass --password or set ${PASSWORD_ENV}",
        )
    if not is_loopback(host):
        raise WorkbenchError(
            f"listening on {host} exposes the app beyond this machine and needs a password",
            hint=f"pass --password or set ${PASSWORD_ENV}, or use --host 127.0.0.1",
        )


def serve(opts: ServeOptions) -> None:
    password = opts.password or os.environ.get(PASSWORD_ENV) or None
    check_exposure(opts.host, opts.share, password)
    if not 1 <= opts.port <= 65535:
        raise WorkbenchError(f"port must be from 1 to 65535, got {opts.port}")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # local app: no phoning home

    from workbench.core.models import preload_libraries
    from workbench.core.train import standby
    from workbench.demo.knowledge import seed_workspace
    from workbench.ui.app import ASSETS, CSS_PATH, build_app
    from workbench.ui.context import make_context

    workspace = resolve_workspace(opts.workspace)
    preload_libraries()
    ctx = make_context(workspace)
    seeded = seed_workspace(ctx.store)
    app = build_app(ctx)
    print(f"Knowledge Workbench: {ctx.device.summary()}; workspace {workspace.root}", flush=True)
    if seeded:
        print(seeded, flush=True)
    # A spare training worker with its imports done: Train starts seconds sooner. Started a
    # little later so its imports do not slow the first page load.
    standby.enable(delay=5.0)
    try:
        app.queue().launch(
            server_name=opts.host,
            server_port=opts.port,
            share=opts.share,
            auth=(USERNAME, password) if password else None,
            inbrowser=opts.open_browser,
            max_file_size=MAX_UPLOAD,
            # The workspace holds the database and run folders: never served as files.
            blocked_paths=[str(workspace.root)],
            allowed_paths=[str(ASSETS)],
            css_paths=[CSS_PATH] if CSS_PATH.exists() else None,
            favicon_path=str(ASSETS / "logo.svg") if (ASSETS / "logo.svg").exists() else None,
            footer_links=[],
            show_error=True,
        )
    except OSError as err:
        raise WorkbenchError(
            f"cannot listen on {opts.host}:{opts.port}: {str(err).splitlines()[0]}",
            hint="another program may use the port; pass --port with a free one",
        ) from None
