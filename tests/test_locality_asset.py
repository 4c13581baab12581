"""Sanity checks for the shipped general-knowledge QA list used as locality probes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

ASSET = Path(__file__).resolve().parents[1] / "assets" / "locality" / "general_knowledge.jsonl"
KEYS = {"question", "answer", "aliases", "category"}
CATEGORIES = {
    "geography",
    "science",
    "chemistry",
    "literature",
    "art_music",
    "history",
    "math",
    "language",
    "everyday",
}


def _lines() -> list[str]:
    return [line for line in ASSET.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return [json.loads(line) for line in _lines()]


def test_asset_exists_and_has_enough_items(items: list[dict]) -> None:
    assert ASSET.is_file()
    assert len(items) >= 200


def test_every_line_is_a_json_object_with_exact_keys_and_types() -> None:
    for number, line in enumerate(_lines(), start=1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:  # pragma: no cover - failure path
            pytest.fail(f"line {number} is not valid JSON: {exc}")
        assert isinstance(item, dict), f"line {number} is not an object"
        assert set(item) == KEYS, f"line {number} has keys {sorted(item)}"
        assert isinstance(item["question"], str), f"line {number}: question must be a string"
        assert isinstance(item["answer"], str), f"line {number}: answer must be a string"
        assert isinstance(item["category"], str), f"line {number}: category must be a string"
        assert isinstance(item["aliases"], list), f"line {number}: aliases must be a list"
        assert all(isinstance(a, str) and a.strip() for a in item["aliases"]), (
            f"line {number}: aliases must be non-empty strings"
        )


def test_questions_end_with_question_mark_and_are_unique(items: list[dict]) -> None:
    seen: set[str] = set()
    for item in items:
        question = item["question"].strip()
        assert question.endswith("?"), question
        key = question.casefold()
        assert key not in seen, f"duplicate question: {question}"
        seen.add(key)


def test_answers_are_short_and_non_empty(items: list[dict]) -> None:
    for item in items:
        answer = item["answer"].strip()
        assert answer, item
        assert len(answer) <= 40, item


def test_categories_are_allowed_and_each_is_populated(items: list[dict]) -> None:
    counts = Counter(item["category"] for item in items)
    assert set(counts) <= CATEGORIES, set(counts) - CATEGORIES
    for category in CATEGORIES:
        assert counts[category] >= 8, f"{category}: only {counts[category]} items"


def test_no_alias_repeats_its_answer(items: list[dict]) -> None:
    for item in items:
        answer = item["answer"].strip().casefold()
        for alias in item["aliases"]:
            assert alias.strip().casefold() != answer, item


# --- the replay-only list: general anchors for replay that locality never asks -------------
REPLAY_ASSET = ASSET.with_name("replay_knowledge.jsonl")


@pytest.fixture(scope="module")
def replay_items() -> list[dict]:
    lines = REPLAY_ASSET.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_the_replay_list_is_well_formed_and_disjoint_from_the_probe_list(
        items: list[dict], replay_items: list[dict]) -> None:
    from workbench.core.scoring import normalize

    assert len(replay_items) >= 500
    probes = {normalize(item["question"]) for item in items}
    seen: set[str] = set()
    for item in replay_items:
        assert set(item) == KEYS, item
        assert item["question"].endswith("?") and item["answer"].strip(), item
        assert all(isinstance(a, str) and a.strip() for a in item["aliases"]), item
        key = normalize(item["question"])
        assert key not in probes, f"also a locality candidate: {item['question']}"
        assert key not in seen, f"duplicate: {item['question']}"
        seen.add(key)
        # A model that repeats the question back must not score as right.
        assert not any(f" {normalize(g)} " in f" {key} " for g in [item["answer"], *item["aliases"]]), item


def test_no_replay_question_asks_a_known_relation(replay_items: list[dict]) -> None:
    """Same-relation questions (capitals, currencies, founders, …) are replayed and probed
    through the relation list, where a probe's neighbour is kept out of replay; a general
    replay question of that form could ask what a locality probe asks."""
    from workbench.core.knowledge import relations as rel

    relations = rel.load_relations()
    for item in replay_items:
        subject = rel.guess_subject(item["question"])
        assert rel.detect_relation(item["question"], subject, relations) is None, item
