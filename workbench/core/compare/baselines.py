"""The no-training alternatives, as context in the system prompt.

- **In context**: every fact of the set in the system prompt (as many as fit in the model's
  context; the pane says how many did).
- **Retrieval**: the top-k facts most similar to the question, by BM25 over the facts' words
  (a `Retriever` also takes any embedding function instead, e.g. to try one in a test).

Both use the base model, so they answer in the same batched generation as the base pane.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.core.knowledge.types import Fact
from workbench.core.scoring import normalize

HEADER = "Use these facts to answer. If they do not contain the answer, say you do not know.\n"
Embedder = Callable[[list[str]], list[list[float]]]


def fact_line(fact: Fact) -> str:
    return f"- {fact.question} {fact.answer}"


def context_prompt(facts: Sequence[Fact], system: str = "") -> str:
    lines = [system.strip()] if system.strip() else []
    return "\n".join([*lines, HEADER + "\n".join(fact_line(f) for f in facts)])


def fitting_facts(facts: Sequence[Fact], tokenizer: Any, budget: int) -> list[Fact]:
    """The longest prefix of `facts` whose context prompt stays within `budget` tokens."""
    used = len(tokenizer(HEADER, add_special_tokens=False)["input_ids"])
    kept: list[Fact] = []
    for fact in facts:
        used += len(tokenizer(fact_line(fact) + "\n", add_special_tokens=False)["input_ids"])
        if used > budget:
            break
        kept.append(fact)
    return kept


def context_budget(model: Any, tokenizer: Any, *, reserve: int = 160) -> int:
    """Tokens the system prompt may take: the model's context minus room for the question
    and the answer."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) \
        or getattr(tokenizer, "model_max_length", 2048)
    return max(0, min(int(limit), 32768) - reserve)


def _words(text: str) -> list[str]:
    return normalize(text).split()


class BM25:
    """Okapi BM25 (k1=1.5, b=0.75) over short documents: enough for fact lookup."""

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(_words(d)) for d in documents]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / len(self.docs) if self.docs else 0.0
        df = Counter(w for d in self.docs for w in d)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        out = []
        for doc, length in zip(self.docs, self.lengths):
            s = 0.0
            for w in set(_words(query)):
                tf = doc.get(w, 0)
                if tf:
                    norm = self.k1 * (1 - self.b + self.b * length / (self.avg or 1))
                    s += self.idf[w] * tf * (self.k1 + 1) / (tf + norm)
            out.append(s)
        return out


@dataclass
class Retriever:
    facts: list[Fact]
    embed: Embedder | None = None

    def __post_init__(self) -> None:
        texts = [f"{f.question} {f.answer}" for f in self.facts]
        self.kind = "embedding" if self.embed else "BM25"
        self._bm25 = None if self.embed else BM25(texts)
        self._vectors = self.embed(texts) if self.embed and texts else []

    def top(self, question: str, k: int = 3) -> list[Fact]:
        if not self.facts:
            return []
        if self.embed:
            q = self.embed([question])[0]
            scores = [sum(a * b for a, b in zip(q, v)) for v in self._vectors]
        else:
            assert self._bm25 is not None
            scores = self._bm25.scores(question)
        order = sorted(range(len(self.facts)), key=lambda i: (-scores[i], i))
        return [self.facts[i] for i in order[:k]]


@dataclass
class Baselines:
    """System prompts of the two baseline panes for one knowledge set and model."""

    in_context: list[Fact]  # the facts that fit
    total: int
    retriever: Retriever
    k: int = 3

    @classmethod
    def build(cls, facts: Sequence[Fact], model: Any, tokenizer: Any, *, k: int = 3,
              embed: Embedder | None = None) -> Baselines:
        fit = fitting_facts(facts, tokenizer, context_budget(model, tokenizer))
        return cls(fit, len(facts), Retriever(list(facts), embed), k)

    def system(self, kind: str, question: str, system: str = "") -> str:
        if kind == "in_context":
            return context_prompt(self.in_context, system)
        if kind == "retrieval":
            return context_prompt(self.retriever.top(question, self.k), system)
        return system

    def describe(self, kind: str) -> str:
        if kind == "in_context":
            return f"{len(self.in_context)} of {self.total} facts in the prompt"
        return f"top {self.k} of {self.total} facts by {self.retriever.kind}"
