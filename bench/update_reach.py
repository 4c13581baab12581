"""How far a trained update reaches into questions it was not trained on: inside the network
(each adapted layer's output change) and at the answer (the first answer token's
distribution), at the facts' own questions and at the locality probes.

Takes finished runs of `bench/recipe.py` (their saved, shrunk LoRA adapters). For each group
of questions, with the chat template as the probes are asked:
- layer change: ‖ΔW x‖² / ‖W x‖² of every adapted layer, averaged over the layers and over
  the prompt's tokens (all of them, and its last 8: the question's end and the reply header);
- answer shift: KL(base ‖ tuned) of the first answer token's distribution, and the
  probability mass it moves (total variation).
It shows whether penalising the layer change at replayed rows (`activation-*` variants,
`workbench/core/train/activation_anchor.py`) makes the update reach less of the answers it
was not meant to change.

    python bench/recipe.py default default-seed-1 activation-100 …   # the runs to read
    python bench/update_reach.py [--runs VARIANT…]                   # bench/results/update_reach.*
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_io import RESULTS, write_results  # noqa: E402

RUNS = ["default", "default-seed-1", "activation-10", "activation-100",
        "activation-100-seed-1"]
LAST = 8  # the prompt's last tokens: the question's end and the reply header
FACT_QUESTIONS = 40  # of the facts' trained questions, enough for a mean


def measure(variant: str) -> dict[str, Any]:
    import torch
    from peft import PeftModel

    from recipe import recorded_run
    from workbench.core.generate import prompt_ids
    from workbench.core.models import load_model
    from workbench.core.train.activation_anchor import replay_change

    recorded = recorded_run(variant)
    loaded = load_model(recorded.cfg.model)
    model = PeftModel.from_pretrained(loaded.model, str(recorded.adapter)).eval()
    groups = {"facts": [i for i in recorded.items if i.metric == "efficacy"][:FACT_QUESTIONS],
              "locality": [i for i in recorded.items if i.metric == "locality"]}
    out: dict[str, Any] = {"variant": variant, "run": recorded.run_id,
                           "date": str(date.today())}
    for group, items in groups.items():
        every, last, kl, moved = [], [], [], []
        for item in items:
            system = [{"role": "system", "content": item.system}] if item.system else []
            ids = torch.tensor([prompt_ids(loaded.tokenizer, [
                *system, {"role": "user", "content": item.question}])])
            # The penalty's own measure (`replay_change`), over every token and the last ones.
            ones, tail = torch.ones_like(ids), torch.zeros_like(ids)
            tail[:, -LAST:] = 1
            row = torch.tensor([True])
            with torch.no_grad():
                with replay_change(model, row, ones) as all_tokens, \
                        replay_change(model, row, tail) as last_tokens:
                    tuned = model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
                with model.disable_adapter():
                    base = model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
            every.append(float(all_tokens.total) / ids.shape[1])
            last.append(float(last_tokens.total) / min(LAST, ids.shape[1]))
            kl.append(float((base.exp() * (base - tuned)).sum()))
            moved.append(float((base.exp() - tuned.exp()).abs().sum() / 2))
        out[group] = {"questions": len(items), "layer_change": statistics.mean(every),
                      "layer_change_last": statistics.mean(last),
                      "first_token_kl": statistics.mean(kl),
                      "first_token_kl_median": statistics.median(kl),
                      "first_token_moved": statistics.mean(moved)}
    print(out, flush=True)
    return out


def markdown(result: dict[str, Any]) -> str:
    from recipe import _pct

    recipe = json.loads((RESULTS / "recipe.json").read_text())["runs"]
    lines = [
        "# How far a trained update reaches (SmolLM2-135M-Instruct)", "",
        f"{result['machine']}; measured {result['date']}. The saved adapters of "
        "`bench/recipe.py` runs. Layer change: each adapted layer's ‖ΔW x‖² / ‖W x‖², "
        f"averaged over the layers and the prompt's tokens (all, and the last {LAST}); answer "
        "shift: the first answer token's KL(base ‖ tuned) and the probability mass it moves. "
        "`python bench/update_reach.py`", "",
        "| run | locality kept | layer change at locality (last 8) | at the facts (last 8) "
        "| first-token KL at locality (median) | mass moved at locality |",
        "|---|---|---|---|---|---|"]
    for r in result["runs"]:
        loc, facts = r["locality"], r["facts"]
        kept = recipe.get(r["variant"], {}).get("scores", {}).get("locality")
        lines.append(
            f"| `{r['variant']}` | {_pct(kept)} | {loc['layer_change']:.2e} "
            f"({loc['layer_change_last']:.2e}) | {facts['layer_change']:.2e} "
            f"({facts['layer_change_last']:.2e}) | {loc['first_token_kl']:.3f} "
            f"({loc['first_token_kl_median']:.3f}) | {loc['first_token_moved']:.3f} |")
    return "\n".join(lines + _summary(result["runs"])) + "\n"


def _summary(runs: list[dict[str, Any]]) -> list[str]:
    """The penalised runs against the default's: how much less the update reached inside
    the network, and how much less at the answer."""
    def mean(prefix: str, key: str) -> float | None:
        values = [r["locality"][key] for r in runs
                  if r["variant"] == prefix or r["variant"].startswith(prefix + "-seed-")]
        return statistics.mean(values) if values else None

    base_change, base_kl = mean("default", "layer_change"), mean("default", "first_token_kl")
    out = []
    for name in sorted({r["variant"].split("-seed-")[0] for r in runs} - {"default"}):
        change, kl = mean(name, "layer_change"), mean(name, "first_token_kl")
        if base_change and base_kl and change and kl:
            out.append(f"`{name}` (over its seeds) moved the layers' output at locality "
                       f"questions {base_change / change:.1f}x less than `default` (over its "
                       f"seeds), their first answer token's distribution {base_kl / kl:.2f}x "
                       "less (KL).")
    return ["", *out] if out else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=RUNS, metavar="VARIANT",
                        help="recipe variants whose saved adapters to read")
    args = parser.parse_args()
    from workbench.demo.build import machine_summary

    result = {"machine": machine_summary("cpu"), "date": str(date.today()),
              "runs": [measure(v) for v in args.runs]}
    write_results("update_reach", result, markdown(result))


if __name__ == "__main__":
    main()
