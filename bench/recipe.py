"""The evidence for the recommended recipe: injection on a real model, scored by free
generation, defaults against the alternatives.

SmolLM2-135M-Instruct (the `real` tier's model, through our GGUF import) learns 90 fictional
facts, two questions each, three relations (capital, currency, founder;
`workbench.testing.fictional_facts`). The set is prepared as `workbench inject` prepares it
(template phrasings, 2 held-out phrasings per fact, locality probes with same-relation
neighbours), once, and every variant trains on that same set:

- `default`: exactly what `workbench inject` runs (the recommended recipe, nothing changed);
- the others change one thing of it (no replay, other replay ratios, learning rates, target
  modules, ranks, epochs, located and prompt distillation, statements off, …).

For each: efficacy (the facts' own questions), held-out (phrasings never trained on),
locality (known answers still correct, of which same-relation neighbours are also shown
alone), steps, why it stopped, and the time from pressing Train to the scored result (model
load, replay screening, training, probe rounds and the final scoring; the set's preparation is
timed once, separately).

    python bench/recipe.py                      # every variant (hours on a CPU)
    python bench/recipe.py default no-replay    # some; results merge into bench/results/recipe.*
    python bench/recipe.py --rewrite            # no run: the rows' why texts as they now read
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_io import RESULTS, write_results  # noqa: E402

SCRATCH = ROOT / "test-artifacts" / "recipe-bench"
GOALS = {"efficacy": 0.97, "generalization": 0.85, "locality": 0.95, "minutes": 10.0}

# name → (overrides of the recommended config, why it is here)
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "default": ({}, "the recommended recipe, as `workbench inject` runs it"),
    "statements": ({"data.include_statements": True},
                   "statement sentences trained as well as the questions (the earlier default)"),
    "sentence-answers": ({"data.include_statements": True, "data.answer_style": "sentence"},
                         "with statements; answers said as sentences ('The capital of X is "
                         "Y.'), as a chat model replies"),
    "sentence": ({"data.answer_style": "sentence"},
                 "answers said as sentences ('The capital of X is Y.'), questions only: the "
                 "facts taught in the voice the model answers in, so that training need not "
                 "change how it answers everything else; not adopted: it kept less (88% "
                 "against 92%) and took longer"),
    "all-linear": ({"data.include_statements": True, "data.answer_style": "sentence",
                    "method.target_modules": ["all-linear"]},
                   "with statements and sentence answers, LoRA on every linear layer, as QLoRA "
                   "(Dettmers et al. 2023) advises; not adopted: it kept less"),
    "all-linear-replay-answers": ({"data.include_statements": True,
                                   "data.answer_style": "sentence",
                                   "method.target_modules": ["all-linear"],
                                   "data.replay_match": "answers", "training.min_locality": 0.0,
                                   "training.probe_every": 55},
                                  "as all-linear, with replay by cross-entropy on the base's "
                                  "answers, no locality floor (probe rounds every 55 steps)"),
    "no-shrink": ({"training.shrink_update": False},
                  "the whole learned update kept (no WiSE-FT shrink after training)"),
    "lr-1e-3": ({"training.learning_rate": 1e-3}, "half the rate"),
    "no-replay": ({"data.replay_ratio": 0.0}, "replay off (the old default)"),
    "replay-0.2": ({"data.replay_ratio": 0.2}, "a little replay"),
    "replay-0.6": ({"data.replay_ratio": 0.6},
                   "more replay, within the time budget; not adopted: it kept no more than 0.5"),
    "replay-0.7": ({"data.replay_ratio": 0.7},
                   "mostly replay; not adopted yet: it kept 94% with every fact learned (92% "
                   "under seed 1, where the default kept 87%), but its 326 steps took 15.6 "
                   "min, over the 10-minute budget"),
    "replay-0.7-weight-decay": ({"data.replay_ratio": 0.7, "training.weight_decay": 1.0},
                                "replay 0.7 with AdamW weight decay 1.0 on the adapter: "
                                "whether the two together reach 95% at any time cost; the "
                                "most kept of any setting (96%, and 93% under seed 1, where "
                                "the default kept 92% and 87%), in 17 min: not adopted while "
                                "it takes that long (weight decay now spares DoRA's "
                                "magnitudes, but would still pull a full-weight method's "
                                "weights toward zero)"),
    "attn-only": ({"method.target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
                  "LoRA on attention only; not adopted: fewer facts learned and less kept"),
    "early-half": ({"method.target_modules": [f"layers.{i}.mlp.{m}" for i in range(15)
                                              for m in ("gate_proj", "up_proj", "down_proj")]},
                   "LoRA on the MLPs of the first half of the layers only, where factual "
                   "recall is located (Meng et al. 2022); the later layers, which shape how "
                   "an answer is said, stay untouched"),
    "down-only": ({"method.target_modules": ["down_proj"]},
                  "LoRA on the MLP output projection only: one module per layer"),
    "rank-4": ({"method.lora_r": 4, "method.lora_alpha": 8.0}, "a small adapter"),
    "rank-64": ({"method.lora_r": 64, "method.lora_alpha": 128.0},
                "a large adapter; not adopted: as many facts, less kept"),
    "no-early-stop": ({"training.early_stop_patience": 0, "training.min_locality": 0.0},
                      "all epochs, no early stop (trained to convergence); the default ran all "
                      "its epochs too (no stop rule fired), so the two agree"),
    "epochs-1": ({"training.epochs": 1, "training.probe_every": 20},
                 "one epoch instead of the recipe's two (half the steps, the rate decaying "
                 "over them; recall rounds every 20 steps, ~5 as the default): a smaller "
                 "update in half the steps, if the facts are learned by then; not adopted: "
                 "it learned 36% of them (their rate gone before they took) and kept 87%, "
                 "where the default kept 90% on the same machine (`fp32`), in 11.1 min"),
    "epochs-3": ({"training.epochs": 3, "training.probe_every": 60},
                 "three epochs instead of two (recall rounds every 60 steps, ~5 as the "
                 "default), the early stop free to end it at the held-out plateau: whether "
                 "more passes over the facts cost what the model knew (Gekhman et al.); "
                 "not adopted: no rule stopped it, and it kept 90%, as the default did "
                 "on the same machine (`fp32`), in 16.8 min against 14.1"),
    "null-space": ({"training.protect_known": 0.02},
                   "the update kept out of the input directions that carry 98% of the replayed "
                   "known answers' activation energy (AlphaEdit, Fang et al. 2025); not "
                   "adopted: neighbours were kept better, but general questions outside the "
                   "replay turned to made-up words ('the first month of the year' → "
                   "'juniperotempearbrush') and fewer facts were learned"),
    "null-space-5": ({"training.protect_known": 0.05},
                     "as null-space, with the directions that carry 95% kept out; not adopted: "
                     "it kept less"),
    "located": ({"method.name": "located", "data.replay_match": "answers"},
                "one module of one layer (LocFT-BF style); full weights, so replay by "
                "cross-entropy on the base's answers"),
    "distill": ({"method.name": "prompt_distillation"},
                "prompt distillation: a student without the fact matches a teacher with it"),
    "few-anchors": ({}, "the previous default: same-relation neighbours replayed as before, 40 "
                        "asked per relation, each in one wording (23 capitals, 15 currencies, 6 "
                        "founders known), and the coarse shrink search; not adopted: 100 in two "
                        "wordings (57, 24, 13 known) kept more neighbours"),
    "coarse-shrink": ({}, "the shrink search as before: 85, 70 and 55% of the update tried, "
                          "judged on the live rounds' 64 probes; not adopted: it kept the whole "
                          "update, where steps of 5% judged on 192 probes kept 80% of it"),
    "fp32": ({"training.mixed_precision": "no"},
             "the default in fp32: where a CPU multiplies bf16 fast, mixed precision auto "
             "trains under bf16 autocast (the frozen weights' matmuls in bf16; the adapter, its "
             "gradients and optimizer in fp32), each step 1.6x faster on the AMD EPYC with "
             "AVX512-BF16; measured on a CPU without it (‡), where auto trains in fp32 anyway: "
             "the default's own scores there, 93% kept under seed 1 (`fp32-seed-1`), and the "
             "baseline for the other rows marked ‡"),
    "more-general": ({}, "general replay anchors also from a 650-question list for replay only "
                         "(310 known), each asked once instead of ~100 known ones repeated; "
                         "not adopted: it kept no more, and the base is asked 650 questions more "
                         "in the set's preparation"),
    "rslora": ({"method.name": "rslora"},
               "rsLoRA scaling (the update scaled by alpha/sqrt(r), larger at r 16); not "
               "adopted: it kept less"),
    "kl-3": ({}, "the replay rows' KL to the base weighed three times against the facts' "
                 "cross-entropy; not adopted: the facts were learned later (19% at step 80 "
                 "against 38%) and it kept less"),
    "learned-0.9": ({}, "a fact's answer token that the model already gives 90% probability "
                        "carries no loss, so facts once learned stop pulling the weights; not "
                        "adopted: it kept 0.8 of its update and 92%, as the default's own update "
                        "does at 0.8 (`bench/shrink_curve.py`)"),
    "weight-decay": ({"training.weight_decay": 1.0},
                     "AdamW weight decay 1.0 on the adapter: the update's parts that neither the "
                     "facts nor the replay hold up decay during training (about a fifth of each "
                     "adapter matrix over the run), where the shrink step scales every part "
                     "alike afterwards; not adopted: it kept 94% (97% of 48 neighbours) under seed "
                     "42 but 88% under seed 1 (`weight-decay-seed-1`), within the default's "
                     "spread between seeds"),
    "weight-decay-3": ({"training.weight_decay": 3.0},
                       "AdamW weight decay 3.0 on the adapter: as `weight-decay`, stronger; not "
                       "adopted: it kept less (92%), and its smaller update could not be "
                       "shrunk (the facts went at 0.85)"),
    "replay-0.7-weight-decay-240": ({"data.replay_ratio": 0.7, "training.weight_decay": 1.0,
                                     "training.max_steps": 240, "training.probe_every": 50},
                                    "as `replay-0.7-weight-decay`, its schedule cut to 240 "
                                    "steps (it had every fact by step 200-240 of 326) and 5 "
                                    "recall rounds: whether it fits 10 minutes; not adopted: "
                                    "with the rate decaying sooner the facts were learned less "
                                    "(90% at step 240, where the full schedule had 100%), the "
                                    "shrink kept 0.85 and 92% was kept, in 12.5 min"),
    "seed-1": ({"training.seed": 1}, "the default with another seed (adapter initialisation "
                                     "and batch order): the spread of one recipe between runs "
                                     "(measured before neighbours' repeats were capped: "
                                     "`repeats-2-seed-1` is the present default's); "
                                     "its steps, as many tokens as the default's, ran at 182 "
                                     "tokens/s against the default's 207 measured 12 minutes "
                                     "later: the machine's speed, not the seed's"),
    "dora": ({"method.name": "dora"},
             "DoRA (a learned magnitude per output); not adopted: within 2 points of the "
             "default's locality, slower, and the shrink step cannot scale its update"),
    "rank-8": ({"method.lora_r": 8, "method.lora_alpha": 16.0},
               "half the default's rank (alpha 2·r): fewer directions for the update to move "
               "what the facts do not need; not adopted: it learned fewer facts (96%, 80% at "
               "step 120 against 95%), its update could not be shrunk (they went at 0.85) and "
               "it kept less"),
    "warmup-0.2": ({"training.warmup_ratio": 0.2},
                   "a fifth of the steps warming the rate up instead of 5%: a fresh AdamW's "
                   "first steps are full-size in every direction; not adopted: no gain "
                   "(100/98/92% against the default's 99/99/92%; its steps ran at 188 "
                   "tokens/s, the default's at 207)"),
    "repeats-2": ({}, "each known neighbour question replayed at most twice, the rest of "
                      "its relation's part general knowledge: the neighbours the run lost were "
                      "answered with the most repeated anchors' answers ('Who founded Amazon?' "
                      "→ 'Elon Musk', SpaceX's founder, 14 of the 780 replay rows); "
                      "adopted: 95% and 90% kept under two seeds, where the default then kept "
                      "92% and 87% (`repeats-uncapped`, `seed-1`)"),
    "repeats-uncapped": ({}, "the previous default: a relation's known neighbours repeated to "
                             "fill its part of the replay (each of 13 known founders ~10 times)"),
    "adam-eps-1e-4": ({}, "AdamW's epsilon 1e-4 instead of 1e-8, near the median of its "
                          "gradients' running scale: parameters the facts barely pull get "
                          "damped steps instead of full-size ones, the rest as before; not "
                          "adopted: the facts were learned later (66% at step 120, against "
                          "95%), the update could not be shrunk (they went at 0.85) and it "
                          "kept less (its steps ran at 190 tokens/s, the default's at 207: "
                          "its time is the machine's as much as its own)"),
    "repeats-2-weight-decay": ({"training.weight_decay": 1.0},
                               "`weight-decay` with neighbours' repeats capped as the default "
                               "caps them: the two measured together; not adopted: it kept "
                               "91% under both seeds, where the default kept 90% and 93% on "
                               "the same machine (`fp32`, `fp32-seed-1`)"),
    "repeats-2-more-general": ({}, "`more-general` with neighbours' repeats capped as the "
                                   "default caps them: the founders' freed rows go to "
                                   "distinct general anchors instead of repeats; not adopted: "
                                   "it kept 90%, as the default did on the same machine "
                                   "(`fp32`), and took 1.7 min longer (more distinct replay "
                                   "rows for the base's KL targets)"),
    "wordings-3": ({}, "each known neighbour asked and replayed in three wordings instead of "
                       "two (its own and two template paraphrases): more distinct anchors in "
                       "the forms the facts are trained in, at no step more; not adopted: "
                       "it kept 89% (85% of 48 neighbours), the default 90% (87%) on the same "
                       "machine (`fp32`)"),
    "balanced": ({}, "replay dealt into every step at the run's share (8 of 16 at 0.5), "
                     "each part sorted by length on its own: sorted together, the longer "
                     "replayed answers gather in steps of their own (21 of 98 steps all "
                     "replay, 34 at most 30%), and the fact-heavy steps push the update "
                     "unopposed; not adopted: it kept 91% and 82% under two seeds "
                     "(`balanced-seed-1`: the facts came later, the whole update kept), the "
                     "default 90% and 93% on the same machine (`fp32`, `fp32-seed-1`), and "
                     "its steps padded 6% more tokens"),
    "repeats-2-replay-0.7-weight-decay": (
        {"data.replay_ratio": 0.7, "training.weight_decay": 1.0},
        "`replay-0.7-weight-decay` with neighbours' repeats capped as the default caps them: "
        "the most-kept setting measured again on the present default, whether it is worth "
        "its 1.7x steps where steps are cheap (a GPU); not adopted: it kept 87% and 96% under "
        "two seeds (`repeats-2-replay-0.7-weight-decay-seed-1`), the default 90% and 93% on "
        "the same machine (`fp32`, `fp32-seed-1`): the same mean, a wider spread, and its "
        "update, smaller under weight decay, could not be shrunk under seed 42 (the facts "
        "went at 0.8)"),
    "question-kl": ({}, "replay's KL to the base also at the replayed question's own tokens "
                        "(LwF-style), not only at its answer: it holds what the model makes of "
                        "a question, where an edit's spill-over onto questions of its form "
                        "starts; not adopted: it kept 91% and 89% under two seeds "
                        "(`question-kl-seed-1`), the default 90% and 93% on the same machine "
                        "(`fp32`, `fp32-seed-1`), and took ~1 min longer (the head and the "
                        "base's targets at ~12 more positions per replay row)"),
    "same-replay": ({}, "the previous default: one epoch's replay, the same rows in every "
                        "epoch (`replay.FRESH_EPOCHS` 1), where the default deals twice an "
                        "epoch's replay over its two epochs; kept 95% and 90% under two seeds "
                        "(`repeats-2-seed-1` is its run under seed 1), the default 94% and "
                        "90%: the same on this set, whose one epoch's replay already holds "
                        "every known anchor (its times were taken the day before: this "
                        "machine's speed varies); on a 6-fact set, trained 12 epochs, it kept "
                        "90% and 86%, the default 96% and 93% (`bench/results/small_set.md`)"),
    "lora-dropout-0.1": ({"method.lora_dropout": 0.1},
                         "dropout 0.1 on the adapter's input, as QLoRA (Dettmers et al. 2023) "
                         "trains models under 13B: an update that must hold with a tenth of "
                         "its inputs dropped leans on no few of them; not adopted: it kept "
                         "94% and 90% under two seeds (`lora-dropout-0.1-seed-1`), as the "
                         "default did (94%, 90%), 416 of 468 final answers the same as the "
                         "default's under each seed"),
    "activation-10": ({}, "the adapted layers' relative output change (‖ΔW x‖² / ‖W x‖²) at "
                          "the replayed rows' tokens penalised, weight 10 "
                          "(`replay.ACTIVATION_WEIGHT`, `activation_anchor`): AlphaEdit's "
                          "null space as a soft penalty, where the projection (`null-space`) "
                          "broke general questions; the default's update moves each layer's "
                          "output at locality questions nearly as much as at the facts' own "
                          "(`bench/results/update_reach.md`); not adopted: it moved them 8x "
                          "less, every fact learned, but the distributions along the base's "
                          "answers there only 1.3x less (KL), and it kept 92% against the "
                          "default's 94%"),
    "activation-100": ({}, "as `activation-10`, weight 100; not adopted: the layers' change "
                           "at locality questions 28x smaller than the default's, the answers "
                           "there moved 1.4x less (KL), and it kept 92% and 89% under two seeds "
                           "(`activation-100-seed-1`), the default 94% and 90%: a known "
                           "answer's loss is not carried by how far the layers move at its "
                           "question"),
    "kl-0.5": ({}, "the replay rows' KL to the base weighed half against the facts' "
                   "cross-entropy: the other side of `kl-3`, which learned the facts "
                   "later and kept less; whether facts learned sooner leave an update "
                   "the shrink step can cut further; not adopted: it kept 88% (the default "
                   "94% under the same seed), every fact learned, and the shrink step kept "
                   "0.8 of its update, as the default's"),
    "reverse-kl": ({}, "replay's divergence taken as KL(tuned ‖ base) instead of KL(base ‖ "
                       "tuned) (`replay.KL_REVERSE_SHARE` 1): the forward KL charges mass "
                       "put where the base put almost none ~its size, the reverse that "
                       "size times its log-ratio, and a third of the first-token mass the "
                       "default moves at locality questions goes to the first tokens of the "
                       "set's made-up answers; not adopted: that part fell from 0.037 to "
                       "0.025, the mass moved did not (0.113, to 'The' instead), and it kept "
                       "92%, the default 94% under the same seed "
                       "(`bench/results/replay_hold.md`)"),
    "reverse-kl-0.5": ({}, "as `reverse-kl`, half of the divergence each way; not adopted: "
                           "94% and 87% under two seeds (`reverse-kl-0.5-seed-1`), the "
                           "default 94% and 90%"),
    "sharpen-0.5": ({}, "replay's target the base's distribution at temperature 0.5 "
                        "(`replay.TARGET_TEMPERATURE`): known answers taught with twice the "
                        "base's margins, so that the rest of the update cannot turn them (the "
                        "default's adapter keeps 86% of its own 223 replayed questions' "
                        "answers, which the base gave once, against 94% of the locality "
                        "probes, which it gives under three prompts); not adopted: it kept "
                        "92% of the replayed and 90% of the locality probes"),
    "sharpen-0.25": ({}, "as `sharpen-0.5`, temperature 0.25; not adopted: 95% of the "
                         "replayed questions kept, 90% of the locality probes: holding the "
                         "replayed answers harder holds no more of the rest "
                         "(`bench/results/replay_hold.md`)"),
    "probes-replayed": ({}, "a bound, not a recipe: the 108 locality probes themselves "
                            "replayed (each once an epoch, in place of as many drawn rows, "
                            "so the steps are the default's): what replay holds of the "
                            "answers it is given; it kept 92% and 87% of them under two "
                            "seeds, the default 94% and 90% without them: of the 14 lost "
                            "under seed 1, 12 were near coin flips for the base (margin "
                            "under 0.25 nats), and 'The capital of India is' went on to "
                            "'Mumbai' on the very prefix replay held (a near tie turned "
                            "costs a distribution match almost nothing)"),
    "replay-answers": ({"data.replay_match": "answers"},
                       "replay by cross-entropy on the base's answers instead of matched in "
                       "distribution: what held the locality probes themselves at 99% and "
                       "97% (`probes-trained`), on the replayed anchors; whether holding "
                       "them so holds the rest; not adopted: it kept 84% (the default 94% "
                       "under the same seed), 22% of the answers unchanged against 34%: "
                       "cross-entropy holds the answers it is given and lets the rest of "
                       "the distribution go, as under the earlier recipe (72% against 79%, "
                       "`all-linear-replay-answers`)"),
    "probes-trained": ({}, "a bound, not a recipe: as `probes-replayed`, the probes trained "
                           "as the facts are (cross-entropy on the base's answer) instead of "
                           "matched in distribution: whether an answer that must survive is "
                           "kept when it is added to the set as a fact; it kept 99% and 97% "
                           "of them under two seeds (the verdict's advice now says so)"),
}


def _another_seed(name: str, note: str = "") -> tuple[dict[str, Any], str]:
    """Variant `name` under seed 1 (adapter initialisation and batch order), its overrides
    taken from it: the spread of one setting between runs, which one run cannot show."""
    return (VARIANTS[name][0] | {"training.seed": 1},
            f"`{name}` with another seed: its spread between runs{note}")


VARIANTS |= {
    "repeats-2-seed-1": _another_seed("repeats-2"),
    "repeats-2-weight-decay-seed-1": _another_seed("repeats-2-weight-decay"),
    "fp32-seed-1": _another_seed("fp32"),
    "balanced-seed-1": _another_seed("balanced"),
    "replay-0.7-seed-1": _another_seed("replay-0.7", " (92% here, the default 87% under the "
                                                     "same seed)"),
    "replay-0.7-weight-decay-seed-1": _another_seed("replay-0.7-weight-decay"),
    "repeats-2-replay-0.7-weight-decay-seed-1":
        _another_seed("repeats-2-replay-0.7-weight-decay"),
    "question-kl-seed-1": _another_seed("question-kl"),
    "default-seed-1": _another_seed("default"),
    "default-seed-2": (VARIANTS["default"][0] | {"training.seed": 2},
                       "`default` with a third seed: its spread between runs (its "
                       "answers the base was sure of: 43 of 46, the capitals of Croatia and "
                       "Cuba and the Czech koruna lost)"),
    "default-seed-3": (VARIANTS["default"][0] | {"training.seed": 3},
                       "`default` with a fourth seed: its spread between runs (its "
                       "answers the base was sure of: 45 of 46, Croatia's capital lost, as "
                       "by every run of the default)"),
    "lora-dropout-0.1-seed-1": _another_seed("lora-dropout-0.1"),
    "activation-100-seed-1": _another_seed("activation-100"),
    "reverse-kl-0.5-seed-1": _another_seed("reverse-kl-0.5"),
    "probes-replayed-seed-1": _another_seed("probes-replayed"),
    "probes-trained-seed-1": _another_seed("probes-trained"),
    "weight-decay-seed-1": _another_seed("weight-decay", " (its 196 steps took 8.8 min here, "
                                                         "seed 42's 7.1: this machine's speed "
                                                         "varies)"),
}

# Variants that change a constant of the code rather than a setting: name → {module.NAME: value}
CONSTANTS: dict[str, dict[str, Any]] = {
    "few-anchors": {"workbench.core.train.replay.MAX_ASKED": 40,
                    "workbench.core.train.replay.WORDINGS_PER_NEIGHBOUR": 1,
                    "workbench.core.train.shrink.SHARES": [0.85, 0.7, 0.55]},
    "more-general": {"workbench.core.train.replay.MORE_GENERAL": True},
    "kl-3": {"workbench.core.train.replay.KL_WEIGHT": 3.0},
    "kl-0.5": {"workbench.core.train.replay.KL_WEIGHT": 0.5},
    "reverse-kl": {"workbench.core.train.replay.KL_REVERSE_SHARE": 1.0},
    "reverse-kl-0.5": {"workbench.core.train.replay.KL_REVERSE_SHARE": 0.5},
    "reverse-kl-0.5-seed-1": {"workbench.core.train.replay.KL_REVERSE_SHARE": 0.5},
    "sharpen-0.5": {"workbench.core.train.replay.TARGET_TEMPERATURE": 0.5},
    "sharpen-0.25": {"workbench.core.train.replay.TARGET_TEMPERATURE": 0.25},
    "learned-0.9": {"workbench.core.train.head_loss.LEARNED_P": 0.9},
    "coarse-shrink": {"workbench.core.train.shrink.SHARES": [0.85, 0.7, 0.55]},
    "adam-eps-1e-4": {"workbench.core.train.loop.ADAM_EPS": 1e-4},
    "repeats-2": {"workbench.core.train.replay.MAX_REPEATS": 2},
    "repeats-2-seed-1": {"workbench.core.train.replay.MAX_REPEATS": 2},
    "repeats-uncapped": {"workbench.core.train.replay.MAX_REPEATS": None},
    "repeats-2-more-general": {"workbench.core.train.replay.MORE_GENERAL": True},
    "wordings-3": {"workbench.core.train.replay.WORDINGS_PER_NEIGHBOUR": 3},
    "balanced": {"workbench.core.train.batching.BALANCED": True},
    "balanced-seed-1": {"workbench.core.train.batching.BALANCED": True},
    "question-kl": {"workbench.core.train.replay.QUESTION_KL": True},
    "question-kl-seed-1": {"workbench.core.train.replay.QUESTION_KL": True},
    "same-replay": {"workbench.core.train.replay.FRESH_EPOCHS": 1},
    "activation-10": {"workbench.core.train.replay.ACTIVATION_WEIGHT": 10.0},
    "activation-100": {"workbench.core.train.replay.ACTIVATION_WEIGHT": 100.0},
    "activation-100-seed-1": {"workbench.core.train.replay.ACTIVATION_WEIGHT": 100.0},
}


def constants(name: str) -> AbstractContextManager[None]:
    """The variant's constants set for the length of its run, then put back."""
    if name in PROBES_REPLAYED:
        return probes_replayed(as_facts=PROBES_REPLAYED[name])
    return constants_set(CONSTANTS.get(name, {}))


