"""Turn the core's user errors into Gradio notices instead of tracebacks."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import gradio as gr

from workbench.core.errors import WorkbenchError

F = TypeVar("F", bound=Callable[..., Any])


def shows_errors(fn: F) -> F:
    """A callback wrapper: a WorkbenchError becomes a gr.Error toast (inputs stay as they
    were, nothing is lost); anything else is a bug and keeps its traceback in the log.
    A generator (a streamed answer) is wrapped as a generator, so Gradio still streams it and
    an error raised mid-stream is caught too."""

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except WorkbenchError as err:
                raise gr.Error(str(err), print_exception=False) from None

        return streaming  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as err:
            raise gr.Error(str(err), print_exception=False) from None

    return wrapper  # type: ignore[return-value]
