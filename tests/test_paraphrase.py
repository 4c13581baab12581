"""Question phrasings and statements: template rewrites, model rewrites (with a scripted
`ask`), and the invariants every phrasing must keep (ends with '?', no leaked answer, no
duplicates after normalising, never the original question)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.core.knowledge.paraphrase import (
    dedupe, form_of, form_variants, model_paraphrases, question_form, statements,
    template_paraphrases,
)
from workbench.core.scoring import normalize

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "who": [
        ("Who wrote Hamlet?", "William Shakespeare"),
        ("Who was the first president of the United States?", "George Washington"),
        ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
        ("Who is the CEO of Tesla?", "Elon Musk"),
        ("Who did Marie Curie marry?", "Pierre Curie"),
    ],
    "what": [
        ("What is the capital of Australia?", "Canberra"),
        ("What is the chemical symbol for gold?", "Au"),
        ("What did Alexander Graham Bell invent?", "the telephone"),
        ("What is Japan's currency?", "yen"),
        ("What language is spoken in Brazil?", "Portuguese"),
    ],
    "where": [
        ("Where was Marie Curie born?", "Warsaw"),
        ("Where is the Eiffel Tower located?", "Paris"),
        ("Where did Albert Einstein die?", "Princeton"),
        ("Where do kangaroos live?", "Australia"),
        ("In what city was Frida Kahlo born?", "Coyoacán"),
    ],
    "when": [
        ("When was the Eiffel Tower completed?", "1889"),
        ("When did the Titanic sink?", "1912"),
        ("In which year did the Berlin Wall fall?", "1989"),
        ("What year was Google founded?", "1998"),
        ("When was Ada Lovelace born?", "10 December 1815"),
    ],
    "which": [
        ("Which planet is known as the Red Planet?", "Mars"),
        ("Which river flows through Paris?", "Seine"),
        ("Which country won the 2018 FIFA World Cup?", "France"),
        ("Which element has the chemical symbol Fe?", "iron"),
        ("In which book does Harry Potter first appear?", "Philosopher's Stone"),
    ],
    "how_many": [
        ("How many moons does Mars have?", "2"),
        ("How many people live in Tokyo?", "14 million"),
        ("How many bones are in the human body?", "206"),
        ("How many continents are there?", "seven"),
        ("How many Nobel Prizes did Marie Curie win?", "two"),
    ],
}
ALL_EXAMPLES = [(form, q, a) for form, pairs in EXAMPLES.items() for q, a in pairs]


def _leaks(text: str, answer: str) -> bool:
    return f" {normalize(answer)} " in f" {normalize(text)} "


@pytest.mark.parametrize("form,question,answer", ALL_EXAMPLES)
def test_question_form_classifies_the_examples(form: str, question: str, answer: str) -> None:
    assert question_form(question) == form


@pytest.mark.parametrize("question,form", [
    ("Whose face is on the $100 bill?", "who"),
    ("By whom was Hamlet written?", "who"),
    ("What's the capital of Peru?", "what"),
    ("In which city was Mozart born?", "where"),
    ("From which country did the Beatles come?", "where"),
    ("In what year did the war end?", "when"),
    ("What date is Bastille Day?", "when"),
    ("Which century saw the printing press?", "when"),
    ("Which city is the capital of France?", "which"),
    ("How much does the Eiffel Tower weigh?", "how_many"),
    ("How tall is Mount Everest?", "how"),
    ("In what way did the reform change taxes?", "how"),
    ("Why is the sky blue?", "why"),
    ("Is Paris the capital of France?", "yes_no"),
    ("Did Einstein win a Nobel Prize?", "yes_no"),
    ("Can you tell me where Ada Lovelace was born?", "where"),
    ("Name the largest ocean.", "other"),
    ("", "other"),
])
def test_question_form_table(question: str, form: str) -> None:
    assert question_form(question) == form


@pytest.mark.parametrize("form,question,answer", ALL_EXAMPLES)
def test_template_paraphrases_give_at_least_five_clean_phrasings(form: str, question: str,
                                                                 answer: str) -> None:
    out = template_paraphrases(question, answer)
    keys = [normalize(p) for p in out]
    assert len(set(keys)) == len(out) >= 5, out
    assert normalize(question) not in keys
    assert len(out) <= 8
    for p in out:
        assert p.endswith("?") and not p.endswith("??"), p
        assert not _leaks(p, answer), p
        assert p == " ".join(p.split()) and p[0].isupper(), p


@pytest.mark.parametrize("form,question,answer", ALL_EXAMPLES)
def test_statements_state_the_answer(form: str, question: str, answer: str) -> None:
    out = statements(question, answer)
    assert 1 <= len(out) <= 3
    for s in out:
        assert _leaks(s, answer) and s.endswith("."), s
    # The first statement is a real sentence, not the generic fallback.
    assert not out[0].startswith("The answer to the question"), out


def test_ada_lovelace_rewrites_read_naturally() -> None:
    out = template_paraphrases("Where was Ada Lovelace born?", "London", "Ada Lovelace", n=20)
    for expected in ("What is Ada Lovelace's birthplace?", "Where is Ada Lovelace from originally?",
                     "Can you tell me where Ada Lovelace was born?",
                     "Do you know where Ada Lovelace was born?", "Ada Lovelace was born where?"):
        assert expected in out
    assert statements("Where was Ada Lovelace born?", "London")[:2] == [
        "Ada Lovelace was born in London.", "The birthplace of Ada Lovelace is London."]


@pytest.mark.parametrize("question,answer,expected", [
    ("Who wrote Hamlet?", "William Shakespeare", "Who is the author of Hamlet?"),
    ("Who wrote Hamlet?", "William Shakespeare", "Hamlet was written by whom?"),
    ("Who was the first president of the United States?", "George Washington",
     "Who was the United States' first president?"),
    ("What is the capital of Australia?", "Canberra", "What is Australia's capital?"),
    ("What is the capital of Australia?", "Canberra",
     "Do you know what the capital of Australia is?"),
    ("When was the Eiffel Tower completed?", "1889",
     "In which year was the Eiffel Tower completed?"),
    ("When was the Eiffel Tower completed?", "1889",
     "Can you tell me when the Eiffel Tower was completed?"),
    ("When did the Titanic sink?", "1912", "Do you know when the Titanic sank?"),
    ("How many moons does Mars have?", "2", "Do you know how many moons Mars has?"),
    ("How many moons does Mars have?", "2", "What is the number of moons that Mars has?"),
    ("How many moons does Mars have?", "2", "Mars has how many moons?"),
    ("Which planet is known as the Red Planet?", "Mars", "What planet is known as the Red Planet?"),
    ("Which country did Marco Polo visit?", "China",
     "What is the name of the country that Marco Polo visited?"),
    ("In which book does Harry Potter first appear?", "Philosopher's Stone",
     "Do you know in which book Harry Potter first appears?"),
    ("Name the largest ocean.", "Pacific", "Can you name the largest ocean?"),
])
def test_specific_rewrites(question: str, answer: str, expected: str) -> None:
    assert expected in template_paraphrases(question, answer, n=20)


@pytest.mark.parametrize("question,answer,expected", [
    ("Who wrote Hamlet?", "William Shakespeare", "Hamlet was written by William Shakespeare."),
    ("What is the capital of Australia?", "Canberra", "The capital of Australia is Canberra."),
    ("How many moons does Mars have?", "2", "Mars has 2 moons."),
    ("How many legs does a spider have?", "eight legs", "A spider has eight legs."),
    ("When was the Eiffel Tower completed?", "1889", "The Eiffel Tower was completed in 1889."),
    ("When was Ada Lovelace born?", "10 December 1815",
     "Ada Lovelace was born on 10 December 1815."),
    ("Which planet is known as the Red Planet?", "Mars", "Mars is known as the Red Planet."),
    ("Whose face is on the $100 bill?", "Benjamin Franklin",
     "Benjamin Franklin's face is on the $100 bill."),
    ("Why is the sky blue?", "Rayleigh scattering",
     'The answer to the question "Why is the sky blue?" is Rayleigh scattering.'),
])
def test_statement_examples(question: str, answer: str, expected: str) -> None:
    assert expected in statements(question, answer, n=5)


def test_n_limits_and_an_answer_inside_the_question_leaves_nothing_to_leak() -> None:
    assert len(template_paraphrases("Who wrote Hamlet?", "William Shakespeare", n=3)) == 3
    assert template_paraphrases("Who wrote Hamlet?", "William Shakespeare", n=0) == []
    assert template_paraphrases("Where was the Treaty of Versailles signed?", "Versailles") == []
    assert template_paraphrases("   ", "x") == []


def test_yes_no_and_unparsed_questions_still_get_wrappers() -> None:
    out = template_paraphrases("Is Paris the capital of France?", "yes")
    assert "Quick question: is Paris the capital of France?" in out and len(out) >= 5
    out = template_paraphrases("Why is the sky blue?", "Rayleigh scattering")
    assert len(out) >= 5 and all("sky blue" in p for p in out)  # no mangled word order


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80), st.text(max_size=20), st.integers(min_value=0, max_value=10))
def test_templates_and_statements_never_raise_and_keep_invariants(question: str, answer: str,
                                                                  n: int) -> None:
    out = template_paraphrases(question, answer, n=n)
    assert len(out) <= n
    keys = [normalize(p) for p in out]
    assert len(set(keys)) == len(keys) and normalize(question) not in keys
    assert all(p.endswith("?") and not _leaks(p, answer) for p in out)
    for s in statements(question, answer):
        assert _leaks(s, answer)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(
    ["Who", "What", "Where", "When", "Which", "How", "many", "is", "was", "did", "does", "the",
     "capital", "of", "Ada", "Lovelace", "born", "in", "there", "have", "moons", "from", "'s",
     "write", "planet", "known", "as", "located", "?", "."]), min_size=1, max_size=10))
def test_templates_survive_question_like_word_salad(words: list[str]) -> None:
    question = " ".join(words)
    out = template_paraphrases(question, "London")
    assert all(p.endswith("?") for p in out)
    assert statements(question, "London")


def test_dedupe_normalises_and_keeps_order() -> None:
    items = ["Who wrote Hamlet?", "who wrote hamlet", "Who is the author of Hamlet?",
             "  ", "Who is the author of the Hamlet!", "Tell me: who wrote Hamlet?"]
    assert dedupe(items) == ["Who wrote Hamlet?", "Who is the author of Hamlet?",
                             "Tell me: who wrote Hamlet?"]
    assert dedupe(items, exclude=["WHO WROTE HAMLET"]) == ["Who is the author of Hamlet?",
                                                          "Tell me: who wrote Hamlet?"]
    assert dedupe(iter([])) == []


# ---------------------------------------------------------------------------------------------
# Model paraphrases with a scripted `ask`


class Scripted:
    """An `ask` that returns canned replies, one list per call, and records the prompts."""

    def __init__(self, *batches: object) -> None:
        self.batches = list(batches)
        self.prompts: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> list[str]:
        self.prompts.append(prompts)
        return self.batches.pop(0) if self.batches else []  # type: ignore[return-value]


FIRST_REPLY = """Here are 5 rewrites of the question:
1. Who is the author of Hamlet?
2) Which writer penned the play Hamlet?
- "Who was Hamlet written by?"
* Was it William Shakespeare who wrote Hamlet?
3. who wrote hamlet
4. Who is the author of Hamlet?
Question: Who wrote Hamlet?
5. **Who penned the tragedy Hamlet**
asdf qwer zxcv
Who?
Hamlet's author is Shakespeare, isn't that so? Whose pen produced Hamlet?
"""


def test_model_paraphrases_are_cleaned() -> None:
    ask = Scripted([FIRST_REPLY], ["", "Rewrite 1: Who created the tragedy of Hamlet?\n"
                                       "Rewrite 2: Who is the author of Hamlet?"])
    out = model_paraphrases("Who wrote Hamlet?", "William Shakespeare", ask, n=6)
    assert out == [
        "Who is the author of Hamlet?",
        "Which writer penned the play Hamlet?",
        "Who was Hamlet written by?",
        "Who penned the tragedy Hamlet?",
        "Whose pen produced Hamlet?",
        "Who created the tragedy of Hamlet?",
    ]
    assert len(ask.prompts) == 2 and all(len(batch) >= 1 for batch in ask.prompts)
    first = ask.prompts[0][0]
    assert "6 different ways" in first and "Do not answer it" in first
    assert first.endswith("Question: Who wrote Hamlet?")
    assert "Who is the author of Hamlet?" in ask.prompts[1][0]  # asks for different ones


def test_model_paraphrases_stop_once_they_have_enough() -> None:
    ask = Scripted(["Who is the author of Hamlet?\nWho penned Hamlet?\nWho was Hamlet written by?"])
    out = model_paraphrases("Who wrote Hamlet?", "Shakespeare", ask, n=2, rounds=3)
    assert out == ["Who is the author of Hamlet?", "Who penned Hamlet?"]
    assert len(ask.prompts) == 1


def test_model_paraphrases_drop_long_short_and_non_questions() -> None:
    long_line = "Who " + "really " * 20 + "wrote Hamlet?"
    reply = (f"{long_line}\nHamlet author?\nThe play Hamlet was written by someone.\n"
             "Did someone write Hamlet")
    out = model_paraphrases("Who wrote Hamlet?", "Shakespeare", Scripted([reply]), n=5, rounds=1)
    assert out == ["Did someone write Hamlet?"]


@pytest.mark.parametrize("replies", [[], [""], [None], ["\n\n   \n"], "not a list", None,
                                     ["?!?!\n1.\n- \n**"], [12, b"bytes"]])
def test_model_paraphrases_survive_garbage(replies: object) -> None:
    assert model_paraphrases("Who wrote Hamlet?", "Shakespeare", lambda _: replies, n=5) == []


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=3), st.integers(min_value=1, max_value=6))
def test_model_paraphrases_never_raise_on_random_replies(replies: list[str], n: int) -> None:
    question, answer = "Where was Ada Lovelace born?", "London"
    out = model_paraphrases(question, answer, lambda _: replies, n=n)
    assert len(out) <= n
    keys = [normalize(p) for p in out]
    assert len(set(keys)) == len(keys) and normalize(question) not in keys
    for p in out:
        assert p.endswith("?") and len(p.split()) >= 3 and len(p) <= 3 * len(question)
        assert not _leaks(p, answer)


@pytest.mark.parametrize("text,form", [
    ("What is the capital of Veltria?", "question"),
    ("In what year was Google founded?", "question"),
    ("Tell me: what is the capital of Veltria?", "question"),
    ("For Veltria, what is the capital?", "question"),
    ("Can you name the city that is the capital of Veltria?", "question"),
    ("Name the capital of Veltria.", "imperative"),
    ("Please tell me who founded Brimwell Labs.", "imperative"),
    ("Veltria has which capital?", "inverted"),
    ("Brimwell Labs was founded by whom?", "inverted"),
    ("Mars has how many moons?", "inverted"),
    ("The capital of Veltria is", "completion"),
    ("The capital of Veltria is ___.", "completion"),
    ("Orsk is the capital of Veltria.", "statement"),
])
def test_form_of_reads_how_a_phrasing_asks(text: str, form: str) -> None:
    assert form_of(text) == form


@pytest.mark.parametrize("question,answer", [
    ("What is the capital of Veltria?", "Orsk"),
    ("Which city is the capital of Veltria?", "Orsk"),
    ("Who founded Brimwell Labs?", "Ada Quill"),
    ("Who is the founder of Brimwell Labs?", "Ada Quill"),
    ("What currency is used in Veltria?", "the lorin"),
    ("Where was Ada Lovelace born?", "London"),
    ("When was Google founded?", "1998"),
    ("How many moons does Mars have?", "2"),
])
def test_form_variants_ask_common_questions_in_every_other_form(question: str, answer: str) -> None:
    variants = form_variants(question, answer)
    assert {form_of(v) for v in variants} == {"imperative", "inverted", "completion"}, variants
    assert all(answer.lower() not in v.lower() for v in variants)
    assert question not in variants


def test_form_variants_say_nothing_when_unsure_or_when_the_answer_would_show() -> None:
    assert form_variants("Where was the Treaty of Versailles signed?", "Versailles") == []
    assert form_variants("", "x") == [] and form_variants("Who wrote Hamlet?", "x", per_form=0) == []