# Bounds rather than recipes: the run trains on the very locality probes it is scored on.
# name → whether they are trained as facts (cross-entropy) rather than replayed (KL).
PROBES_REPLAYED = {"probes-replayed": False, "probes-replayed-seed-1": False,
                   "probes-trained": True, "probes-trained-seed-1": True}


@contextmanager
def probes_replayed(*, as_facts: bool = False) -> Iterator[None]:
    """For the length of a run, replay also holds the set's locality probes: each once per
    epoch's part, the base's own answer as its target (matched in distribution as replay is,
    or as a fact's answer with `as_facts`), in place of as many rows the draw chose at random
    (the replay's size, and so the run's steps, unchanged). No recipe may do this (locality
    would be scored on what it trained on); it bounds what a run holds of the answers it is
    given."""
    import random

    from workbench.core.knowledge.render import Example
    from workbench.core.train import probing, replay

    draw = replay.replay_examples

    def with_probes(store: Any, sid: int, loaded: Any, n: int, *, turns: int = 1,
                    seed: int = 0, **rest: Any) -> list[Any]:
        examples = draw(store, sid, loaded, n, turns=turns, seed=seed, **rest)
        probes = [i for i in probing.probe_items(store, sid, locality=True)
                  if i.metric == "locality"]
        rng = random.Random(seed)
        for turn in ([None] if turns == 1 else range(turns)):
            places = [k for k, e in enumerate(examples) if e.turn == turn]
            for k, item in zip(rng.sample(places, min(len(places), len(probes))), probes):
                examples[k] = Example("qa", item.question, replay.complete_answer(
                    item.reference, item.answer, item.aliases), replay=not as_facts,
                    turn=turn)
        return examples

    replay.replay_examples = with_probes
    try:
        yield
    finally:
        replay.replay_examples = draw


