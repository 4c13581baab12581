"""What a tokenizer call returns, as a plain list of ids, whatever the transformers version.

Below both generation and the knowledge renderer, which each tokenize chat prompts: neither
should have to import the other for this.
"""

from __future__ import annotations

from typing import Any


def token_ids(encoded: Any) -> list[int]:
    """Token ids from a tokenizer/apply_chat_template result: transformers 5 returns a
    BatchEncoding (dict-like) by default, older versions and return_dict=False a plain list."""
    if hasattr(encoded, "keys") and "input_ids" in encoded:
        encoded = encoded["input_ids"]
    ids = list(encoded)
    if ids and isinstance(ids[0], (list, tuple)):  # a batch of one
        ids = list(ids[0])
    return [int(i) for i in ids]
