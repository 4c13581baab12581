"""Batched free generation with the model's chat template.

Scoring (design §4) asks the model the way a user would: chat template, greedy by default,
stop at EOS or the end of the first line, capped length. Prompts are left-padded and run in
batches, so a set of 200 questions costs a handful of `generate` calls, not 200.

`generate_ids` is the one place that calls `model.generate`: the chat helpers here, the
Compare tab's panes and the scorecard all go through it. It takes peft's `adapter_names`
(one per row, "__base__" for the bare base), so rows for different LoRA adapters of one base
share a single batched generation, and an optional `on_tokens` callback that sees each row's
new tokens as they are produced (streaming).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from workbench.core.knowledge.render import token_ids
from workbench.core.models import LoadedModel
from workbench.core.progress import Progress, no_progress

Messages = list[dict[str, str]]
OnTokens = Callable[[int, list[int]], None]  # (row, that row's new tokens so far)


def prompt_ids(tokenizer: Any, messages: Messages) -> list[int]:
    return token_ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))


class _RowStreamer:
    """A transformers streamer for a batch: `put` gets the prompt once, then one token per
    row per step. Rows that reached EOS keep receiving padding, which is dropped here."""

    def __init__(self, rows: int, eos_id: int | None, on_tokens: OnTokens) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.done = [False] * rows
        self.eos_id, self.on_tokens, self._prompt_seen = eos_id, on_tokens, False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call carries the prompt ids
            self._prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self.tokens), -1)[:, -1].tolist()):
            if self.done[row]:
                continue
            if token == self.eos_id:
                self.done[row] = True
                continue
            self.tokens[row].append(int(token))
            self.on_tokens(row, self.tokens[row])

    def end(self) -> None:
        pass


_SMALL_BATCH = threading.local()


def _install_small_batch_linear() -> None:
    """CPU decode with 2-4 rows: compute nn.Linear as W·xᵀ instead of x·Wᵀ.

    A decode step multiplies each weight by one token per row. MKL runs x·Wᵀ for 2-4 rows as
    a general GEMM that repacks the whole weight every call, which costs 2-2.5× the one-row
    case; W·xᵀ with the same numbers costs about 1.1×, so two panes stop costing nearly two
    generations (measured in bench/compare.py; e.g. a 4096×1024 weight: 862 µs vs 424 µs for
    2 rows, 444 µs for 1). Only inside `generate_ids` on CPU (a thread-local switch), only
    without autograd, float32, plain nn.Linear; everything else takes torch's own path."""
    import torch

    linear = torch.nn.Linear
    if getattr(linear, "_workbench_small_batch", False):
        return
    original = linear.forward

    def forward(self: Any, x: Any) -> Any:
        rows = x.numel() // max(x.shape[-1], 1)
        if (getattr(_SMALL_BATCH, "on", False) and 2 <= rows <= 4 and x.device.type == "cpu"
                and x.dtype == self.weight.dtype == torch.float32 and not torch.is_grad_enabled()):
            out = torch.mm(self.weight, x.reshape(rows, x.shape[-1]).T).T
            if self.bias is not None:
                out = out + self.bias
            return out.reshape(*x.shape[:-1], self.weight.shape[0])
        return original(self, x)

    linear.forward = forward
    linear._workbench_small_batch = True


@contextlib.contextmanager
def _small_batch_decode(device: str) -> Iterator[None]:
    if device != "cpu":
        yield
        return
    _install_small_batch_linear()
    _SMALL_BATCH.on = True
    try:
        yield
    finally:
        _SMALL_BATCH.on = False


def generate_ids(
    loaded: LoadedModel,
    prompts: Sequence[list[int]],
    *,
    max_new_tokens: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    adapter_names: Sequence[str] | None = None,
    on_tokens: OnTokens | None = None,
    model: Any = None,
) -> list[list[int]]:
    """New token ids (EOS and padding removed) for each prompt, in one `generate` call.
    `model` overrides loaded.model (e.g. the training model while it is being probed)."""
    import torch

    tok, model = loaded.tokenizer, model if model is not None else loaded.model
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    width = max(len(ids) for ids in prompts)
    # Left padding: every prompt ends at the same position, where generation starts.
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + list(ids) for ids in prompts])
    attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts])
    kwargs: dict[str, Any] = {"do_sample": do_sample}
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    if adapter_names is not None:
        kwargs["adapter_names"] = list(adapter_names)
    if on_tokens is not None:
        kwargs["streamer"] = _RowStreamer(len(prompts), tok.eos_token_id, on_tokens)
    with torch.no_grad(), _small_batch_decode(loaded.device):
        out = model.generate(
            input_ids=input_ids.to(loaded.device), attention_mask=attention.to(loaded.device),
            max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=tok.eos_token_id,
            **kwargs,
        )
    rows = []
    for row in out[:, width:].tolist():
        if tok.eos_token_id in row:
            row = row[:row.index(tok.eos_token_id)]
        rows.append(row)
    return rows


def decode_reply(tokenizer: Any, ids: Sequence[int], *, first_line_only: bool) -> str:
    text = tokenizer.decode(list(ids), skip_special_tokens=True).strip()
    return text.split("\n", 1)[0].strip() if first_line_only else text


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
    model: Any = None,
    progress: Progress = no_progress,
) -> list[str]:
    """One reply per conversation. `first_line_only` cuts each reply at its first newline,
    which is how short factual answers are scored."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    replies: list[str] = []
    for start in range(0, len(conversations), batch_size):
        batch = [prompt_ids(loaded.tokenizer, c) for c in conversations[start:start + batch_size]]
        rows = generate_ids(loaded, batch, max_new_tokens=max_new_tokens, do_sample=do_sample,
                            temperature=temperature, top_p=top_p, model=model)
        replies += [decode_reply(loaded.tokenizer, r, first_line_only=first_line_only) for r in rows]
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
