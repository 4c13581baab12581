"""Pretrain the demo model on the synthetic world: tokenizer, architecture, data, training.

Mixed training, as in "Physics of Language Models 3.1": biographies of every known person
(several per person, varied templates, shuffled sentence order) together with QA pairs — all
question templates — for the known_qa people only. The model then stores each person's
attributes in a form that QA can extract, and answers questions about the known_bio people
it only read about. Reserved people are never seen.

Training runs on the project's own engine (`train_loop`, full fine-tuning of every weight),
so `accelerate`, the token-normalised loss and the schedules are the same ones users get.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from workbench.core.knowledge.render import Example, Rendered, render_example
from workbench.core.paths import LOCALITY_FILE
from workbench.demo.world import World, answer, biography, build_world, qa_pairs

PAD, EOS, IM_START = "<|endoftext|>", "<|im_end|>", "<|im_start|>"
# ChatML, as Qwen uses it: the answer ends with <|im_end|>, which is also EOS, so generation
# stops exactly where a trained answer ends.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the demo model; the model card records it."""

    seed: int = 0
    n_known_qa: int = 100
    n_known_bio: int = 60
    n_reserved: int = 20
    bio_passes: int = 150  # fresh biographies per known person over the whole run
    qa_passes: int = 30  # QA per known_qa person and attribute (a random template each)
    vocab_size: int = 2048
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 1024
    learning_rate: float = 1e-3
    # Small batches: memorising facts needs many optimizer updates more than large ones.
    batch_size: int = 16
    weight_decay: float = 0.1
    max_seq_len: int = 128

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def world(self) -> World:
        return build_world(self.seed, n_known_qa=self.n_known_qa, n_known_bio=self.n_known_bio,
                           n_reserved=self.n_reserved)


def corpus(world: World, recipe: Recipe) -> tuple[list[str], list[tuple[str, str]]]:
    """(biographies, (question, answer) pairs) of the whole run, one pass over the data.

    Every biography is freshly drawn (random templates and sentence order), and every QA pair
    asks with a random template: augmentation that "Physics of LMs 3.1" found is what makes
    knowledge extractable, rather than tied to one wording.
    """
    rng = random.Random(recipe.seed + 1)
    known = [p for p in world.people if p.split != "reserved"]
    bios = [biography(p, rng) for _ in range(recipe.bio_passes) for p in known]
    by_attribute: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for person in world.by_split("known_qa"):
        for attr, q, _value, _i in qa_pairs(person):
            by_attribute.setdefault((person.name, attr), []).append((q, answer(person, attr)))
    qa = [rng.choice(pairs) for _ in range(recipe.qa_passes) for pairs in by_attribute.values()]
    return bios, qa


def general_text() -> list[str]:
    """A little ordinary English for the tokenizer, so text outside the world still splits into
    sensible pieces (bytes cover everything regardless)."""
    lines = LOCALITY_FILE.read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    return [f"{item['question']} {item['answer']}" for item in items]


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer: every input maps to tokens, nothing becomes unknown."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, IM_START, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=PAD,
                                  model_max_length=1024)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def init_model(tokenizer: Any, recipe: Recipe) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size, num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads, num_key_value_heads=recipe.heads,
        max_position_embeddings=512, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def training_examples(world: World, recipe: Recipe, tokenizer: Any) -> list[Rendered]:
    bios, qa = corpus(world, recipe)
    examples = [Example("document", "", text) for text in bios]
    examples += [Example("qa", q, a) for q, a in qa]
    return [render_example(e, tokenizer, recipe.max_seq_len) for e in examples]


def pretrain(model: Any, tokenizer: Any, rendered: Sequence[Rendered], recipe: Recipe, *,
             device: str, on_step: Callable[[dict[str, Any]], None]) -> Any:
    """Full training of every weight with the project's loop; returns the trained model."""
    from workbench.core.config import TrainingConfig
    from workbench.core.train.loop import TrainLoop

    cfg = TrainingConfig(
        epochs=1, learning_rate=recipe.learning_rate,
        micro_batch_size=recipe.batch_size, gradient_accumulation_steps=1,
        lr_scheduler="cosine", warmup_ratio=0.02, weight_decay=recipe.weight_decay,
        max_grad_norm=1.0, seed=recipe.seed, probe_every=0, checkpoint_every=0,
    )
    loop = TrainLoop(model.to(device), rendered, cfg, pad_id=tokenizer.pad_token_id, device=device)
    loop.run(lambda row: on_step({**row, "total": loop.total}))
    return loop.unwrapped
