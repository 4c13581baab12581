"""Documents → chunks → proposed QA pairs: chunking invariants, cloze questions without a
model, and model proposals parsed from a scripted `ask` (hallucinated answers dropped)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.core.knowledge.documents import (
    Proposal, chunk_document, cloze_proposals, model_proposals, propose_facts, split_sentences,
)
from workbench.core.knowledge.types import FactDraft
from workbench.core.scoring import normalize

BIOGRAPHY = """# Ada Lovelace

Ada Lovelace was born in London on 10 December 1815. She was the only legitimate child of the
poet Lord Byron. Her mother, Anne Isabella Milbanke, promoted her interest in mathematics.

Lovelace worked with Charles Babbage on the Analytical Engine. She died in Marylebone in 1852.

## Legacy

The Lovelace Institute was founded in 2018 by the Ada Lovelace Trust. Mary Shelley wrote
Frankenstein. Canberra is the capital of Australia. About 1,000 people attend every year.
"""


def _squash(text: str) -> str:
    return "".join(text.split())


# ---------------------------------------------------------------------------------------------
# Sentences and chunks


def test_split_sentences_respects_abbreviations_and_initials() -> None:
    text = ("Dr. Smith met J. R. R. Tolkien in Oxford, e.g. at the pub. It rained! "
            "Did it? Yes. the end")
    assert split_sentences(text) == [
        "Dr. Smith met J. R. R. Tolkien in Oxford, e.g. at the pub.", "It rained!", "Did it?",
        "Yes. the end"]


def test_empty_and_blank_documents_give_no_chunks() -> None:
    assert chunk_document("") == []
    assert chunk_document(" \n\n \t\n") == []


def test_small_paragraphs_merge_and_headings_start_chunks() -> None:
    chunks = chunk_document(BIOGRAPHY, max_chars=800)
    assert len(chunks) == 2
    assert chunks[0].startswith("# Ada Lovelace\n\nAda Lovelace was born")
    assert "Lovelace worked with Charles Babbage" in chunks[0]
    assert chunks[1].startswith("## Legacy\n\nThe Lovelace Institute")


def test_a_heading_is_repeated_as_context_for_its_later_chunks() -> None:
    para = "This sentence is about the topic at hand. " * 3
    text = "# Topic\n\n" + "\n\n".join([para.strip()] * 4)
    chunks = chunk_document(text, max_chars=300)
    assert len(chunks) > 1
    assert all(c.startswith("# Topic\n\n") and len(c) <= 300 for c in chunks)


def test_long_paragraphs_split_at_sentences_then_at_spaces() -> None:
    sentences = [f"Sentence number {i} says something." for i in range(30)]
    chunks = chunk_document(" ".join(sentences), max_chars=120)
    assert all(len(c) <= 120 and c.endswith(".") for c in chunks)
    assert _squash(" ".join(chunks)) == _squash(" ".join(sentences))
    run_on = " ".join(["word"] * 100)  # one sentence, no punctuation
    chunks = chunk_document(run_on, max_chars=50)
    assert all(len(c) <= 50 for c in chunks) and _squash("".join(chunks)) == _squash(run_on)


def test_an_unbreakable_word_stays_whole_in_a_chunk_of_its_own() -> None:
    word = "x" * 120
    chunks = chunk_document(f"# Head\n\nShort start. {word} short end.", max_chars=60)
    assert word in chunks
    assert all(len(c) <= 60 or c == word for c in chunks)
    assert any(c.startswith("# Head") for c in chunks)


def test_headings_without_text_are_kept() -> None:
    chunks = chunk_document("# Part one\n\n## Chapter\n\nText here.\n\n# Appendix\n", max_chars=200)
    joined = "\n".join(chunks)
    for piece in ("# Part one", "## Chapter", "Text here.", "# Appendix"):
        assert piece in joined


_words = st.text(alphabet="abcdefghijXYZ.,!?'0123456789-", min_size=1, max_size=30)
_paragraph = st.lists(_words, min_size=1, max_size=40).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(_paragraph, min_size=0, max_size=8), st.integers(min_value=10, max_value=300),
       st.sampled_from(["\n\n", "\n \n", "\n\n\n"]))
def test_chunking_keeps_all_content_in_order_and_respects_the_limit(paragraphs: list[str],
                                                                     max_chars: int,
                                                                     sep: str) -> None:
    text = sep.join(paragraphs)
    chunks = chunk_document(text, max_chars=max_chars)
    assert all(c.strip() for c in chunks)
    for c in chunks:
        assert len(c) <= max_chars or len(c.split()) == 1, c  # only a single word may be longer
    assert _squash("".join(chunks)) == _squash(text)


@settings(max_examples=75, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _paragraph), max_size=8),
       st.integers(min_value=20, max_value=300))
def test_chunking_with_headings_loses_no_words(blocks: list[tuple[bool, str]],
                                               max_chars: int) -> None:
    text = "\n\n".join(f"## {p}" if heading else p for heading, p in blocks)
    chunks = chunk_document(text, max_chars=max_chars)
    assert all(len(c) <= max_chars or len(c.split()) == 1 for c in chunks)
    have = " ".join(chunks).split()
    for word in text.split():
        assert word in have


# ---------------------------------------------------------------------------------------------
# Cloze proposals


def test_cloze_proposals_ask_natural_questions_for_common_patterns() -> None:
    found: list[Proposal] = []
    for i, chunk in enumerate(chunk_document(BIOGRAPHY, max_chars=800)):
        found += cloze_proposals(chunk, i, max_per_chunk=10)
    pairs = {(p.question, p.answer) for p in found}
    assert ("Where was Ada Lovelace born?", "London") in pairs
    assert ("When was Ada Lovelace born?", "10 December 1815") in pairs
    assert ("When was the Lovelace Institute founded?", "2018") in pairs
    assert ("Who founded the Lovelace Institute?", "the Ada Lovelace Trust") in pairs
    assert ("Who wrote Frankenstein?", "Mary Shelley") in pairs
    assert ("What is the capital of Australia?", "Canberra") in pairs
    assert ("Where did Lovelace die?", "Marylebone") in pairs  # "She" resolved to the last name
    flat = " ".join(BIOGRAPHY.split())
    for p in found:
        assert p.answer and p.answer in p.source and p.source in flat, p
        assert p.method == "cloze" and p.chunk_index in (0, 1)
    blanks = [p for p in found if p.question.startswith("Fill in the blank: ")]
    assert blanks and all("___" in p.question for p in blanks)
    assert ("Fill in the blank: Lovelace worked with ___ on the Analytical Engine.",
            "Charles Babbage") in pairs
    assert ("Fill in the blank: About ___ people attend every year.", "1,000") in pairs


def test_cloze_prefers_years_then_numbers_then_names() -> None:
    chunk = ("The bridge opened to traffic in 1937 with 6 lanes. "
             "Its towers rise 227 metres above the water. "
             "The design was led by Joseph Strauss and his team. "
             "Visitors often walk across from Marin.")
    got = {p.answer for p in cloze_proposals(chunk, 0)}
    assert got == {"1937", "227", "Joseph Strauss", "Marin"}


def test_cloze_respects_the_limit_and_skips_questions_and_fragments() -> None:
    chunk = "Is this a question? Too short. " + " ".join(
        f"Person {chr(65 + i)}ndrews was born in Town{i} in 19{10 + i}." for i in range(6))
    props = cloze_proposals(chunk, 2, max_per_chunk=4)
    assert len(props) == 4 and all(not p.source.endswith("?") for p in props)
    assert cloze_proposals("", 0) == [] and cloze_proposals("no capitals here at all.", 0) == []


def test_a_proposal_becomes_a_fact_draft_with_its_source() -> None:
    p = Proposal("Where was Ada Lovelace born?", "London", "Ada Lovelace was born in London.", 0,
                 "cloze")
    assert p.to_draft() == FactDraft(question="Where was Ada Lovelace born?", answer="London",
                                     source="Ada Lovelace was born in London.")


# ---------------------------------------------------------------------------------------------
# Model proposals with a scripted `ask`

CHUNK = ("Ada Lovelace was born in London in 1815. "
         "She published notes on the Analytical Engine in 1843.")
REPLY = """Here are some question-answer pairs:
1. Q: Where was Ada Lovelace born? A: London
2. **Q:** When did she publish her notes? **A:** 1843.
Q: Who was her father? A: Lord Byron
Question: What machine did her notes describe?
Answer: the Analytical Engine
Q: Where was Ada Lovelace born? A: London
Q: What year was Ada born? A: 1815 or 1816
Q: What city is named in the passage A: London
A: an answer with no question
random junk ###
"""


def test_model_proposals_parse_and_drop_hallucinated_answers() -> None:
    prompts: list[list[str]] = []

    def ask(batch: list[str]) -> list[str]:
        prompts.append(batch)
        return [REPLY]

    props = model_proposals(CHUNK, 3, ask, max_per_chunk=5)
    assert [(p.question, p.answer) for p in props] == [
        ("Where was Ada Lovelace born?", "London"),
        ("When did she publish her notes?", "1843"),
        ("What machine did her notes describe?", "the Analytical Engine"),
        ("What city is named in the passage?", "London"),
    ]
    assert all(p.method == "model" and p.chunk_index == 3 for p in props)
    assert props[1].source == "She published notes on the Analytical Engine in 1843."
    assert len(prompts) == 1 and len(prompts[0]) == 1
    assert "up to 5 question-answer pairs" in prompts[0][0] and CHUNK in prompts[0][0]
    assert len(model_proposals(CHUNK, 0, ask, max_per_chunk=2)) == 2


@pytest.mark.parametrize("replies", [[], [""], [None], None, "text", [42], ["Q: A:"],
                                     ["Q: Who?\nA: London"]])
def test_model_proposals_survive_garbage(replies: object) -> None:
    assert model_proposals(CHUNK, 0, lambda _: replies) == []  # type: ignore[arg-type,return-value]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_model_proposals_never_raise_and_only_keep_stated_answers(reply: str) -> None:
    for p in model_proposals(CHUNK, 0, lambda _: [reply]):
        assert f" {normalize(p.answer)} " in f" {normalize(CHUNK)} "
        assert p.question.endswith("?")


def test_propose_facts_uses_the_model_and_falls_back_to_cloze() -> None:
    calls: list[list[str]] = []

    def ask(batch: list[str]) -> list[str]:
        calls.append(batch)
        # A usable reply for the first chunk, nothing usable for the second.
        return ["Q: Where was Ada Lovelace born? A: London\nQ: Where? A: London", "I cannot help."]

    props = propose_facts(BIOGRAPHY, ask)
    assert len(calls) == 1 and len(calls[0]) == 2  # one batched call for both chunks
    assert [(p.question, p.method, p.chunk_index) for p in props if p.chunk_index == 0] == [
        ("Where was Ada Lovelace born?", "model", 0)]
    later = [p for p in props if p.chunk_index == 1]
    assert later and all(p.method == "cloze" for p in later)


def test_propose_facts_without_a_model_is_cloze_and_deduplicated() -> None:
    text = BIOGRAPHY + "\n\n# Again\n\nAda Lovelace was born in London on 10 December 1815.\n"
    props = propose_facts(text, max_per_chunk=5)
    keys = [normalize(p.question) for p in props]
    assert len(keys) == len(set(keys))
    assert keys.count(normalize("Where was Ada Lovelace born?")) == 1
    assert all(p.method == "cloze" and p.answer for p in props)
    assert propose_facts("") == []
