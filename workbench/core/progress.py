"""The progress callback long core operations report to: (fraction done 0..1, message).
The CLI prints it, the UI forwards it to gr.Progress."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


def no_progress(_fraction: float, _message: str) -> None:
    return None
