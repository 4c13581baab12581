"""Batched free generation with the model's chat template.

Scoring (design §4) asks the model the way a user would: chat template, greedy by default,
stop at EOS or the end of the first line, capped length. Prompts are left-padded and run in
batches, so a set of 200 questions costs a handful of `generate` calls, not 200.

`generate_ids` is the one place that calls `model.generate`: the chat helpers here, the
Compare tab's panes and the scorecard all go through it. It takes peft's `adapter_names`
(one per row, "__base__" for the bare base), so rows for different LoRA adapters of one base
share a single batched generation, and an optional `on_tokens` callback that sees each row's
new tokens as they are produced (streaming).

Scoring answers are short, so the cost is in waiting for the slowest row of a batch. Two
things keep that wait short on a real model (measured in bench/real_model.py): a row that
has finished its first line stops (`first_line_only`; the rest would be cut anyway), and
prompts are batched in order of length, so little padding is computed. `should_stop` is
checked between decode steps: a Stop reaches a long screening or probe round within one
step, and the call raises `Interrupted`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from workbench.core.models import LoadedModel
from workbench.core.progress import Progress, no_progress
from workbench.core.tokens import token_ids

Messages = list[dict[str, str]]
OnTokens = Callable[[int, list[int]], None]  # (row, that row's new tokens so far)


def prompt_ids(tokenizer: Any, messages: Messages) -> list[int]:
    return token_ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))


def question_messages(question: str, system: str = "") -> Messages:
    """One user question, after its system prompt where there is one."""
    prefix: Messages = [{"role": "system", "content": system}] if system else []
    return [*prefix, {"role": "user", "content": question}]


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


class Interrupted(Exception):
    """Generation was cut short because `should_stop` said so (a Stop of the run)."""


# At most this often the stop callback is asked: it may read the store.
_STOP_POLL_S = 0.25


def _stopping_criteria(tokenizer: Any, rows: int, *, first_line: bool,
                       should_stop: Callable[[], bool] | None) -> Any:
    """Per-row stop rules for `model.generate`: a row is done at a newline after some text
    (when only the first line is wanted), and every row is done once `should_stop()`."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    newline = _newline_tokens(tokenizer) if first_line else None

    class _Rules(StoppingCriteria):
        def __init__(self) -> None:
            self.started = torch.zeros(rows, dtype=torch.bool)
            self.polled = 0.0
            self.stopped = False

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if newline is not None:
                # (a model's embedding may be padded past the tokenizer's last id)
                last = input_ids[:, -1].cpu().clamp(max=len(newline[0]) - 1)
                hit = newline[0][last] & self.started
                self.started |= newline[1][last]
                done |= hit.to(done.device)
            if should_stop is not None and time.monotonic() - self.polled > _STOP_POLL_S:
                self.polled = time.monotonic()
                if should_stop():
                    self.stopped = True
            if self.stopped:
                done[:] = True
            return done

    rules = _Rules()
    return StoppingCriteriaList([rules]), rules


def _newline_tokens(tokenizer: Any) -> tuple[Any, Any]:
    """(holds a newline, holds visible text) per token id, computed once per tokenizer: a
    row stops at a newline only after it has said something, since a reply may open with a
    blank line that `decode_reply` strips."""
    import torch

    cached = getattr(tokenizer, "_workbench_newline_tokens", None)
    if cached is not None:
        return cached
    size = max(len(tokenizer), int(getattr(tokenizer, "vocab_size", 0) or 0))
    texts = tokenizer.batch_decode([[i] for i in range(size)])  # one call, in Rust
    has_nl = torch.tensor(["\n" in t for t in texts], dtype=torch.bool)
    has_text = torch.tensor([bool(t.strip()) for t in texts], dtype=torch.bool)
    cached = (has_nl, has_text)
    try:
        tokenizer._workbench_newline_tokens = cached
    except AttributeError:  # a tokenizer that refuses attributes: compute each time
        pass
    return cached


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


