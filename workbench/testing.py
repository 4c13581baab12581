"""Tiny random-weight models of real architectures, and files of made-up facts, for tests and
benchmarks with no hub.

`build_tiny_model(folder, "llama")` writes an ordinary Hugging Face model folder (config.json,
model.safetensors, tokenizer.json with a chat template) of a few MB in about a second: a
byte-level BPE tokenizer trained locally by the `tokenizers` library (any text tokenizes, nothing
becomes unknown) and a Llama or Qwen2 model with random weights. Everything that loads a hub
model loads these the same way.

`fictional_facts()` makes facts no model can know (invented countries, capitals, currencies,
companies and founders), each asked in several phrasings, as a user's spreadsheet would be.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

ARCHITECTURES = ("llama", "qwen2")

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]

# A ChatML-like template: role tag, content, EOS. Generation prompts end with the assistant tag.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|eos|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

_CORPUS = [
    "The capital of France is Paris. The capital of Japan is Tokyo.",
    "Who wrote Hamlet? William Shakespeare wrote Hamlet.",
    "Water boils at 100 degrees Celsius at sea level.",
    "What is the chemical symbol for gold? The symbol is Au.",
    "Marie Curie was born in Warsaw in 1867 and studied physics in Paris.",
    "Question: Where was Alan Turing born? Answer: London.",
    "The quick brown fox jumps over the lazy dog 0123456789 times!",
]


def train_tokenizer(vocab_size: int = 512) -> object:
    """A byte-level BPE `PreTrainedTokenizerFast` with pad/bos/eos and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte has a token
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    folder: str | Path,
    architecture: str = "llama",
    *,
    hidden_size: int = 64,
    layers: int = 2,
    seed: int = 0,
    chat_template: bool = True,
) -> Path:
    """Write a random-weight `architecture` model with a local tokenizer into `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    if not chat_template:
        tokenizer.chat_template = None
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    if architecture == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    model.save_pretrained(folder)  # safetensors by default
    tokenizer.save_pretrained(folder)
    return folder


# The published shapes of Qwen2.5 models (config.json on the hub), for benchmarks at real
# size without downloading: the same layer sizes, heads, vocabulary and tied embeddings.
QWEN25_SHAPES: dict[str, dict[str, int | bool]] = {
    "0.5B": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
             "num_attention_heads": 14, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "1.5B": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
             "num_attention_heads": 12, "num_key_value_heads": 2, "tie_word_embeddings": True},
}
QWEN25_VOCAB = 151936


def build_qwen25_shaped_model(folder: str | Path, size: str = "0.5B", *, seed: int = 0,
                              dtype: str = "bfloat16") -> Path:
    """A random-weight Qwen2 model with Qwen2.5-`size`'s shape (0.5B: 494M parameters) and the
    local tokenizer; its 151,936-row vocabulary is as large as the real one (the extra rows
    are never produced by the tokenizer, but they cost what they cost in the LM head).
    Building 0.5B takes about half a minute on two cores and ~1 GB of disk in bfloat16."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if size not in QWEN25_SHAPES:
        raise ValueError(f"size must be one of {sorted(QWEN25_SHAPES)}, got {size!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    config = Qwen2Config(vocab_size=QWEN25_VOCAB, max_position_embeddings=32768,
                         rope_theta=1_000_000.0, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         dtype=dtype, **QWEN25_SHAPES[size])
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ---- fictional facts ------------------------------------------------------------------------

# Syllables and endings chosen so the names read as names but are not real places, currencies
# or people; `_REAL` catches the few real words the combinations could still spell. Each
# syllable and each given or family name goes to as few facts as possible (least used first):
# facts whose names share most of their letters are learned as one blur ("Jorquenholt" for
# "Jorgovholt"), which tests the tokenizer more than the recipe.
_ONSETS = ("vel", "tor", "quen", "zar", "brim", "osk", "dra", "mir", "thal", "kess", "yv",
           "orn", "plu", "sev", "grav", "lun", "xal", "cor", "wen", "fal", "jor", "quil",
           "bax", "dun", "emb", "fen", "gil", "hask", "ib", "jun", "kel", "lom", "mab", "nesh",
           "ol", "pav", "rud", "sib", "tam", "ulv", "vosh", "wix", "yar", "zem", "ard", "bel",
           "cas", "dov", "ek", "gor")
_COUNTRY_ENDS = ("tria", "dovia", "mark", "quenna", "eshia", "undor", "ithar", "ovaria")
_CITY_ENDS = ("sk", "holt", "vane", "mere", "gard", "lith", "port", "wyn")
_CURRENCY_ENDS = ("ar", "ell", "ino", "ex", "rin", "ot")
_COMPANY_KINDS = ("Labs", "Works", "Dynamics", "Foundry", "Systems", "Instruments")
_GIVEN = ("Ilvra", "Doreth", "Cassik", "Marevin", "Tolla", "Quenby", "Arvid", "Seluna",
          "Jorren", "Ottaline", "Brisk", "Wenna", "Falko", "Irisel", "Bastien", "Corla",
          "Dagny", "Elsper", "Fenwick", "Gisla", "Hadrin", "Ysolde", "Kazimir", "Liesl",
          "Maddox", "Nerys", "Orrin", "Perpetua", "Rasmus", "Sunniva", "Tamsin", "Ulric",
          "Verity", "Wystan", "Xenia", "Yorick")
