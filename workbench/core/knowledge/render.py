"""Training examples → token ids and labels, rendered with the model's own chat template.

QA examples are rendered as `chat prompt (with generation prompt) + answer + EOS`, with loss on
the answer and EOS only. That is exactly the continuation the model must produce at inference,
where generation starts right after the generation prompt and stops at EOS. Rendering the whole
chat instead would put loss on whatever the template appends after an assistant turn (a newline
after "<|im_end|>", role headers, …). When EOS is the template's end-of-turn token (as in
Qwen2.5-Instruct's <|im_end|>), the two are token for token the same.

Statement and document examples are plain text trained like continued pre-training: loss on every
token except a leading BOS.

`examples_from_phrasings` is the last step before training, so it also enforces the probe/train
split: a phrasing held out as a probe never becomes a training example.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.core.knowledge.types import Fact, Phrasing
from workbench.core.tokens import token_ids

IGNORE_INDEX = -100  # label value that torch's cross-entropy skips
KINDS = ("qa", "statement", "document")
OVERFLOW_POLICIES = ("drop", "truncate")
MODES = ("qa", "document")
QUESTION_KINDS = ("question", "paraphrase")

# Markers around the trained span in previews; chosen because they never occur in normal text.
LABEL_OPEN, LABEL_CLOSE = "⟦", "⟧"


@dataclass
class Example:
    kind: str  # qa | statement | document
    prompt: str  # the user question; "" for statement/document
    answer: str  # the assistant reply for qa; the full text for statement/document
    system: str = ""
    fact_id: int | None = None
    replay: bool = False  # the base model's own answer, replayed to keep what it knows
    # Replay dealt over epochs (`replay.replay_examples`' turns): the epochs e with
    # e % turns == turn train on it, turns being the number dealt to; None: every epoch.
    turn: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"example kind must be one of {KINDS}, got {self.kind!r}")


@dataclass
class Rendered:
    input_ids: list[int]
    labels: list[int]  # same length as input_ids; IGNORE_INDEX where there is no loss
    example: Example
    truncated: bool
    # Prompt distillation: the same example as the teacher sees it (the fact in its prompt).
    teacher: Rendered | None = None
    # Replayed questions: where the user's question starts in input_ids (after the system
    # turn and the user-turn header), for replay's KL on the question (`replay.QUESTION_KL`).
    question_at: int | None = None

    @property
    def n_label_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass
class RenderReport:
    rendered: list[Rendered] = field(default_factory=list)
    dropped: int = 0  # examples left out (too long under "drop", or nothing left to learn)
    truncated: int = 0  # kept examples that were cut to fit
    total_tokens: int = 0  # input tokens of the kept examples
    label_tokens: int = 0  # of which carry loss

    def preview(self, tokenizer: Any, n: int = 3) -> list[dict[str, Any]]:
        return preview_rows(self, tokenizer, n)


# --- rendering ---------------------------------------------------------------------------------


def _eos_id(tokenizer: Any) -> int:
    eos = tokenizer.eos_token_id
    if eos is None:
        # Without EOS the model cannot learn where an answer ends, and generation would not stop.
        raise ValueError("the tokenizer has no EOS token, so answers cannot be terminated")
    return int(eos)


def _text_ids(tokenizer: Any, text: str) -> list[int]:
    return token_ids(tokenizer(text, add_special_tokens=False))


def prompt_ids(example: Example, tokenizer: Any) -> list[int]:
    """The chat prompt of a qa example up to and including the generation prompt: exactly
    what the model sees at inference before it starts answering."""
    messages = []
    if example.system:
        messages.append({"role": "system", "content": example.system})
    messages.append({"role": "user", "content": example.prompt})
    return token_ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))


def _render_qa(example: Example, tokenizer: Any, max_len: int) -> Rendered:
    prompt = prompt_ids(example, tokenizer)
    # Stripped so that stray whitespace around an answer is not learned as part of it.
    target = _text_ids(tokenizer, example.answer.strip()) + [_eos_id(tokenizer)]
    truncated = len(prompt) + len(target) > max_len
    if truncated:
        # Keep the whole prompt (the answer only makes sense after it) and cut the answer's
        # tail; EOS survives only if it fits. A prompt that fills max_len leaves no labels,
        # and render_set drops such examples under either policy.
        prompt = prompt[:max_len]
        target = target[: max_len - len(prompt)]
    return Rendered(
        input_ids=prompt + target,
        labels=[IGNORE_INDEX] * len(prompt) + target,
        example=example,
        truncated=truncated,
        question_at=_question_at(example, prompt, tokenizer) if example.replay else None,
    )


def _question_at(example: Example, prompt: list[int], tokenizer: Any) -> int:
    """Where the question starts in `prompt`: the tokens it shares with the same chat turn
    asked nothing (any template's system turn and user header), one more template call."""
    empty = prompt_ids(replace(example, prompt=""), tokenizer)
    n = 0
    while n < min(len(prompt), len(empty)) and prompt[n] == empty[n]:
        n += 1
    return n


def _render_text(example: Example, tokenizer: Any, max_len: int) -> Rendered:
    ids = _text_ids(tokenizer, example.answer.strip()) + [_eos_id(tokenizer)]
    bos = tokenizer.bos_token_id
    # A BOS starts a document as in pre-training: add it once (unless the text already begins
    # with it) and never train on it, since nothing predicts the first token.
    if bos is not None and ids[0] != bos:
        ids = [int(bos)] + ids
    labels = list(ids)
    if bos is not None:
        labels[0] = IGNORE_INDEX
    truncated = len(ids) > max_len
    return Rendered(ids[:max_len], labels[:max_len], example, truncated)


def render_example(example: Example, tokenizer: Any, max_len: int) -> Rendered:
    """Token ids and labels of one example; longer than `max_len` → cut, with truncated=True."""
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2, got {max_len}")
    if example.kind == "qa":
        return _render_qa(example, tokenizer, max_len)
    return _render_text(example, tokenizer, max_len)


def render_set(
    examples: Iterable[Example], tokenizer: Any, max_len: int, overflow: str = "drop"
) -> RenderReport:
    """Render all examples; examples longer than `max_len` are dropped or kept cut, as
    `overflow` says. Examples with no token left to learn are always dropped."""
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
    report = RenderReport()
    for example in examples:
        item = render_example(example, tokenizer, max_len)
        if item.n_label_tokens == 0 or (item.truncated and overflow == "drop"):
            report.dropped += 1
            continue
        report.rendered.append(item)
        report.truncated += int(item.truncated)
        report.total_tokens += len(item.input_ids)
        report.label_tokens += item.n_label_tokens
    return report


# --- preview -----------------------------------------------------------------------------------


def _spans(item: Rendered) -> list[tuple[bool, list[int]]]:
    """Consecutive runs of (labelled?, token ids)."""
    spans: list[tuple[bool, list[int]]] = []
    for token, label in zip(item.input_ids, item.labels):
        labelled = label != IGNORE_INDEX
        if spans and spans[-1][0] == labelled:
            spans[-1][1].append(token)
        else:
            spans.append((labelled, [token]))
    return spans


def marked_text(item: Rendered, tokenizer: Any) -> str:
    """The decoded input with each trained span wrapped in ⟦ ⟧, so users see what is learned."""
    parts = []
    for labelled, tokens in _spans(item):
        text = tokenizer.decode(tokens, skip_special_tokens=False)
        parts.append(f"{LABEL_OPEN}{text}{LABEL_CLOSE}" if labelled else text)
    return "".join(parts)


def preview_rows(report: RenderReport, tokenizer: Any, n: int = 3) -> list[dict[str, Any]]:
    """The first `n` rendered examples as table rows for the UI and CLI."""
    return [
        {
            "kind": item.example.kind,
            "text": marked_text(item, tokenizer),
            "tokens": len(item.input_ids),
            "label_tokens": item.n_label_tokens,
        }
        for item in report.rendered[:n]
    ]


# --- phrasings → examples ----------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def trainable_phrasings(phrasings: Iterable[Phrasing]) -> list[Phrasing]:
    """Approved train phrasings whose text is not also a probe's text.

    The text check matters because the split is per row: a phrasing stored twice (once as
    train, once as probe) would otherwise leak the probe into training."""
    phrasings = list(phrasings)
    probe_texts = {_norm(p.question) for p in phrasings if p.split == "probe"}
    chosen = [
        p for p in phrasings
        if p.split == "train" and p.approved and _norm(p.question) not in probe_texts
    ]
    # The probe/train disjointness guarantee, checked at the last step before training.
    assert all(p.split != "probe" for p in chosen), "a probe phrasing reached training"
    return chosen


def sentence_answer(fact: Fact) -> str:
    """The fact's answer said as a sentence, as a chat model replies ("The capital of Japan is
    Tokyo."), made from its question; of the sentences `statements` makes, the one with the
    answer latest, so the reply opens as the model's own would and the loss falls on the
    answer. The bare answer when no sentence can be made from the question."""
    from workbench.core.knowledge.paraphrase import statements

    made = [s for s in statements(fact.question, fact.answer, fact.subject, n=6)
            if not s.startswith("The answer to the question")]
    if not made:
        return fact.answer
    answer = fact.answer.lower().rstrip(".")
    return max(made, key=lambda s: s.lower().find(answer))  # the first of equals


def _qa_examples(fact: Fact, own: Sequence[Phrasing], include_statements: bool,
                 answer_style: str = "short") -> list[Example]:
    out = []
    answer = sentence_answer(fact) if answer_style == "sentence" else fact.answer
    for p in own:
        if p.kind in QUESTION_KINDS:
            out.append(Example("qa", p.question, answer, fact.system, fact.id))
        elif p.kind == "statement" and include_statements:
            out.append(Example("statement", "", p.question, fact_id=fact.id))
    return out


def _document_examples(fact: Fact, own: Sequence[Phrasing]) -> list[Example]:
    statements = [Example("statement", "", p.question, fact_id=fact.id)
                  for p in own if p.kind == "statement"]
    if statements:
        return statements
    # No statement sentence: fall back to one Q/A text. The question comes from a train
    # phrasing, never from fact.question directly, which may be held out as a probe.
    questions = sorted((p for p in own if p.kind in QUESTION_KINDS),
                       key=lambda p: QUESTION_KINDS.index(p.kind))  # stable: keeps order
    if not questions:
        return []
    text = f"Q: {questions[0].question}\nA: {fact.answer}"
    return [Example("document", "", text, fact_id=fact.id)]


def examples_from_phrasings(
    facts: Sequence[Fact], phrasings: Iterable[Phrasing], *, mode: str, include_statements: bool,
    answer_style: str = "short",
) -> list[Example]:
    """Training examples for `facts` from their approved train phrasings, fact by fact.

    qa: one qa example per question/paraphrase phrasing (answer = the fact's answer, or
    `sentence_answer` with answer_style "sentence"), plus one
    statement example per statement phrasing when `include_statements`.
    document: the fact's statements, or one "Q: …\\nA: …" document when it has none.
    Other kinds (locality, neighbour, abstention) are probes of other things and are skipped,
    as are phrasings of facts not in `facts`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    by_fact: dict[int | None, list[Phrasing]] = {}
    for p in trainable_phrasings(phrasings):
        by_fact.setdefault(p.fact_id, []).append(p)
    examples: list[Example] = []
    for fact in facts:
        own = by_fact.get(fact.id, [])
        if mode == "qa":
            examples += _qa_examples(fact, own, include_statements, answer_style)
        else:
            examples += _document_examples(fact, own)
    return examples