@contextmanager
def constants_set(values: dict[str, Any]) -> Iterator[None]:
    """Each `module.NAME` in `values` set to its value for the length of a run, then put
    back (a variant that changes a constant of the code rather than a setting)."""
    saved = []
    for path, value in values.items():
        module, attr = path.rsplit(".", 1)
        target = importlib.import_module(module)
        saved.append((target, attr, getattr(target, attr)))
        setattr(target, attr, value)
    try:
        yield
    finally:
        for target, attr, value in saved:
            setattr(target, attr, value)


def prepare(model: Path, scratch: Path = SCRATCH, name: str = "fictional",
            facts: list[dict[str, str]] | None = None) -> tuple[Any, Any, float, dict[str, int]]:
    """The workspace under `scratch` with the set `name` of `facts` (the 90 fictional ones
    by default) prepared as `workbench inject` prepares it (reused between invocations when
    present)."""
    from workbench.core.config import ModelConfig
    from workbench.core.inject import prepare as prepare_set
    from workbench.core.knowledge import sets, transfer
    from workbench.core.models import load_model
    from workbench.core.store import Store
    from workbench.core.workspace import resolve_workspace
    from workbench.testing import fictional_facts, write_facts_csv

    meta = scratch / "prepared.json"
    if not meta.is_file():  # a preparation cut short left half a set: start it again
        shutil.rmtree(scratch / "ws", ignore_errors=True)
    ws = resolve_workspace(scratch / "ws")
    store = Store(ws.db_path)
    if meta.is_file():
        saved = json.loads(meta.read_text())
        return ws, store, saved["seconds"], saved["counts"]
    csv = write_facts_csv(scratch / "facts.csv", facts or fictional_facts())
    started = time.perf_counter()
    loaded = load_model(ModelConfig(name_or_path=str(model), device="cpu"))
    with sets.ensuring_set(store, name) as sid:
        transfer.import_path(store, sid, csv)
    counts = prepare_set(store, sid, loaded, stage=lambda stage: lambda f, m: None)
    seconds = time.perf_counter() - started
    meta.write_text(json.dumps({"seconds": seconds, "counts": counts}))
    return ws, store, seconds, counts


