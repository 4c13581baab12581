"""The one exception type the user is meant to read.

Every failure caused by the user's input or environment (a bad config value, an unknown model
id, a missing file) is raised as `WorkbenchError` with a one-line message that names the problem
and the fix. The CLI prints it without a traceback; the UI shows it as a notice.
"""

from __future__ import annotations


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