def _device_of(model: Any, default: str) -> str:
    """Where `model`'s first parameter lives ("cuda:0", "cpu"), else `default`."""
    try:
        return str(next(model.parameters()).device)
    except (StopIteration, AttributeError, TypeError):
        return default


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
    first_line: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> list[list[int]]:
    """New token ids (EOS and padding removed) for each prompt, in one `generate` call.
    `model` overrides loaded.model (e.g. the training model while it is being probed).
    `first_line`: a row may stop at its first newline after some text. `should_stop`: see
    the module docstring; raises `Interrupted`."""
    import torch

    tok, model = loaded.tokenizer, model if model is not None else loaded.model
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    from workbench.core.device import is_sharded

    # One adapter for every row and one process: the shared start can be computed once.
    shared = (0 if adapter_names is not None or is_sharded(model)
              else shared_start(prompts))
    width = max(len(ids) for ids in prompts)
    # Left padding: every prompt ends at the same position, where generation starts; with a
    # shared start, the padding goes between it and each row's own part.
    input_ids = torch.tensor([list(ids[:shared]) + [pad_id] * (width - len(ids)) + list(ids[shared:])
                              for ids in prompts])
    attention = torch.tensor([[1] * shared + [0] * (width - len(ids)) + [1] * (len(ids) - shared)
                              for ids in prompts])
    kwargs: dict[str, Any] = {"do_sample": do_sample}
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    if adapter_names is not None:
        kwargs["adapter_names"] = list(adapter_names)
    if on_tokens is not None:
        kwargs["streamer"] = _RowStreamer(len(prompts), tok.eos_token_id, on_tokens)
    rules = None
    if first_line or should_stop is not None:
        kwargs["stopping_criteria"], rules = _stopping_criteria(
            tok, len(prompts), first_line=first_line, should_stop=should_stop)
    if should_stop is not None and should_stop():
        raise Interrupted
    if is_sharded(model):
        # Every rank runs the forward passes until all are done: the others hold the rest of
        # each layer's weights (the caller asks the same questions on every rank).
        kwargs["synced_gpus"] = True
    # The model's own device: a sharded run's base model is still in RAM when the replay
    # screening asks it, before FSDP moves it to the GPU (models.placement).
    where = _device_of(model, loaded.device)
    with torch.no_grad(), _small_batch_decode(where):
        if shared:
            kwargs[_cache_kwarg()] = _start_cache(model, prompts[0][:shared], len(prompts), where)
        out = model.generate(
            input_ids=input_ids.to(where), attention_mask=attention.to(where),
            max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=tok.eos_token_id,
            **kwargs,
        )
    if rules is not None and rules.stopped:
        raise Interrupted
    rows = []
    for row in out[:, width:].tolist():
        if tok.eos_token_id in row:
            row = row[:row.index(tok.eos_token_id)]
        rows.append(row)
    return rows


# A start shared by every prompt of a batch is computed once when it is at least this long:
# SmolLM2's chat template opens every prompt with the same 24-token system turn, about half
# of a question's prompt, and a probe round's batches of 64 computed it 64 times.
MIN_SHARED_START = 8


def shared_start(prompts: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every prompt shares (0 when fewer than MIN_SHARED_START, or
    for a single prompt), leaving each at least one token of its own to start from."""
    if len(prompts) < 2:
        return 0
    first, limit = prompts[0], min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n if n >= MIN_SHARED_START else 0


@functools.cache
def _cache_kwarg() -> str:
    """`generate`'s name for a cache to continue from: transformers 5.24 calls it `cache` (and
    warns on the old name); earlier 5.x know only `past_key_values`."""
    import transformers
    from packaging.version import Version

    return "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"


def _start_cache(model: Any, start: Sequence[int], rows: int, device: str) -> Any:
    """The key/value cache of `start`, computed once and repeated for `rows` rows: `generate`
    then computes only each row's own part (transformers' prompt reuse)."""
    import torch

    out = model(input_ids=torch.tensor([list(start)], device=device), use_cache=True)
    cache = out.get("cache")  # transformers 5.24's name; `past_key_values` before (and warns)
    if cache is None:
        cache = out.past_key_values
    cache.batch_repeat_interleave(rows)
    return cache


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
    batch_size: int = 64,
    first_line_only: bool = True,
    seed: int | None = None,
    model: Any = None,
    progress: Progress = no_progress,
    should_stop: Callable[[], bool] | None = None,
) -> list[str]:
    """One reply per conversation, in the order given. `first_line_only` cuts each reply at
    its first newline, which is how short factual answers are scored (and lets a row stop
    there). Batches of 64: on CPU a decode step costs about the same for 16 rows as for 64
    (the weights are read once per step either way), so larger batches finish sooner."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    prompts = [prompt_ids(loaded.tokenizer, c) for c in conversations]
    # Similar lengths together: a left-padded batch computes its longest prompt for every row.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    replies = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        rows = generate_ids(loaded, [prompts[i] for i in chunk], max_new_tokens=max_new_tokens,
                            do_sample=do_sample, temperature=temperature, top_p=top_p,
                            model=model, first_line=first_line_only, should_stop=should_stop)
        for i, row in zip(chunk, rows):
            replies[i] = decode_reply(loaded.tokenizer, row, first_line_only=first_line_only)
        done = start + len(chunk)
        progress(min(1.0, done / len(prompts)), f"{done} of {len(prompts)} answered")
    return replies


def ask_questions(loaded: LoadedModel, questions: Sequence[str], *, system: str = "",
                  **kwargs: Any) -> list[str]:
    """Single-turn questions → first-line answers."""
    return chat_generate(loaded, [question_messages(q, system) for q in questions], **kwargs)


def asker(loaded: LoadedModel, *, max_new_tokens: int = 160) -> Callable[[list[str]], list[str]]:
    """A `prompts → replies` function for paraphrase and QA proposal prompts (multi-line)."""

    def ask(prompts: list[str]) -> list[str]:
        return ask_questions(loaded, prompts, max_new_tokens=max_new_tokens,
                             first_line_only=False, batch_size=8)

    return ask
