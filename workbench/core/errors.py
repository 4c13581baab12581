"""The one exception type the user is meant to read.

Every failure caused by the user's input or environment (a bad config value, an unknown model
id, a missing file) is raised as `WorkbenchError` with a one-line message that names the problem
and the fix. The CLI and the training worker print it without a traceback
(`exit_status`); the UI shows it as a notice.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def _one_line(text: str) -> str:
    """One line that any output can carry. Messages quote the user's text, which may hold an
    unpaired surrogate (a JSON "\\ud800"): it is shown escaped, since a terminal or the
    browser's JSON cannot take it raw."""
    return " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")


def quoted(text: str, limit: int = 60) -> str:
    """The user's text as a message quotes it: its start only, since a field may be 20,000
    characters and a message is one short line."""
    return repr(text if len(text) <= limit else text[:limit - 1] + "…")


class WorkbenchError(Exception):
    """A problem the user can fix; `str(err)` is a complete one-line explanation."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = _one_line(message)  # always one line, whatever was passed in
        self.hint = _one_line(hint) if hint else None
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(WorkbenchError):
    """A run config (YAML or a field value) that cannot be used."""


class ModelLoadError(WorkbenchError):
    """A model or tokenizer that cannot be found or loaded as asked."""


class StoreError(WorkbenchError):
    """The workspace database cannot be opened or migrated."""


class KnowledgeError(WorkbenchError):
    """Bad knowledge input: a file, a row or a field that cannot be used. Importers name the
    file and line, e.g. ``facts.csv line 4: no answer``."""


EXIT_USER_ERROR = 2  # the exit status of a process stopped by a WorkbenchError


def exit_status(command: Callable[[], int], *, debug: bool = False) -> int:
    """Run the body of a process's entry point (the CLI, a training worker) and turn how it
    ended into an exit status: a `WorkbenchError` is one line on stderr and status 2, never a
    traceback; anything unexpected is one line too (a bug: status 1) unless `debug` asks for
    the traceback. Shared so that a worker's log reads like the command line."""
    try:
        return int(command() or 0)
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: say so in one line unless asked for details
        if debug:
            raise
        print(f"error: unexpected {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
              " (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