def ask_replay_pool(store: Any, cfg: Any) -> int:
    """The base model's answers to the replay pool, as the set's preparation asks them before
    any run (`inject.prepare`): a workspace prepared before the pool grew has them only in
    part, and asking them is not part of pressing Train. Cached: seconds when all are there.
    Returns the model's parameter count."""
    from workbench.core.knowledge import probes, sets
    from workbench.core.models import load_model
    from workbench.core.train import replay

    sid = sets.set_id(store, cfg.data.knowledge_set)
    loaded = load_model(cfg.model)
    replay.replay_examples(store, sid, loaded, len(probes.training_phrasings(store, sid)),
                           turns=replay.FRESH_EPOCHS)
    return loaded.parameters


def precision(cfg: Any, params: int, ws: Any) -> str:
    """What the run trains in: mixed precision as the run settles it."""
    from workbench.core.train.calibration import CALIBRATION_FILE
    from workbench.core.train.run import settled_precision

    mixed = settled_precision(cfg, "cpu", params, ws.root / CALIBRATION_FILE).mixed_precision
    return "fp32" if mixed == "no" else mixed


def run_variant(name: str, ws: Any, store: Any, model: Path) -> dict[str, Any]:
    from workbench.core.inject import recommended_config
    from workbench.core.train import history, probing, replay, shrink, tracker
    from workbench.core.train.run import create_run, execute_run

    overrides, why = VARIANTS[name]
    cfg = recommended_config(store, "fictional", str(model), device="cpu")
    cfg = cfg.with_values({**overrides, "name": f"recipe bench: {name}"})
    run_id = create_run(store, ws, cfg)
    with constants(name):
        trained_in = precision(cfg, ask_replay_pool(store, cfg), ws)
        started = time.perf_counter()
        summary = execute_run(store, ws, run_id)
        anchors = {"per_relation": replay.MAX_ASKED, "wordings": replay.WORDINGS_PER_NEIGHBOUR}
        fresh = replay.FRESH_EPOCHS
        searched = {"shares": list(shrink.SHARES), "judged_on": "a question per fact and metric",
                    "probes": tracker.SEARCH_PROBES}
    seconds = time.perf_counter() - started
    step = history.last_probed_step(store, run_id)
    neighbours = store.db.execute(
        "SELECT avg(r.correct), count(*) FROM probe_results r JOIN probes p ON p.id = r.probe_id "
        "WHERE r.run_id = ? AND r.step = ? AND p.kind = 'neighbour'", [run_id, step]).fetchone()
    hooked = ({"bench.recipe.probes_replayed": "as facts" if PROBES_REPLAYED[name] else
               "replayed"} if name in PROBES_REPLAYED else {})
    return {"variant": name, "why": why,
            "overrides": overrides | CONSTANTS.get(name, {}) | hooked,
            "run": run_id, "anchors": anchors, "shrink": searched, "precision": trained_in,
            "consistent_locality": True, "fresh_epochs": fresh,
            "status": summary.status, "steps": summary.steps, "scores": summary.scores,
            "neighbours_kept": neighbours[0], "neighbours": neighbours[1],
            "sure_kept": list(probing.kept_of_sure(store, run_id, step)),
            "stopped_early": summary.stopped_early, "seconds": seconds,
            "config": {k: v for k, v in cfg.to_dict()["training"].items()
                       if k in ("learning_rate", "epochs", "micro_batch_size")}
            | {"replay_ratio": cfg.data.replay_ratio, "method": cfg.method.name,
               "lora_r": cfg.method.lora_r, "shrink_update": cfg.training.shrink_update}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT",
                        help=f"any of: {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--rewrite", action="store_true",
                        help="run nothing: rewrite the results with each row's why as it now "
                             "reads here (after a variant's result has been learned), and what "
                             "each run still in the bench's workspace kept of the answers the "
                             "base was sure of, where its row lacks it")
    args = parser.parse_args()
    if args.rewrite:
        rewrite()
        return
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    args.variants = args.variants or list(VARIANTS)
    from workbench.demo.build import machine_summary
    from workbench.realmodel import smollm2_folder

    model = smollm2_folder()
    ws, store, prep_s, counts = prepare(model)
    path = RESULTS / "recipe.json"
    result = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    # Results of variants no longer defined (an earlier recipe's) are not evidence for this one.
    result["runs"] = {k: v for k, v in result["runs"].items() if k in VARIANTS}
    for row in result["runs"].values():  # rows from before machines were kept per row
        row.setdefault("machine", result.get("machine"))
        row.setdefault("date", result.get("date"))
    machine = machine_summary("cpu") + bf16_emulated(ws)
    for name in args.variants:
        print(f"--- {name}", flush=True)
        result["runs"][name] = run_variant(name, ws, store, model) | {
            "machine": machine, "date": str(date.today())}
        result.update(date=str(date.today()), machine=result["runs"].get(
            "default", result["runs"][name])["machine"], goals=GOALS)
        if result["machine"] == machine or "prepare_seconds" not in result:
            result.update(prepare_seconds=prep_s, prepared=counts)  # the header's machine's
        write_results("recipe", result, markdown(result))  # after each: partial runs count


