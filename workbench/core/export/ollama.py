"""An Ollama `Modelfile` for an exported GGUF: the chat template as Ollama's Go template, the
stop tokens, the run's system prompt.

The template is not translated by reading Jinja (every model family writes its own); it is
derived by rendering the model's own chat template with marker strings in place of the
system prompt, the question and the answer, and cutting the text around them. Whatever the
family (ChatML, Llama 3, Gemma, Mistral, the workbench's fallback), the pieces between the
markers are exactly what the model was trained to see, and they become the literal text
around Ollama's `{{ .System }}`, `{{ .Prompt }}` and `{{ .Response }}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.core.errors import WorkbenchError
from workbench.core.export.gguf_write import adds_bos

_SYSTEM, _USER, _ANSWER = "\x01SYSTEM\x01", "\x01USER\x01", "\x01ANSWER\x01"


@dataclass(frozen=True)
class ChatPieces:
    """The chat template cut around its slots."""

    with_system: str  # everything before the question when there is a system prompt
    without_system: str  # … and when there is none
    before_answer: str  # between the question and the answer (the assistant's header)
    after_answer: str  # what closes the answer (end of turn)
    stops: tuple[str, ...]


def chat_pieces(tokenizer: Any) -> ChatPieces:
    """Render the tokenizer's chat template around markers. BOS is left out when the
    tokenizer adds it itself (llama.cpp then adds it too: writing it again would double it)."""
    if not getattr(tokenizer, "chat_template", None):
        raise WorkbenchError("the model has no chat template to write into the Modelfile")
    bos = "" if adds_bos(tokenizer) else (tokenizer.bos_token or "")

    def render(messages: list[dict[str, str]], generation: bool) -> str:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation, bos_token=bos)

    user = {"role": "user", "content": _USER}
    plain = render([user], True)
    try:
        system = render([{"role": "system", "content": _SYSTEM}, user], True)
    except Exception:  # noqa: BLE001 — templates that refuse a system turn raise their own errors
        system = ""
    if _SYSTEM not in system:
        system = ""  # the template drops system prompts: Ollama's SYSTEM would be ignored too
    turn = render([user, {"role": "assistant", "content": _ANSWER}], False)
    before_question, _, before_answer = plain.partition(_USER)
    after_answer = turn.partition(_ANSWER)[2]
    specials = set(tokenizer.all_special_tokens) | {
        t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    stops = [tokenizer.eos_token] if tokenizer.eos_token else []
    stops += sorted(t for t in specials if t and t in turn + system and t not in stops)
    # A template of plain text ("### Question:") marks the next turn with no special token:
    # that text is where the answer ends.
    next_turn = before_question.strip()
    if next_turn and not any(t in next_turn for t in specials):
        stops.append(next_turn.splitlines()[-1])
    return ChatPieces(system.partition(_USER)[0], before_question, before_answer,
                      after_answer, tuple(stops))


def _literal(text: str) -> str:
    """Text as it must appear in a Go template: `{{` would open an action."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(pieces: ChatPieces) -> str:
    head = _literal(pieces.without_system)
    if pieces.with_system:
        with_system = _literal(pieces.with_system).replace(_SYSTEM, "{{ .System }}")
        head = f"{{{{ if .System }}}}{with_system}{{{{ else }}}}{head}{{{{ end }}}}"
    return (f"{head}{{{{ .Prompt }}}}{_literal(pieces.before_answer)}{{{{ .Response }}}}"
            f"{_literal(pieces.after_answer)}")


def modelfile(gguf_name: str, tokenizer: Any, *, system: str = "") -> str:
    pieces = chat_pieces(tokenizer)
    lines = ["# Ollama: ollama create NAME -f Modelfile", f"FROM ./{gguf_name}", "",
             f'TEMPLATE """{go_template(pieces)}"""', ""]
    lines += [f'PARAMETER stop "{stop}"' for stop in pieces.stops]
    # The facts were scored with greedy decoding; temperature 0 gives the same answers.
    lines += ["PARAMETER temperature 0"]
    if system:
        lines += ["", f'SYSTEM """{system}"""']
    return "\n".join(lines) + "\n"
