"""Batched free generation with the model's chat template.

Scoring (design §4) asks the model the way a user would: chat template, greedy by default,
stop at EOS or the end of the first line, capped length. Prompts are left-padded and run in
batches, so a set of 200 questions costs a handful of `generate` calls, not 200.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from workbench.core.knowledge.render import token_ids
from workbench.core.models import LoadedModel
from workbench.core.progress import Progress, no_progress

Messages = list[dict[str, str]]



def _prompt_ids(tokenizer: Any, messages: Messages) -> list[int]:
    return token_ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))


def chat_generate(
    loaded: LoadedModel,
    conversations: Sequence[Messages],
    *,
    max_new_tokens: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 16,
    first_line_only: bool = True,
    seed: int | None = None,
    progress: Progress = no_progress,
) -> list[str]:
    """One reply per conversation. `first_line_only` cuts each reply at its first newline,
    which is how short factual answers are scored."""
    import torch

    tok, model = loaded.tokenizer, loaded.model
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if seed is not None:
        torch.manual_seed(seed)
    replies: list[str] = []
    for start in range(0, len(conversations), batch_size):
        batch = [_prompt_ids(tok, c) for c in conversations[start:start + batch_size]]
        width = max(len(ids) for ids in batch)
        # Left padding: every prompt ends at the same position, where generation starts.
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in batch])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch])
        sampling: dict[str, Any] = {"do_sample": do_sample}
        if do_sample:
            sampling.update(temperature=temperature, top_p=top_p)
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids.to(loaded.device), attention_mask=attention.to(loaded.device),
                max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                eos_token_id=tok.eos_token_id, **sampling,
            )
        for row in out[:, width:].tolist():
            text = tok.decode(row, skip_special_tokens=True)
            replies.append(text.strip().split("\n", 1)[0].strip() if first_line_only else text.strip())
        progress(min(1.0, (start + len(batch)) / len(conversations)),
                 f"{start + len(batch)} of {len(conversations)} answered")
    return replies


def ask_questions(loaded: LoadedModel, questions: Sequence[str], *, system: str = "",
                  **kwargs: Any) -> list[str]:
    """Single-turn questions → first-line answers."""
    prefix: Messages = [{"role": "system", "content": system}] if system else []
    return chat_generate(loaded, [[*prefix, {"role": "user", "content": q}] for q in questions],
                         **kwargs)


def asker(loaded: LoadedModel, *, max_new_tokens: int = 160) -> Callable[[list[str]], list[str]]:
    """A `prompts → replies` function for paraphrase and QA proposal prompts (multi-line)."""

    def ask(prompts: list[str]) -> list[str]:
        return ask_questions(loaded, prompts, max_new_tokens=max_new_tokens,
                             first_line_only=False, batch_size=8)

    return ask