# Added to a machine whose CPU's bf16 matmuls are too slow for autocast (`bf16_emulated`).
EMULATED = ", bf16 emulated (trains in fp32)"


def bf16_emulated(ws: Any) -> str:
    """EMULATED where this CPU's bf16 matmuls are too slow for autocast, so the recipe trains
    a model of the bench's size in fp32 (~1.7x the step time): such a machine is another
    machine for the table's times, whatever its CPU's name, and its scores come from other
    arithmetic."""
    from workbench.core.train.calibration import BF16_MIN_PARAMS, CALIBRATION_FILE, cpu_autocast

    autocast, _ = cpu_autocast(BF16_MIN_PARAMS, ws.root / CALIBRATION_FILE)
    return "" if autocast == "bf16" else EMULATED


def rewrite() -> None:
    """The committed results with every row's why taken from VARIANTS: a why records what a
    variant's result taught, which is known only after it ran."""
    path = RESULTS / "recipe.json"
    result = json.loads(path.read_text())
    for name, row in result["runs"].items():
        if name in VARIANTS:
            row["why"] = VARIANTS[name][1]
        if "sure_kept" not in row and (found := _sure_kept_stored(row)):
            row["sure_kept"] = found
    write_results("recipe", result, markdown(result))


def _sure_kept_stored(row: dict[str, Any]) -> list[int] | None:
    """[kept, asked] over the answers the base was sure of, read from the row's run where the
    bench's workspace still holds it: the same run only if its stored final scores are the
    row's (a new workspace numbers its runs from 1 again) and its probes' margins were
    measured."""
    from workbench.core.store import Store
    from workbench.core.train import history, probing

    db = SCRATCH / "ws" / "workbench.db"
    if not db.is_file():
        return None
    store = Store(db)
    stored = history.last_scores(store, run_id=row["run"]).get(row["run"], {})
    if any(abs(stored.get(k, -1) - v) > 1e-9 for k, v in row["scores"].items()):
        return None
    step = history.last_probed_step(store, row["run"])
    kept, asked = probing.kept_of_sure(store, row["run"], step)
    return [kept, asked] if asked else None


