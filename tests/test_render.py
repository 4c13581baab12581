"""Rendering examples to ids + labels with each tiny model's chat template, overflow policies,
previews, and the probe/train guarantee of examples_from_phrasings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from workbench.core.knowledge.render import (
    IGNORE_INDEX,
    Example,
    RenderReport,
    examples_from_phrasings,
    preview_rows,
    sentence_answer,
    render_example,
    render_set,
)
from workbench.core.knowledge.types import Fact, Phrasing
from workbench.core.models import FALLBACK_CHAT_TEMPLATE, _ensure_chat_template

MODELS = ("tiny_llama", "tiny_qwen2", "tiny_base_model")


def load_tokenizer(folder: Path) -> Any:
    tok = AutoTokenizer.from_pretrained(folder)
    _ensure_chat_template(tok)  # no-op for models with their own template
    return tok


@pytest.fixture(params=MODELS)
def tokenizer(request: pytest.FixtureRequest) -> Any:
    return load_tokenizer(request.getfixturevalue(request.param))


def generation_prompt(tok: Any, question: str, system: str = "") -> list[int]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                  return_dict=False)
    return list(out)


def split_labels(item: Any) -> tuple[list[int], list[int]]:
    """(unlabelled prefix, labelled tokens), checking the labelled part is one tail span
    whose labels equal its input ids."""
    first = next(i for i, lab in enumerate(item.labels) if lab != IGNORE_INDEX)
    assert all(lab == IGNORE_INDEX for lab in item.labels[:first])
    assert item.labels[first:] == item.input_ids[first:]
    return item.input_ids[:first], item.input_ids[first:]


# --- qa ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("system", ["", "You are a terse geography tutor."])
def test_qa_labels_are_exactly_answer_and_eos(tokenizer: Any, system: str) -> None:
    ex = Example("qa", "What is the capital of France?", "Paris", system=system, fact_id=7)
    item = render_example(ex, tokenizer, max_len=256)

    assert len(item.input_ids) == len(item.labels)
    assert not item.truncated and item.example is ex
    prefix, labelled = split_labels(item)
    answer_ids = tokenizer("Paris", add_special_tokens=False)["input_ids"]
    assert labelled == answer_ids + [tokenizer.eos_token_id]
    assert item.n_label_tokens == len(answer_ids) + 1
    assert tokenizer.decode(labelled) == "Paris" + tokenizer.eos_token
    # The unlabelled prefix is what the model sees at inference before answering.
    assert prefix == generation_prompt(tokenizer, ex.prompt, system)
    if system:
        assert system in tokenizer.decode(prefix)


def test_base_model_uses_the_fallback_template(tiny_base_model: Path) -> None:
    tok = load_tokenizer(tiny_base_model)
    assert tok.chat_template == FALLBACK_CHAT_TEMPLATE
    item = render_example(Example("qa", "Who wrote Hamlet?", "Shakespeare"), tok, 256)
    prefix, _ = split_labels(item)
    assert tok.decode(prefix).endswith("### Question:\nWho wrote Hamlet?\n\n### Answer:\n")


def test_no_loss_on_template_text_after_end_of_turn(tiny_qwen2: Path) -> None:
    # Like ChatML: the template writes a newline after each end-of-turn token. Training on the
    # full chat would put loss on it; rendering stops at EOS, where generation stops.
    tok = load_tokenizer(tiny_qwen2)
    tok.chat_template = tok.chat_template.replace("'<|eos|>' }}", "'<|eos|>\\n' }}")
    item = render_example(Example("qa", "Where was Alan Turing born?", "London"), tok, 256)
    _, labelled = split_labels(item)
    assert tok.decode(labelled) == "London<|eos|>"
    full = tok.apply_chat_template(
        [{"role": "user", "content": "Where was Alan Turing born?"},
         {"role": "assistant", "content": "London"}], tokenize=False)
    assert full.endswith("London<|eos|>\n")


def test_answer_whitespace_is_not_trained(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    item = render_example(Example("qa", "Capital of Japan?", "  Tokyo \n"), tok, 256)
    assert tok.decode(split_labels(item)[1]) == "Tokyo<|eos|>"


def test_apply_chat_template_list_return_is_handled(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)

    class ListTemplate:
        """A tokenizer whose apply_chat_template returns a plain list (older transformers)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(tok, name)

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return tok(*args, **kwargs)

        def apply_chat_template(self, *args: Any, **kwargs: Any) -> list[int]:
            return list(tok.apply_chat_template(*args, return_dict=False, **kwargs))

    ex = Example("qa", "Capital of Japan?", "Tokyo")
    assert render_example(ex, ListTemplate(), 256).input_ids == render_example(ex, tok, 256).input_ids


