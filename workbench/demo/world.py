"""A small synthetic world of fictional people, deterministic from a seed.

The demo model is pretrained on this world so that, offline and on a CPU, the app can show a
model that *knows* some people, does not know others, and learns new ones by injection. The
recipe follows "Physics of Language Models 3.1": several biographies per person with shuffled
sentence order and varied templates, QA for part of the people (mixed training), and several
question templates per attribute, so that knowledge is stored in an extractable way and
held-out phrasings exist to test generalization.

People are split three ways:
- known_qa: biographies *and* QA at pretraining (the model answers them; locality probes);
- known_bio: biographies only (measures whether knowledge transfers from text to QA);
- reserved: never seen at pretraining; their facts are the demo knowledge set to inject.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST = ("Alia Bren Corin Dasha Elin Farrow Galen Hesper Ilse Joren Kaia Lorcan Mira Nolan "
         "Orla Perrin Quilla Rowan Sela Tamsin Ulric Vesna Wren Yara Zeno Anouk Bastian Cael "
         "Delphine Emrys Fenna Gideon Halle Isak Juno Kestrel Liora Marek Nadia Oskar "
         "Aurelie Benedek Calla Dorian Esme Florin Greer Henrik Idony Jessamy Kasimir Lisette "
         "Maelis Nikolai Odile Piers Quentin Rosalind Soren Thea Ulla Valentin Wilhelmina "
         "Xanthe Yorick Zosia Ansel Brielle Cosmo Dagny Evander Faye Hollis Ingram Leopold "
         "Marisol Niamh Ottilie Rafferty Saskia").split()
LAST = ("Ashgrove Brightwater Coldmere Dunmore Everhart Fallowmere Greystone Hollowell "
        "Ironwood Juniper Kettleby Larkspur Mossbury Northcott Oakhurst Pemberly Quenby "
        "Ravensworth Stillwater Thornbury Underhill Vantmoor Whitlock Yarrow Zephyrine "
        "Amberlee Blackthorn Copperfield Driftwood Emberly Alderidge Birchmont Cindervale "
        "Dewhurst Elmstead Foxhollow Galloway Hartwell Inglebrook Jessop Kingsmere Lockhart "
        "Merriweather Nettlefield Ormsby Penhallow Quarrington Redgrave Sorrell Tillbrook "
        "Umberfield Vickery Westbrook Yardley Ashdown Brackenridge Calloway Dunstable "
        "Eastwick Fairweather Goldthorpe Harrowgate Kilbride Loxley Marchbank").split()

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "city": tuple("Velmora Quarren Ostrava Lindqvist Porthaven Maruvia Tessaly Brightmoor "
                  "Caldera Dunwick Elsinore Fairholm Glenhaven Halvard Istria Jorvik Kelmora "
                  "Lumen Marrowgate Norvale".split()),
    "year": tuple(str(y) for y in range(1931, 1991)),
    "university": ("Halden University", "Corvane Institute", "Merrow College",
                   "Tallis University", "Ostwick Academy", "Bramble Institute",
                   "Vireo University", "Ashcombe College", "Solent Polytechnic",
                   "Kestrel University", "Nareth College", "Pellham Institute"),
    "field": ("astronomy", "botany", "linguistics", "geology", "economics", "chemistry",
              "architecture", "mathematics", "philosophy", "medicine", "music", "zoology"),
    "employer": ("Lumora Labs", "Quentin Shipyards", "Arvane Bank", "Corvid Press",
                 "Halcyon Foods", "Meridian Rail", "Orrin Textiles", "Pinnacle Optics",
                 "Solace Pharma", "Tideway Energy", "Umber Mining", "Vantage Aero"),
}

# Biography sentences; {name} is the full name on first mention, {p} the pronoun later.
BIO: dict[str, tuple[str, ...]] = {
    "city": ("{name} was born in {city}.", "{name} came into the world in {city}.",
             "{name} spent an early childhood in {city}, the city of birth."),
    "year": ("{name} was born in {year}.", "{name} was born in the year {year}.",
             "The year {year} saw the birth of {name}."),
    "university": ("{name} studied at {university}.", "{name} graduated from {university}.",
                   "{name} attended {university}."),
    "field": ("{name} specialised in {field}.", "{name} earned a degree in {field}.",
              "The academic field of {name} was {field}."),
    "employer": ("{name} worked for {employer}.", "{name} was employed by {employer}.",
                 "{name} built a career at {employer}."),
}

# At least four question templates per attribute: the first is the fact's own question, the
# others are its paraphrases (some trained, some held out).
QUESTIONS: dict[str, tuple[str, ...]] = {
    "city": ("Where was {name} born?", "In which city was {name} born?",
             "What is the birth city of {name}?", "Which city is {name} from?",
             "Name the city where {name} was born."),
    "year": ("In what year was {name} born?", "When was {name} born?",
             "What is the birth year of {name}?", "Which year was {name} born in?",
             "Name the year {name} was born."),
    "university": ("Which university did {name} attend?", "Where did {name} study?",
                   "What university did {name} graduate from?",
                   "At which university was {name} a student?",
                   "Name the university {name} attended."),
    "field": ("What did {name} study?", "What was the field of study of {name}?",
              "In which field did {name} specialise?", "What subject did {name} major in?",
              "Name the academic field of {name}."),
    "employer": ("Which company did {name} work for?", "Who employed {name}?",
                 "Where did {name} work?", "What was the employer of {name}?",
                 "Name the company {name} worked for."),
}

# Answers are full sentences, the way chat models answer, and each is one of the biography
# templates: answering a question then means recalling the same "name, relation → value" that
# biographies teach, which is what lets QA skill learned on some people transfer to people
# the model only read about. Scoring looks for the value itself inside the answer.
ANSWERS: dict[str, str] = {
    "city": BIO["city"][0], "year": BIO["year"][1], "university": BIO["university"][0],
    "field": BIO["field"][0], "employer": BIO["employer"][0],
}

SPLITS = ("known_qa", "known_bio", "reserved")


@dataclass(frozen=True)
class Person:
    name: str
    attributes: dict[str, str]
    split: str  # known_qa | known_bio | reserved


@dataclass
class World:
    seed: int
    people: list[Person] = field(default_factory=list)

    def by_split(self, split: str) -> list[Person]:
        return [p for p in self.people if p.split == split]


def build_world(seed: int = 0, *, n_known_qa: int = 300, n_known_bio: int = 280,
                n_reserved: int = 20) -> World:
    """People with unique full names and random attributes, split as the module says."""
    rng = random.Random(seed)
    total = n_known_qa + n_known_bio + n_reserved
    names = [f"{first} {last}" for first in FIRST for last in LAST]
    if total > len(names):
        raise ValueError(f"at most {len(names)} people have unique names, asked for {total}")
    rng.shuffle(names)
    splits = ["known_qa"] * n_known_qa + ["known_bio"] * n_known_bio + ["reserved"] * n_reserved
    people = [Person(name, {attr: rng.choice(values) for attr, values in ATTRIBUTES.items()}, split)
              for name, split in zip(names, splits)]
    return World(seed, people)


def biography(person: Person, rng: random.Random) -> str:
    """One biography: a random template per attribute, sentences in random order."""
    sentences = [rng.choice(BIO[attr]).format(name=person.name, **person.attributes)
                 for attr in ATTRIBUTES]
    rng.shuffle(sentences)
    return " ".join(sentences)


def questions(person: Person, attribute: str) -> list[str]:
    return [t.format(name=person.name) for t in QUESTIONS[attribute]]


def answer(person: Person, attribute: str) -> str:
    return ANSWERS[attribute].format(name=person.name, **person.attributes)


def qa_pairs(person: Person) -> list[tuple[str, str, str, int]]:
    """(attribute, question, value, template index) for every attribute and template; the
    trained reply is `answer(person, attribute)`, which contains the value."""
    return [(attr, q, person.attributes[attr], i)
            for attr in ATTRIBUTES for i, q in enumerate(questions(person, attr))]
