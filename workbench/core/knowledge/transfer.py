"""Files in and out of the store: import a file into a set (all or nothing), export a set,
and turn a document into reviewed fact proposals.

Parsing lives in `io` (pure, no database); this module adds the store and the summary a user
reads after an upload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workbench.core.errors import KnowledgeError
from workbench.core.knowledge import documents, io
from workbench.core.knowledge.sets import add_facts, list_facts
from workbench.core.store import Store

DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown")


@dataclass
class ImportSummary:
    filename: str
    added: int  # facts
    skipped: list[tuple[int, str]] = field(default_factory=list)
    rows: int = 0  # data rows read; more than `added` when rows were grouped into facts
    questions: list[int] = field(default_factory=list)  # questions per added fact

    def grouping(self) -> str:
        """ "180 rows → 90 facts, 2 questions each", or '' when every row is its own fact."""
        if not self.rows or self.rows == self.added:
            return ""
        facts = f"{self.added} fact{'s' * (self.added != 1)}"
        low, high = min(self.questions, default=1), max(self.questions, default=1)
        each = f"{low} questions each" if low == high else f"{low} to {high} questions each"
        return f"{self.rows} rows → {facts}, {each}"

    def message(self) -> str:
        grouped = self.grouping()
        text = (f"{self.filename}: imported {grouped}" if grouped else
                f"{self.filename}: imported {self.added} fact{'s' * (self.added != 1)}")
        if self.skipped:
            reasons = "; ".join(f"line {line}: {why}" for line, why in self.skipped[:5])
            more = f" (+{len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
            text += f", skipped {len(self.skipped)} ({reasons}{more})"
        return text + "."


def is_document(filename: str) -> bool:
    return Path(filename).suffix.lower() in DOCUMENT_SUFFIXES


def read_upload(path: str | Path) -> bytes:
    """Read an uploaded file, refusing anything over the size limit before reading it all."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > io.MAX_FILE_BYTES:
            raise KnowledgeError(f"{path.name}: {size / 2**20:.1f} MB is over the "
                                 f"{io.MAX_FILE_BYTES // 2**20} MB upload limit")
        return path.read_bytes()
    except OSError as err:
        raise KnowledgeError(f"{path.name}: cannot read the file ({err.strerror or err})") from None
    except ValueError:  # a NUL or an unencodable character in the path: no file has that name
        raise KnowledgeError(f"{path.name!r} is not a usable file name") from None


def import_bytes(store: Store, sid: int, data: bytes, filename: str,
                 mapping: dict[str, str] | None = None, *,
                 separate_rows: bool = False) -> ImportSummary:
    """Parse a facts file and add every fact, or nothing if any row is bad. Rows asking the
    same fact (see `io.group_rows`) become one fact with several questions, unless
    `separate_rows`."""
    name = Path(filename).name
    if is_document(name):
        raise KnowledgeError(f"{name} is a document: propose facts from it first "
                             "(Knowledge tab: documents, or `workbench knowledge propose`)")
    parsed = io.parse_file(data, name, mapping)
    if not parsed.facts:
        raise KnowledgeError(f"{name}: no facts found")
    result = parsed if separate_rows else io.group_rows(parsed, name)
    add_facts(store, sid, result.facts, origin=name, lines=result.lines or None)
    return ImportSummary(name, len(result.facts), list(result.skipped), rows=len(parsed.facts),
                         questions=[len(f.questions) for f in result.facts])


def import_path(store: Store, sid: int, path: str | Path,
                mapping: dict[str, str] | None = None, *,
                separate_rows: bool = False) -> ImportSummary:
    return import_bytes(store, sid, read_upload(path), Path(path).name, mapping,
                        separate_rows=separate_rows)


def export_set(store: Store, sid: int, fmt: str) -> str:
    facts = list_facts(store, sid)
    if fmt == "jsonl":
        return io.export_jsonl(facts)
    if fmt == "csv":
        return io.export_csv(facts)
    raise KnowledgeError(f"export format must be jsonl or csv, got {fmt!r}")


def propose_from_document(data: bytes, filename: str,
                          ask: Callable[[list[str]], list[str]] | None = None,
                          max_per_chunk: int = 5) -> list[documents.Proposal]:
    """QA proposals for a document, to be reviewed before they join a set."""
    text = io.parse_document(data, Path(filename).name)
    return documents.propose_facts(text, ask, max_per_chunk=max_per_chunk)


def accept_proposals(store: Store, sid: int, proposals: Sequence[documents.Proposal],
                     origin: str = "document") -> int:
    return len(add_facts(store, sid, [p.to_draft() for p in proposals], origin=origin))
