"""`workbench demo build-model`: rebuild the embedded demo model and knowledge set from a seed.

World → tokenizer → pretraining (see `pretrain`) → evaluation by free generation over every
question template → an ordinary Hugging Face folder with a model card, the model's own
general-knowledge list (known people it answers correctly: locality and replay draw from it)
and the demo knowledge set. The folder is written next to the old one and swapped in only when
complete, so an interrupted build leaves the previous model in place.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.config import ModelConfig
from workbench.core.device import describe_device, pick_device
from workbench.core.generate import ask_questions
from workbench.core.models import LoadedModel, load_model
from workbench.core.paths import DEMO_MODEL_DIR, DEMO_SET_FILE, MODEL_KNOWLEDGE_FILE
from workbench.core.progress import Progress, no_progress
from workbench.core.scoring import is_correct
from workbench.demo import pretrain
from workbench.demo.knowledge import demo_set_payload, write_demo_set
from workbench.demo.world import ATTRIBUTES, SPLITS, Person, World, biography, qa_pairs

BUILD_COMMAND = "workbench demo build-model"
LOCALITY_PEOPLE = 20  # known people whose questions form the demo set's locality probes
MAX_MODEL_BYTES = 30 * 2**20


@dataclass
class BuildReport:
    recipe: dict[str, Any]
    accuracy: dict[str, float]  # split → share of questions answered correctly
    questions: dict[str, int]
    parameters: int
    train_seconds: float
    total_seconds: float
    device: str
    machine: str
    tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


def machine_summary(device: str) -> str:
    """What a figure was measured on: the device `device` resolves to (not the app header's
    summary, which would say "no GPU found" for a CPU run on a GPU machine)."""
    import torch

    info = describe_device(pick_device(device))
    if info.kind == "cpu":
        return f"CPU {info.name}, {info.cpu_cores} cores (torch {torch.__version__})"
    return f"{info.name} ({info.kind.upper()}, torch {torch.__version__})"


def split_accuracy(loaded: LoadedModel, people: Sequence[Person]) -> tuple[float, int]:
    """Share of every question template of every attribute answered correctly (greedy)."""
    items = [pair for person in people for pair in qa_pairs(person)]
    answers = ask_questions(loaded, [q for _attr, q, _a, _i in items], batch_size=64,
                            max_new_tokens=24)
    right = sum(is_correct(reply, a) for (_attr, _q, a, _i), reply in zip(items, answers))
    return right / max(1, len(items)), len(items)


def known_questions(loaded: LoadedModel, people: Sequence[Person], seed: int) -> list[dict[str, str]]:
    """One question per known person and attribute (random template) that the model answers
    correctly, with its answer as `reference`."""
    rng = random.Random(seed + 3)
    items = []
    for person in people:
        for attr in ATTRIBUTES:
            _attr, question, value, _i = rng.choice([x for x in qa_pairs(person) if x[0] == attr])
            items.append((attr, question, value))
    answers = ask_questions(loaded, [q for _attr, q, _a in items], batch_size=64, max_new_tokens=24)
    return [{"question": q, "answer": a, "category": attr, "reference": reply}
            for (attr, q, a), reply in zip(items, answers) if is_correct(reply, a)]


def _tokenizer_texts(world: World, recipe: pretrain.Recipe) -> list[str]:
    # Every person's name and value in context (reserved ones too: the tokenizer learns how
    # text splits, not who is who), the question templates, and some ordinary English.
    rng = random.Random(recipe.seed + 4)
    bios = [biography(p, rng) for p in world.people for _ in range(3)]
    questions = [f"{q} {a}" for p in world.people for _attr, q, a, _i in qa_pairs(p)]
    return bios + questions + pretrain.general_text()


def build_model(out_dir: Path = DEMO_MODEL_DIR, set_file: Path = DEMO_SET_FILE, *,
                recipe: pretrain.Recipe = pretrain.Recipe(), device: str = "auto",
                progress: Progress = no_progress) -> BuildReport:
    import torch

    started = time.perf_counter()
    device = pick_device(device)
    world = recipe.world()
    progress(0.0, "training the tokenizer")
    tokenizer = pretrain.train_tokenizer(_tokenizer_texts(world, recipe), recipe.vocab_size)
    model = pretrain.init_model(tokenizer, recipe)
    rendered = pretrain.training_examples(world, recipe, tokenizer)
    tokens = sum(len(r.input_ids) for r in rendered)

    train_started = time.perf_counter()

    def on_step(row: dict[str, Any]) -> None:
        progress(0.9 * row["step"] / row["total"],
                 f"step {row['step']}/{row['total']}, loss {row['loss']:.3f}")

    model = pretrain.pretrain(model, tokenizer, rendered, recipe, device=device, on_step=on_step)
    train_seconds = time.perf_counter() - train_started

    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.to("cpu").to(torch.float32).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    size = sum(p.stat().st_size for p in staging.glob("*.safetensors"))
    if size > MAX_MODEL_BYTES:
        raise RuntimeError(f"demo model weights are {size / 2**20:.1f} MB, over the "
                           f"{MAX_MODEL_BYTES // 2**20} MB budget: shrink the recipe")

    progress(0.9, "scoring the model by free generation")
    loaded = load_model(ModelConfig(name_or_path=str(staging), device=device))
    accuracy, counts = {}, {}
    for split in SPLITS:
        accuracy[split], counts[split] = split_accuracy(loaded, world.by_split(split))
    n_locality, n_pool = write_knowledge(loaded, world, recipe, staging, set_file)
    report = BuildReport(
        recipe=recipe.as_dict(), accuracy=accuracy, questions=counts,
        parameters=sum(p.numel() for p in model.parameters()), train_seconds=train_seconds,
        total_seconds=time.perf_counter() - started, device=device,
        machine=machine_summary(device), tokens=tokens,
        extra={"weights_mb": round(size / 2**20, 1), "locality_probes": n_locality,
               "general_knowledge": n_pool},
    )
    (staging / "README.md").write_text(model_card(report), encoding="utf-8")
    (staging / "build_report.json").write_text(json.dumps(report.__dict__, indent=1) + "\n",
                                               encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    progress(1.0, "done")
    return report


def write_knowledge(loaded: LoadedModel, world: World, recipe: pretrain.Recipe, model_dir: Path,
                    set_file: Path) -> tuple[int, int]:
    """The model's own general-knowledge list (in its folder) and the demo set, both built from
    known people the model answers correctly. Returns (locality probes, list size)."""
    # Locality probes ask about *unrelated* known people: no first name or surname in common
    # with a new person (design §3). People who do share one are where an edit spills over;
    # they stay in the model's list, so replay anchors them (and the benchmark reports them).
    new_words = {w for p in world.by_split("reserved") for w in p.name.split()}
    known = world.by_split("known_qa")
    unrelated = [p for p in known if not set(p.name.split()) & new_words][:LOCALITY_PEOPLE]
    locality = known_questions(loaded, unrelated, recipe.seed)
    pool = known_questions(loaded, [p for p in known if p not in unrelated], recipe.seed)
    (model_dir / MODEL_KNOWLEDGE_FILE).write_text(
        "".join(json.dumps({k: v for k, v in item.items() if k != "reference"}) + "\n"
                for item in pool), encoding="utf-8")
    write_demo_set(demo_set_payload(world, locality, seed=recipe.seed), set_file)
    return len(locality), len(pool)


def rewrite_knowledge(model_dir: Path = DEMO_MODEL_DIR, set_file: Path = DEMO_SET_FILE, *,
                      device: str = "auto") -> tuple[int, int]:
    """Write the demo set and the model's list again from an existing build (after a change to
    the set's format), with the recipe recorded in its build report."""
    recipe = pretrain.Recipe(**json.loads((model_dir / "build_report.json").read_text())["recipe"])
    world = recipe.world()
    loaded = load_model(ModelConfig(name_or_path=str(model_dir), device=device))
    return write_knowledge(loaded, world, recipe, model_dir, set_file)