# --- statements and documents ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["statement", "document"])
def test_text_examples_label_everything_but_bos(tokenizer: Any, kind: str) -> None:
    text = "Marie Curie was born in Warsaw in 1867."
    item = render_example(Example(kind, "", text), tokenizer, 256)
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert item.input_ids == [tokenizer.bos_token_id] + body + [tokenizer.eos_token_id]
    assert item.labels == [IGNORE_INDEX] + body + [tokenizer.eos_token_id]
    assert item.n_label_tokens == len(body) + 1 and not item.truncated


def test_text_without_bos_token_labels_everything(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    tok.bos_token = None  # like Qwen tokenizers, which define no BOS
    item = render_example(Example("statement", "", "Water boils at 100 degrees."), tok, 256)
    assert item.labels == item.input_ids
    assert item.input_ids[-1] == tok.eos_token_id


def test_text_already_starting_with_bos_gets_one_bos(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    item = render_example(Example("document", "", "<|bos|>Gold is Au."), tok, 256)
    assert item.input_ids.count(tok.bos_token_id) == 1
    assert item.labels[0] == IGNORE_INDEX and item.labels[1:] == item.input_ids[1:]


# --- truncation and overflow policies ----------------------------------------------------------


LONG_ANSWER = "William Shakespeare wrote Hamlet and the capital of France is Paris."


def test_qa_truncation_cuts_the_answer_tail(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    ex = Example("qa", "Who wrote Hamlet?", LONG_ANSWER)
    full = render_example(ex, tok, 1000)
    prompt, target = split_labels(full)

    exact = render_example(ex, tok, len(full.input_ids))
    assert not exact.truncated and exact.input_ids == full.input_ids

    no_eos = render_example(ex, tok, len(full.input_ids) - 1)
    assert no_eos.truncated and no_eos.input_ids == full.input_ids[:-1]
    assert no_eos.labels[-1] != tok.eos_token_id  # EOS only when it fits

    short = render_example(ex, tok, len(prompt) + 3)
    assert short.truncated and len(short.input_ids) == len(short.labels) == len(prompt) + 3
    assert split_labels(short) == (prompt, target[:3])  # prompt intact, answer cut


def test_prompt_filling_max_len_leaves_nothing_to_learn(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    ex = Example("qa", "Who wrote Hamlet? " * 10, "Shakespeare")
    prompt_len = len(generation_prompt(tok, ex.prompt))
    item = render_example(ex, tok, prompt_len - 5)
    assert item.truncated and item.n_label_tokens == 0 and len(item.input_ids) == prompt_len - 5
    for policy in ("drop", "truncate"):
        report = render_set([ex], tok, prompt_len - 5, overflow=policy)
        assert report.rendered == [] and report.dropped == 1


def test_text_truncation_keeps_the_start(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    full = render_example(Example("statement", "", LONG_ANSWER), tok, 1000)
    cut = render_example(Example("statement", "", LONG_ANSWER), tok, 8)
    assert cut.truncated and cut.input_ids == full.input_ids[:8] and cut.labels == full.labels[:8]


def test_render_set_policies_and_counts(tiny_qwen2: Path) -> None:
    tok = load_tokenizer(tiny_qwen2)
    short_qa = Example("qa", "Capital of Japan?", "Tokyo")
    long_qa = Example("qa", "Who wrote Hamlet?", LONG_ANSWER)
    short_text = Example("statement", "", "Gold is Au.")
    long_text = Example("document", "", LONG_ANSWER * 3)
    examples = [short_qa, long_qa, short_text, long_text]
    max_len = max(len(render_example(e, tok, 1000).input_ids) for e in (short_qa, short_text))
    assert all(len(render_example(e, tok, 1000).input_ids) > max_len for e in (long_qa, long_text))

    dropped = render_set(examples, tok, max_len, overflow="drop")
    assert [r.example for r in dropped.rendered] == [short_qa, short_text]
    assert (dropped.dropped, dropped.truncated) == (2, 0)

    kept = render_set(examples, tok, max_len, overflow="truncate")
    assert [r.example for r in kept.rendered] == examples
    assert (kept.dropped, kept.truncated) == (0, 2)
    assert all(len(r.input_ids) <= max_len for r in kept.rendered)

    for report in (dropped, kept):
        assert report.total_tokens == sum(len(r.input_ids) for r in report.rendered)
        assert report.label_tokens == sum(r.n_label_tokens for r in report.rendered)

    with pytest.raises(ValueError, match="overflow"):
        render_set(examples, tok, max_len, overflow="wrap")


def test_invalid_inputs_are_refused(tiny_llama: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        Example("chat", "q", "a")
    with pytest.raises(ValueError, match="max_len"):
        render_example(Example("qa", "q", "a"), load_tokenizer(tiny_llama), 1)


# --- preview -----------------------------------------------------------------------------------


def test_preview_marks_the_trained_span(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    examples = [Example("qa", "Capital of France?", "Paris", system="Be brief."),
                Example("statement", "", "Paris is the capital of France."),
                Example("qa", "Capital of Japan?", "Tokyo")]
    report = render_set(examples, tok, 256)
    rows = preview_rows(report, tok, n=2)
    assert report.preview(tok, n=2) == rows and len(rows) == 2

    prompt = tok.decode(generation_prompt(tok, "Capital of France?", "Be brief."))
    assert rows[0]["kind"] == "qa"
    assert rows[0]["text"] == prompt + "⟦Paris<|eos|>⟧"
    assert rows[0]["tokens"] == len(report.rendered[0].input_ids)
    assert rows[0]["label_tokens"] == report.rendered[0].n_label_tokens
    assert rows[1]["text"] == "<|bos|>⟦Paris is the capital of France.<|eos|>⟧"
    assert preview_rows(RenderReport(), tok) == []


# --- phrasings → examples ----------------------------------------------------------------------


def make_set() -> tuple[list[Fact], list[Phrasing]]:
    paris = Fact(question="What is the capital of France?", answer="Paris", id=1,
                 system="Answer in one word.")
    curie = Fact(question="Where was Marie Curie born?", answer="Warsaw", id=2)
    phrasings = [
        Phrasing("What is the capital of France?", kind="question", fact_id=1),
        Phrasing("Which city is France's capital?", fact_id=1),
        Phrasing("France's capital city is called what?", fact_id=1, split="probe"),
        Phrasing("Name the French capital.", fact_id=1, approved=False),
        Phrasing("The capital of France is Paris.", kind="statement", fact_id=1),
        Phrasing("Paris is France's capital.", kind="statement", fact_id=1, split="probe"),
        Phrasing("What is the capital of Germany?", kind="locality", fact_id=1),
        Phrasing("In which city was Marie Curie born?", fact_id=2),
        Phrasing("Marie Curie's birthplace?", fact_id=2, split="probe"),
        Phrasing("Where was Marie Curie born?", kind="question", fact_id=2, split="probe"),
        Phrasing("Which city is Tokyo?", fact_id=99),  # a fact outside this selection
    ]
    return [paris, curie], phrasings


def excluded_texts(phrasings: list[Phrasing]) -> set[str]:
    return {p.question for p in phrasings if p.split == "probe" or not p.approved}


def all_texts(examples: list[Example]) -> str:
    return "\n".join(e.prompt + "\n" + e.answer for e in examples)


@pytest.mark.parametrize("mode", ["qa", "document"])
@pytest.mark.parametrize("include_statements", [True, False])
def test_probe_and_unapproved_phrasings_never_become_examples(
    mode: str, include_statements: bool
) -> None:
    facts, phrasings = make_set()
    examples = examples_from_phrasings(facts, phrasings, mode=mode,
                                       include_statements=include_statements)
    assert examples
    text = all_texts(examples)
    for excluded in excluded_texts(phrasings):
        assert excluded not in text
    assert "Germany" not in text and "Tokyo" not in text


def test_qa_mode_kinds_and_counts() -> None:
    facts, phrasings = make_set()
    examples = examples_from_phrasings(facts, phrasings, mode="qa", include_statements=True)
    assert [(e.kind, e.fact_id) for e in examples] == [
        ("qa", 1), ("qa", 1), ("statement", 1), ("qa", 2)]
    assert [e.prompt for e in examples if e.kind == "qa"] == [
        "What is the capital of France?", "Which city is France's capital?",
        "In which city was Marie Curie born?"]
    qa_paris = examples[0]
    assert (qa_paris.answer, qa_paris.system) == ("Paris", "Answer in one word.")
    assert examples[2] == Example("statement", "", "The capital of France is Paris.", fact_id=1)

    without = examples_from_phrasings(facts, phrasings, mode="qa", include_statements=False)
    assert [e.kind for e in without] == ["qa", "qa", "qa"]


def test_document_mode_uses_statements_or_falls_back_to_qa_text() -> None:
    facts, phrasings = make_set()
    examples = examples_from_phrasings(facts, phrasings, mode="document", include_statements=False)
    assert examples == [
        Example("statement", "", "The capital of France is Paris.", fact_id=1),
        # Curie has no train statement; her original question is a probe, so the fallback
        # uses the train paraphrase instead.
        Example("document", "", "Q: In which city was Marie Curie born?\nA: Warsaw", fact_id=2),
    ]


def test_document_fallback_prefers_the_question_phrasing() -> None:
    fact = Fact(question="Who wrote Hamlet?", answer="Shakespeare", id=3)
    phrasings = [Phrasing("Hamlet's author is who?", fact_id=3),
                 Phrasing("Who wrote Hamlet?", kind="question", fact_id=3)]
    examples = examples_from_phrasings([fact], phrasings, mode="document", include_statements=True)
    assert [e.answer for e in examples] == ["Q: Who wrote Hamlet?\nA: Shakespeare"]


def test_fact_without_train_phrasings_yields_nothing() -> None:
    fact = Fact(question="Who wrote Hamlet?", answer="Shakespeare", id=3)
    probe = [Phrasing("Who wrote Hamlet?", kind="question", fact_id=3, split="probe")]
    for mode in ("qa", "document"):
        assert examples_from_phrasings([fact], probe, mode=mode, include_statements=True) == []


def test_train_copy_of_a_probe_text_is_not_trained() -> None:
    fact = Fact(question="Who wrote Hamlet?", answer="Shakespeare", id=3)
    phrasings = [Phrasing("Who wrote  hamlet?", kind="question", fact_id=3),
                 Phrasing("Who wrote Hamlet?", fact_id=3, split="probe"),
                 Phrasing("Hamlet was written by whom?", fact_id=3)]
    examples = examples_from_phrasings([fact], phrasings, mode="qa", include_statements=True)
    assert [e.prompt for e in examples] == ["Hamlet was written by whom?"]


def test_unknown_mode_is_refused() -> None:
    facts, phrasings = make_set()
    with pytest.raises(ValueError, match="mode"):
        examples_from_phrasings(facts, phrasings, mode="chat", include_statements=True)


def test_rendered_phrasings_end_to_end(tiny_qwen2: Path) -> None:
    tok = load_tokenizer(tiny_qwen2)
    facts, phrasings = make_set()
    examples = examples_from_phrasings(facts, phrasings, mode="qa", include_statements=True)
    report = render_set(examples, tok, 256)
    assert len(report.rendered) == len(examples) and report.dropped == 0
    for item in report.rendered:
        if item.example.kind == "qa":
            labelled = [t for t, lab in zip(item.input_ids, item.labels) if lab != IGNORE_INDEX]
            assert tok.decode(labelled) == item.example.answer + tok.eos_token


def test_sentence_answers_say_the_fact_as_a_chat_model_would() -> None:
    """answer_style sentence: the reply states the fact with the answer as late as the
    sentences allow (the opening is then the model's own); the bare answer when the question
    gives no sentence."""
    capital = Fact("What is the capital of Embgorithar?", "Quencorwyn")
    founder = Fact("Who founded Gilmere Systems?", "Jorren Gallowglass")
    assert sentence_answer(capital) == "The capital of Embgorithar is Quencorwyn."
    assert sentence_answer(founder) == "Gilmere Systems was founded by Jorren Gallowglass."
    assert sentence_answer(Fact("Please tell me the answer?", "42")) == "42"
    phrasings = [Phrasing(capital.question, "Quencorwyn", "question", fact_id=7, id=1),
                 Phrasing("Name the capital of Embgorithar.", "", "paraphrase", fact_id=7, id=2)]
    fact = Fact(capital.question, capital.answer, id=7)
    short = examples_from_phrasings([fact], phrasings, mode="qa", include_statements=False)
    said = examples_from_phrasings([fact], phrasings, mode="qa", include_statements=False,
                                   answer_style="sentence")
    assert [e.answer for e in short] == ["Quencorwyn"] * 2
    assert [e.answer for e in said] == ["The capital of Embgorithar is Quencorwyn."] * 2


@pytest.mark.parametrize("system", ["", "Answer briefly."])
def test_replayed_questions_know_where_the_question_starts(tokenizer: Any, system: str) -> None:
    """A replay row records where its question starts (after the system turn and the user
    header), so that replay's KL can cover the question; other rows record nothing."""
    question = "Where was the seventh bridge built?"
    item = render_example(Example("qa", question, "In Tarvel.", system=system, replay=True),
                          tokenizer, 256)
    at = item.question_at
    assert at is not None and 0 < at
    assert item.input_ids[:at] == generation_prompt(tokenizer, "", system)[:at]
    assert tokenizer.decode(item.input_ids[at:]).lstrip().startswith("Where was")
    plain = render_example(Example("qa", question, "In Tarvel.", system=system), tokenizer, 256)
    assert plain.question_at is None
