"""The synthetic demo world is deterministic, well-formed and split as documented."""

from __future__ import annotations

import random

from workbench.demo.world import ATTRIBUTES, BIO, QUESTIONS, biography, build_world, qa_pairs


def test_world_is_deterministic_from_its_seed() -> None:
    a, b, c = build_world(7), build_world(7), build_world(8)
    assert a.people == b.people and a.people != c.people


def test_splits_and_unique_names() -> None:
    world = build_world(0, n_known_qa=30, n_known_bio=20, n_reserved=5)
    assert [len(world.by_split(s)) for s in ("known_qa", "known_bio", "reserved")] == [30, 20, 5]
    names = [p.name for p in world.people]
    assert len(set(names)) == len(names)
    for person in world.people:
        assert set(person.attributes) == set(ATTRIBUTES)
        assert all(person.attributes[a] in ATTRIBUTES[a] for a in ATTRIBUTES)


def test_templates_give_every_attribute_four_or_more_questions_and_varied_biographies() -> None:
    assert all(len(QUESTIONS[a]) >= 4 and len(BIO[a]) >= 3 for a in ATTRIBUTES)
    person = build_world(0).people[0]
    rng = random.Random(0)
    bios = {biography(person, rng) for _ in range(5)}
    assert len(bios) == 5  # shuffled order and templates differ
    for bio in bios:
        assert all(value in bio for value in person.attributes.values())
    pairs = qa_pairs(person)
    assert len(pairs) == sum(len(QUESTIONS[a]) for a in ATTRIBUTES)
    assert all(person.name in q and answer == person.attributes[attr] for attr, q, answer, _ in pairs)