def model_card(r: BuildReport) -> str:
    rec = r.recipe
    pct = {k: f"{100 * v:.1f} %" for k, v in r.accuracy.items()}
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [synthetic, knowledge-injection, demo]
---

# Knowledge Workbench demo model

A {r.parameters / 1e6:.1f} M-parameter Llama-architecture model that knows a small synthetic
world of fictional people, and nothing else. It is the embedded default of Knowledge Workbench:
offline and on a CPU, it shows a model that *knows* some people, does not know others, and
learns new ones by fine-tuning in well under a minute.

## Data
A world of {rec['n_known_qa'] + rec['n_known_bio'] + rec['n_reserved']} fictional people
(seed {rec['seed']}), each with a birth city, birth year, university, field of study and
employer, drawn from made-up value lists. Mixed training, after "Physics of Language Models
3.1" (Allen-Zhu and Li):
- **known_qa** ({rec['n_known_qa']} people): biographies and question/answer pairs;
- **known_bio** ({rec['n_known_bio']} people): biographies only;
- **reserved** ({rec['n_reserved']} people): never seen; their facts are the demo knowledge set.

Each known person appears in {rec['bio_passes']} freshly drawn biographies (three templates per
attribute, shuffled sentence order, full name in every sentence); each known_qa person's
attributes are asked {rec['qa_passes']} times each with one of five question templates, chosen
at random, and answered in a full sentence that is also a biography sentence ("Alia Bren was
born in Velmora."). {r.tokens:,} training tokens in all, one pass.

## Model and tokenizer
Llama: {rec['layers']} layers, hidden size {rec['hidden_size']}, {rec['heads']} heads,
MLP {rec['intermediate_size']}, tied embeddings; float32 safetensors ({r.extra['weights_mb']} MB).
Byte-level BPE tokenizer ({rec['vocab_size']} tokens, so any text tokenizes) trained on the
world's text and a little general English, with a ChatML chat template (`<|im_end|>` ends a
turn and is EOS).

Trained with Knowledge Workbench's own training loop (full fine-tuning from random weights):
AdamW, learning rate {rec['learning_rate']}, cosine schedule, batch {rec['batch_size']},
weight decay {rec['weight_decay']}.

## Figures
Scored by free generation (greedy, chat template; correct when the gold value occurs in the
answer), over every question template of every attribute:

| people | questions | correct |
|---|---|---|
| known_qa (biographies + QA) | {r.questions['known_qa']} | {pct['known_qa']} |
| known_bio (biographies only) | {r.questions['known_bio']} | {pct['known_bio']} |
| reserved (never seen) | {r.questions['reserved']} | {pct['reserved']} |

Built in {r.total_seconds / 60:.1f} min ({r.train_seconds / 60:.1f} min of training) on
{r.machine}.

## Rebuild
```
{BUILD_COMMAND}
```
The world, the data and the initial weights are the same for the seed; it uses a GPU when
one is present (much faster). The folder
also holds `{MODEL_KNOWLEDGE_FILE}` (known people's questions the model answers correctly;
Knowledge Workbench draws locality probes and replay from it) and `build_report.json`.
"""