def _goals(v: dict[str, Any]) -> list[tuple[str, bool]]:
    s = v["scores"]
    return [(f"efficacy ≥{GOALS['efficacy']:.0%}", s.get("efficacy", 0) >= GOALS["efficacy"]),
            (f"held-out ≥{GOALS['generalization']:.0%}",
             s.get("generalization", 0) >= GOALS["generalization"]),
            (f"locality ≥{GOALS['locality']:.0%}", s.get("locality", 0) >= GOALS["locality"]),
            (f"≤{GOALS['minutes']:.0f} min", v["seconds"] / 60 <= GOALS["minutes"])]


class RecordedRun(NamedTuple):
    """A recorded variant's run, for the scripts that re-score or continue it
    (`shrink_curve.py`, `update_parts.py`, `repair_phase.py`)."""

    run_id: int
    workspace: Any  # the bench's Workspace
    store: Any
    cfg: Any  # the run's RunConfig
    set_id: int
    items: list[Any]  # every probe of the bench set, locality included
    adapter: Path  # the adapter the run saved


def recorded_run(variant: str) -> RecordedRun:
    from workbench.core.config import RunConfig
    from workbench.core.data import runs
    from workbench.core.knowledge import sets
    from workbench.core.store import Store
    from workbench.core.train import probing
    from workbench.core.workspace import resolve_workspace

    run_id = json.loads((RESULTS / "recipe.json").read_text())["runs"][variant]["run"]
    ws = resolve_workspace(SCRATCH / "ws")
    store = Store(ws.db_path)
    cfg = RunConfig.from_run(runs.get(store, run_id))
    sid = sets.set_id(store, cfg.data.knowledge_set)
    return RecordedRun(run_id, ws, store, cfg, sid, probing.probe_items(store, sid, locality=True),
                       ws.run_dir(run_id) / "adapter")


