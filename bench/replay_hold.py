"""What replay holds: the known answers a trained update keeps on the questions replay trained
on, against those it never saw (the locality probes), and where the first answer token's
probability goes at the latter.

Takes finished runs of `bench/recipe.py` (their saved, shrunk LoRA adapters). For each run:
- replayed kept: of the set's distinct replayed questions (the known answers
  `replay.replay_examples` draws for it; the base answers every one right), the share the
  tuned model still answers right by free generation, scored as the locality probes are;
- locality kept: the recipe bench's own figure, over the 108 probes no run trains on;
- first-token mass moved at the locality questions (total variation between the base's and
  the tuned model's first answer token), and how much of it went to the first tokens of the
  set's made-up answers.
It shows whether a replay loss that holds its own questions better (`sharpen-*`: a sharper
target; `reverse-kl*`: KL(tuned ‖ base)) keeps more of the answers it never replayed.

    python bench/recipe.py default sharpen-0.25 …  # the runs to read
    python bench/replay_hold.py [--runs VARIANT…]  # bench/results/replay_hold.*
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_io import RESULTS, write_results  # noqa: E402

RUNS = ["default", "default-seed-1", "reverse-kl", "reverse-kl-0.5", "sharpen-0.5",
        "sharpen-0.25"]


def replayed_items(recorded: Any, loaded: Any) -> list[Any]:
    """The set's distinct replayed questions, as the run drew them (`run.py`: its replay ratio
    of the set's knowledge rows, dealt over its epochs), as locality probe items (gold and
    aliases those the base's answer was checked against)."""
    from workbench.core.train import probing, replay

    cfg = recorded.cfg
    knowledge_rows = json.loads((RESULTS / "recipe.json").read_text())["prepared"]["train"]

    golds: dict[str, tuple[str, tuple[str, ...]]] = {}
    complete = replay.complete_answer

    def recorded_complete(answer: str, gold: str, aliases: Any = ()) -> str:
        # The replay example keeps only the base's completed answer; its gold is recorded
        # here, where the example is made.
        said = complete(answer, gold, aliases)
        golds[said] = (gold, tuple(aliases))
        return said

    replay.complete_answer = recorded_complete
    try:
        examples = replay.replay_examples(
            recorded.store, recorded.set_id, loaded,
            replay.replay_count(knowledge_rows, cfg.data.replay_ratio),
            turns=max(1, min(cfg.training.epochs, replay.FRESH_EPOCHS)), seed=cfg.training.seed)
    finally:
        replay.complete_answer = complete
    questions = {e.prompt: e.answer for e in examples}
    return [probing.ProbeItem(i, None, "locality", q, *golds[said], reference=said)
            for i, (q, said) in enumerate(questions.items())]


def first_token_spill(loaded: Any, model: Any, recorded: Any) -> tuple[float, float]:
    """Mean total variation of the first answer token at the locality questions, and the part
    of it that went to the first tokens of the set's answers."""
    import torch

    from workbench.core.generate import prompt_ids, question_messages

    tok = loaded.tokenizer
    starts = sorted({tok(i.answer, add_special_tokens=False)["input_ids"][0]
                     for i in recorded.items if i.metric == "efficacy"})
    moved, to_set = [], []
    for item in (i for i in recorded.items if i.metric == "locality"):
        ids = torch.tensor([prompt_ids(tok, question_messages(item.question, item.system))])
        with torch.no_grad():
            tuned = model(input_ids=ids).logits[0, -1].float().softmax(-1)
            with model.disable_adapter():
                base = model(input_ids=ids).logits[0, -1].float().softmax(-1)
        gained = (tuned - base).clamp(min=0)
        moved.append(gained.sum().item())
        to_set.append(gained[starts].sum().item())
    return sum(moved) / len(moved), sum(to_set) / len(to_set)


def measure(variant: str, base_checked: dict[str, float]) -> dict[str, Any]:
    from peft import PeftModel

    from recipe import recorded_run, score_every_probe
    from workbench.core.models import load_model

    recorded = recorded_run(variant)
    loaded = load_model(recorded.cfg.model)
    items = replayed_items(recorded, loaded)
    model = PeftModel.from_pretrained(loaded.model, str(recorded.adapter)).eval()
    if not base_checked:  # the same questions for every run: the base answers them once
        with model.disable_adapter():
            base_checked |= score_every_probe(loaded, model, items)
    tuned = score_every_probe(loaded, model, items)
    moved, to_set = first_token_spill(loaded, model, recorded)
    out = {"variant": variant, "run": recorded.run_id, "replayed": len(items),
           "replayed_kept": tuned["locality"], "replayed_lost": tuned["lost"],
           "first_token_moved": moved, "moved_to_set_answers": to_set}
    print(out, flush=True)
    return out


def markdown(result: dict[str, Any]) -> str:
    from recipe import _pct

    recipe = json.loads((RESULTS / "recipe.json").read_text())["runs"]
    lines = [
        "# What replay holds (SmolLM2-135M-Instruct)", "",
        f"{result['machine']}; measured {result['date']}. The saved adapters of "
        "`bench/recipe.py` runs, scored by free generation. Replayed: the set's "
        f"{result['runs'][0]['replayed'] if result['runs'] else 0} distinct replayed "
        "questions (the base answers "
        f"{_pct(result['base_replayed_kept'])} of them right); locality: the bench's 108 "
        "probes, never trained on. First-token mass: the total variation of the first answer "
        "token at the locality questions, and its part that went to the first tokens of the "
        "set's made-up answers. The replay draws known answers the base gave once, the "
        "locality probes only those it gives under three prompts: the replayed are the more "
        "fragile, so compare runs within a column. `python bench/replay_hold.py`", "",
        "| run | replayed questions kept | locality kept | first-token mass moved at "
        "locality | of it to the set's answer starts |",
        "|---|---|---|---|---|"]
    for r in result["runs"]:
        kept = recipe.get(r["variant"], {}).get("scores", {}).get("locality")
        lines.append(f"| `{r['variant']}` | {_pct(r['replayed_kept'])} | {_pct(kept)} "
                     f"| {r['first_token_moved']:.3f} | {r['moved_to_set_answers']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=RUNS, metavar="VARIANT",
                        help="recipe variants whose saved adapters to read")
    args = parser.parse_args()
    from workbench.demo.build import machine_summary

    base: dict[str, float] = {}
    runs = [measure(v, base) for v in args.runs]
    result = {"machine": machine_summary("cpu"), "date": str(date.today()),
              "base_replayed_kept": base.get("locality"), "runs": runs}
    write_results("replay_hold", result, markdown(result))


if __name__ == "__main__":
    main()
