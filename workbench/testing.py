"""Tiny random-weight models of real architectures, for tests and benchmarks with no hub.

`build_tiny_model(folder, "llama")` writes an ordinary Hugging Face model folder (config.json,
model.safetensors, tokenizer.json with a chat template) of a few MB in about a second: a
byte-level BPE tokenizer trained locally by the `tokenizers` library (any text tokenizes, nothing
becomes unknown) and a Llama or Qwen2 model with random weights. Everything that loads a hub
model loads these the same way.
"""

from __future__ import annotations

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
