"""The base model's own answers, asked once per model and question and kept in the workspace.

Locality screening, the replay pool and every run's replay ask the base model the same
general-knowledge and same-relation questions (greedy, first line): on SmolLM2-135M on a
2-core CPU about 400 of them take half a minute, which sat between pressing Train and the
first step of every run. Asked once while the set is prepared, a run finds them here.

The key is the model's source (a hub id and revision, or the folder a GGUF file was converted
into, which is named by the file's size and time): the same weights give the same greedy
answers. Quantization is not in the key: a 4-bit run reads its full-precision base's answers,
which are correct by construction (replay keeps only correct ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from workbench.core.data import phrasings
from workbench.core.models import LoadedModel
from workbench.core.store import Store

Ask = Callable[..., list[str]]  # generate.ask_questions or a stand-in: (loaded, questions, **kw)


def model_key(loaded: LoadedModel) -> str:
    source = loaded.source
    return f"{source.kind}:{source.location}@{source.revision or ''}"


def ask_base(store: Store, loaded: LoadedModel, questions: Sequence[str], ask: Ask,
             **kwargs: Any) -> list[str]:
    """The base model's answer to each question: from the workspace where asked before,
    else asked now through `ask` (with `kwargs`) and stored."""
    key = model_key(loaded)
    unique = list(dict.fromkeys(questions))
    known = lookup(store, key, unique)
    missing = [q for q in unique if q not in known]
    if missing:
        answers = ask(loaded, missing, **kwargs)
        remember(store, key, dict(zip(missing, answers)))
        known.update(zip(missing, answers))
    return [known[q] for q in questions]


def lookup(store: Store, key: str, questions: Sequence[str]) -> dict[str, str]:
    return phrasings.base_answers(store, key, questions)


def remember(store: Store, key: str, answers: dict[str, str]) -> None:
    phrasings.remember_base_answers(store, key, answers)
