"""`workbench serve` (and `python launch.py`): start the web app."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_serve(args: argparse.Namespace) -> int:
    from workbench.ui.server import ServeOptions, serve  # gradio only for this command

    serve(ServeOptions(host=args.host, port=args.port, share=args.share,
                       password=args.password, workspace=args.workspace,
                       open_browser=args.open_browser))
    return 0


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `workbench serve`, which launch.py passes through."""
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but localhost needs --password "
                   "[default: 127.0.0.1]")
    p.add_argument("--port", type=int, default=7860, help="port [default: 7860]")
    p.add_argument("--share", action="store_true",
                   help="also create a public Gradio share link (needs --password)")
    p.add_argument("--password", default=None,
                   help="password for user 'workbench' (or set $WORKBENCH_PASSWORD); required "
                   "when listening beyond localhost or sharing")
    p.add_argument("--open-browser", action="store_true", help="open the page in a browser")
    # SUPPRESS: given here it wins, absent it leaves the global --workspace alone.
    p.add_argument("--workspace", default=argparse.SUPPRESS,
                   help="workspace folder [default: $WORKBENCH_HOME or ~/knowledge-workbench]")


def add_serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="start the web app (same as python launch.py)")
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)