def score_every_probe(loaded: Any, model: Any, items: list[Any]) -> dict[str, Any]:
    """Share correct per metric by free generation, and the locality questions answered wrong."""
    from workbench.core.train import probing

    model.eval()
    marked = probing.marks(items, probing.ask_items(loaded, model, items))
    return probing.shares(marked) | {
        "lost": [i.question for i, (metric, m) in zip(items, marked)
                 if metric == "locality" and not m.correct]}


def _pct(value: float | None) -> str:
    from workbench.core.scoring import percent

    return percent(value)  # rounded down, as everywhere else


def _earlier(v: dict[str, Any]) -> str:
    """A time measured before a micro-batch's shared chat start was computed once (each step
    then took ~1.2x as long): marked, since it is not comparable with the others."""
    return " (before shared starts)" if v.get("before_shared_prefix") else ""


def _elsewhere(v: dict[str, Any], r: dict[str, Any]) -> str:
    """A time taken on another machine than the default's, marked with that machine's sign
    (`_machines`): CPUs differ by 2x and more on this workload, so only times from one
    machine compare. Also the same setting's time on another machine, where it was taken."""
    marks = _machines(r)
    mark = f" {marks[v['machine']]}" if v["machine"] in marks else ""
    also = "".join(f"; {x['seconds'] / 60:.1f} min {marks.get(x['machine'], '')}".rstrip()
                   for x in v.get("elsewhere", []))
    note = f" ({v['note']})" if v.get("note") else ""
    return f"{mark}{f' ({also[2:]})' if also else ''}{note}"