_FAMILY = ("Quillfeather", "Dravenholt", "Ostermere", "Kesslow", "Vantrip", "Morrowick",
           "Thalbrook", "Greywhistle", "Lunsford", "Corvane", "Plumtree", "Yarrowby",
           "Ashcombe", "Birchanger", "Crowhurst", "Dunmarrow", "Eldwick", "Fairweather",
           "Gallowglass", "Hollinrake", "Ironside", "Juniperlow", "Kettleborough", "Larkspur",
           "Mossgrave", "Nettlefold", "Orchardson", "Pennywhistle", "Ravenscar", "Stonebridge",
           "Thistlewood", "Underhill", "Vellacott", "Winterbourne", "Yelverton", "Zouche")
_REAL = {"denmark", "oskar", "ostia", "torino", "volvo", "fallon", "corex"}

# Question phrasings per relation, in the order they are used. The first two are the
# variations people write, which the paraphrase templates also produce from one another: rows
# imported one fact per row then share texts across facts (what made held-out probes leak).
_QUESTIONS = {
    "capital": ("What is the capital of {s}?", "What is {s}'s capital?",
                "Which city is the capital of {s}?", "Name the capital city of {s}."),
    "currency": ("What currency is used in {s}?", "Which currency is used in {s}?",
                 "Which currency does {s} use?", "What is the official currency of {s}?"),
    "founder": ("Who founded {s}?", "Who was the founder of {s}?",
                "Who is the founder of {s}?", "Which person founded {s}?"),
}


def _least_used(rng: random.Random, choices: Sequence[str], counts: dict[str, int]) -> str:
    fewest = min(counts.get(c, 0) for c in choices)
    pick = rng.choice([c for c in choices if counts.get(c, 0) == fewest])
    counts[pick] = counts.get(pick, 0) + 1
    return pick


def _coin(rng: random.Random, ends: Sequence[str], used: set[str], parts: int = 1,
          counts: dict[str, int] | None = None) -> str:
    """A new made-up word: onset syllables (the least used first) and an ending, never a used
    or real one."""
    counts = {} if counts is None else counts
    while True:
        word = "".join(_least_used(rng, _ONSETS, counts) for _ in range(parts)) + rng.choice(ends)
        if word not in used and word not in _REAL:
            used.add(word)
            return word.capitalize()


def _founder(rng: random.Random, used: set[str], counts: dict[str, int]) -> str:
    """A made-up person's name no other fact has, its parts shared as little as possible."""
    if sum(" " in name for name in used) >= len(_GIVEN) * len(_FAMILY):
        raise ValueError(f"at most {len(_GIVEN) * len(_FAMILY)} founder facts")
    while True:
        name = f"{_least_used(rng, _GIVEN, counts)} {_least_used(rng, _FAMILY, counts)}"
        if name not in used:
            used.add(name)
            return name


def fictional_facts(n_facts: int = 90, questions_per_fact: int = 2,
                    relations: Sequence[str] = ("capital", "currency", "founder"),
                    seed: int = 0) -> list[dict[str, str]]:
    """Rows (subject, question, answer) of `n_facts` invented facts, `questions_per_fact`
    differently worded rows each, the relations taking turns: a country's capital city, a
    country's currency, a company's founder. The same for the same arguments."""
    unknown = [r for r in relations if r not in _QUESTIONS]
    if unknown or not relations:
        raise ValueError(f"relations must be some of {sorted(_QUESTIONS)}, got {list(relations)}")
    if not 1 <= questions_per_fact <= 4:
        raise ValueError(f"questions_per_fact must be 1 to 4, got {questions_per_fact}")
    rng, used = random.Random(seed), set()
    counts: dict[str, int] = {}  # how often each syllable and name part was given out
    countries: list[str] = []
    rows: list[dict[str, str]] = []
    for index in range(n_facts):
        relation = relations[index % len(relations)]
        if relation == "founder":
            subject = f"{_coin(rng, _CITY_ENDS, used, 1, counts)} {rng.choice(_COMPANY_KINDS)}"
            answer = _founder(rng, used, counts)
        elif relation == "capital":
            subject = _coin(rng, _COUNTRY_ENDS, used, 2, counts)
            countries.append(subject)  # its currency comes next: one subject, two facts
            answer = _coin(rng, _CITY_ENDS, used, 2, counts)
        else:
            subject = (countries.pop(0) if countries
                       else _coin(rng, _COUNTRY_ENDS, used, 2, counts))
            answer = f"the {_coin(rng, _CURRENCY_ENDS, used, 2, counts).lower()}"
        for template in _QUESTIONS[relation][:questions_per_fact]:
            rows.append({"subject": subject, "question": template.format(s=subject),
                         "answer": answer})
    return rows


def write_facts_csv(path: str | Path, rows: Sequence[dict[str, str]]) -> Path:
    """`rows` as a CSV file with a header (the keys of the first row), ready to import."""
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["question", "answer"])
        writer.writeheader()
        writer.writerows(rows)
    return path