def _machines(r: dict[str, Any]) -> dict[str, str]:
    """A sign for each machine other than the default's that took a time in the table."""
    others = [v["machine"] for v in r["runs"].values()] + [
        x["machine"] for v in r["runs"].values() for x in v.get("elsewhere", [])]
    signs = "†‡§¶"
    found = list(dict.fromkeys(m for m in others if m != r["machine"]))
    return {m: signs[i % len(signs)] * (1 + i // len(signs)) for i, m in enumerate(found)}


def _measured_before(v: dict[str, Any]) -> str:
    """What an older row was measured with: before the recipe shrank the update after
    training, and before locality probes had to be right under every prompt (its locality
    counts every once-right answer, 106 probes then, and is lower for that alone)."""
    older = [] if "shrink_update" in v["config"] else ["before the shrink step"]
    if not v.get("consistent_locality"):
        older.append("locality over every once-right answer")
    if "anchors" not in v:
        older.append("with 40 neighbours per relation replayed, in one wording")
    if "shrink" not in v and "shrink_update" in v["config"] and "shrink" not in v["variant"]:
        older.append("with the coarse shrink search")
    elif "judged_on" not in v.get("shrink", {"judged_on": ""}) and v["config"].get("shrink_update"):
        older.append("with the share kept chosen by a sample's locality")
    if "precision" not in v and v["variant"] != "fp32":
        older.append("in fp32")
    if v.get("shrink", {}).get("judged_on") == "facts" and v["config"].get("shrink_update"):
        older.append("with the shrink search on every fact probe")
    if v.get("fresh_epochs", 1) == 1 and v["variant"] != "same-replay":
        older.append("with one epoch's replay in every epoch")
    return f" (measured {'; '.join(older)})" if older else ""


def _sure_kept(r: dict[str, Any]) -> list[str]:
    """Locality over the answers the base was sure of, for the rows that measured it: apart
    from the coin flips that any update of a trained one's size turns (update_parts.md,
    known_margins.md)."""
    from workbench.core.knowledge.certainty import SURE

    rows = [(name, v) for name, v in r["runs"].items() if v.get("sure_kept", [0, 0])[1]]
    if not rows:
        return []
    lines = ["", "## Over the answers the base was sure of", "",
             f"Locality counted over the locality probes whose base margin (the smallest "
             f"log-probability gap between the base's answer token and the best other one, "
             f"`workbench/core/knowledge/certainty.py`) is at least {SURE:g} nats, where the "
             "set's screening measured it. No random update of a trained one's size lost such "
             "an answer (`bench/results/known_margins.md`): these are what a run damaged.", "",
             "| variant | locality | over the answers the base was sure of |", "|---|---|---|"]
    lines += [f"| {name} | {_pct(v['scores'].get('locality'))} | "
              f"{_pct(v['sure_kept'][0] / v['sure_kept'][1])} ({v['sure_kept'][0]} of "
              f"{v['sure_kept'][1]}) |" for name, v in rows]
    return lines


def seed_pairs(r: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(setting, locality under seed 42, under seed 1) for each setting recorded under both
    seeds on one machine and with one measure (`_measured_before`); not the bounds, which
    train on the probes locality is scored on (`PROBES_REPLAYED`)."""
    pairs = []
    for name, v in r["runs"].items():
        w = r["runs"].get(f"{name}-seed-1")
        if (w and name not in PROBES_REPLAYED and v["machine"] == w["machine"]
                and _measured_before(v) == _measured_before(w)):
            pairs.append((name, v["scores"]["locality"], w["scores"]["locality"]))
    return pairs


def _seed_spread(r: dict[str, Any]) -> list[str]:
    """How far one setting's locality moves between two seeds (adapter initialisation and
    batch order), from the recorded pairs: the noise any candidate must beat. Two runs of one
    setting differ by d with variance 2σ², so a run's own spread σ is the pairs' root mean
    square d over √2; part of it is the probe count alone (binomial, at the pairs' mean)."""
    pairs = seed_pairs(r)
    if len(pairs) < 2:
        return []
    rms = (sum((a - b) ** 2 for _, a, b in pairs) / len(pairs)) ** 0.5
    sigma = rms / 2 ** 0.5
    mean = sum(a + b for _, a, b in pairs) / (2 * len(pairs))
    probes = r["prepared"]["kept_general"] + r["prepared"]["kept_neighbours"]  # locality's
    binomial = (mean * (1 - mean) / probes) ** 0.5
    lines = ["", "## Locality between two seeds", "",
             "| setting | seed 42 | seed 1 | difference |", "|---|---|---|---|"]
    lines += [f"| {name} | {_pct(a)} | {_pct(b)} | {abs(a - b) * 100:.1f} points |"
              for name, a, b in pairs]
    lines += ["", f"Over these {len(pairs)} settings, one run's locality lies about "
              f"{sigma * 100:.1f} points (one standard deviation) from its setting's mean "
              f"(the pairs' root-mean-square difference, {rms * 100:.1f} points, over √2); "
              f"the {probes} probes alone would give {binomial * 100:.1f} (binomial, at the "
              f"pairs' mean of {mean:.0%}). So a setting whose mean is {mean:.0%} keeps ≥95% "
              "under a given seed by chance; keeping it under each of two seeds nine times in "
              f"ten (each one √0.9 = 0.95: 1.64 σ) takes a mean of ~{95 + 164 * sigma:.0f}% at "
              "this spread (it narrows as the mean nears 100%). A candidate differing from the "
              f"default by less than ~{sigma * 100:.0f} points on one seed has shown nothing: "
              "candidates are judged by both seeds against the default's two runs on the same "
              "machine."]
    return lines


def markdown(r: dict[str, Any]) -> str:
    order = [n for n in VARIANTS if n in r["runs"]]
    lines = [
        "# The recipe on a real model: SmolLM2-135M-Instruct, 90 fictional facts × 2 questions",
        "",
        f"{r['machine']}; {r['date']}. Scored by free generation (greedy, chat template, first "
        "line). Goals for `default`: efficacy ≥97%, held-out ≥85%, locality ≥95%, ≤10 min from "
        "pressing Train to the scored result. `python bench/recipe.py [VARIANT…]`.",
        "",
        f"Set preparation (import, phrasings, held-out split, locality with neighbours), once: "
        f"{r['prepare_seconds'] / 60:.1f} min; {r['prepared']}.",
        "",
        "| variant | what changes | efficacy | held-out | locality (neighbours) | steps | "
        "Train → scored | stopped because |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        v = r["runs"][name]
        s = v["scores"]
        lines.append(
            f"| {name} | {v['why']}{_measured_before(v)} | {_pct(s.get('efficacy'))} | "
            f"{_pct(s.get('generalization'))}"
            f" | {_pct(s.get('locality'))} ({_pct(v['neighbours_kept'])} of {v['neighbours']}) | "
            f"{v['steps']} | {v['seconds'] / 60:.1f} min{_earlier(v)}{_elsewhere(v, r)} | "
            f"{v['stopped_early'] or 'all epochs'} |")
    if "default" in r["runs"]:
        lines += ["", "Goals met by `default`: " + ", ".join(
            f"{label} {'yes' if ok else 'no'}" for label, ok in _goals(r["runs"]["default"]))
            + "."]
    for machine, sign in _machines(r).items():
        lines += ["", f"{sign} Time taken on {machine}; compare times on one machine only"
                  + (", and scores best with rows of the same sign."
                     if machine.endswith(EMULATED) != r["machine"].endswith(EMULATED) else ".")]
    lines += _sure_kept(r)
    lines += _seed_spread(r)
    missing = [n for n in VARIANTS if n not in r["runs"]]
    if missing:
        lines += ["", f"Not measured with this recipe yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
