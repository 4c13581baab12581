"""How far a trained update reaches into questions it was not trained on: inside the network
(each adapted layer's output change) and at the answer (the next-token distributions along
it), at the facts' own questions and at the locality probes.

Takes finished runs of `bench/recipe.py` (their saved, shrunk LoRA adapters). For each group
of questions, with the chat template as the probes are asked:
- layer change: ‖ΔW x‖² / ‖W x‖² of every adapted layer, averaged over the layers and over
  the prompt's tokens (all of them, and its last 8: the question's end and the reply header);
- answer shift: KL(base ‖ tuned) of the first answer token's distribution, and the
  probability mass it moves (total variation); and the KL at each token along the base's own
  answer (the fact's, for the facts), teacher-forced: a known answer said as a sentence
  turns at its name, past the first token. Per answer, its mean over the tokens and its
  largest.
It shows whether penalising the layer change at replayed rows (`activation-*` variants,
`workbench/core/train/activation_anchor.py`) makes the update reach less of the answers it
was not meant to change.

    python bench/recipe.py default default-seed-1 activation-100 …  # the runs to read
    python bench/update_reach.py [--runs VARIANT…]          # bench/results/update_reach.*
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
    from workbench.core.generate import prompt_ids, question_messages
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
        every, last, kl, moved, path_kl, path_max = [], [], [], [], [], []
        for item in items:
            prompt = prompt_ids(loaded.tokenizer, question_messages(item.question, item.system))
            # Along the base's own answer (locality) or the fact's (teacher-forced): where a
            # sentence turns from the known name to another, past its first token.
            said = item.reference or item.answer
            answer = loaded.tokenizer(said, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + answer])
            n = len(prompt)
            # The penalty's own measure (`replay_change`) over the prompt's tokens, all and
            # its last ones.
            whole, tail = torch.zeros_like(ids), torch.zeros_like(ids)
            whole[:, :n], tail[:, n - LAST:n] = 1, 1
            row = torch.tensor([True])
            with torch.no_grad():
                with replay_change(model, row, whole) as all_tokens, \
                        replay_change(model, row, tail) as last_tokens:
                    tuned = model(input_ids=ids).logits[0, n - 1:].float().log_softmax(-1)
                with model.disable_adapter():
                    base = model(input_ids=ids).logits[0, n - 1:].float().log_softmax(-1)
            every.append(float(all_tokens.total) / n)
            last.append(float(last_tokens.total) / min(LAST, n))
            per_token = (base.exp() * (base - tuned)).sum(-1)[:max(1, len(answer))]
            kl.append(float(per_token[0]))
            path_kl.append(float(per_token.mean()))
            path_max.append(float(per_token.max()))
            moved.append(float((base[0].exp() - tuned[0].exp()).abs().sum() / 2))
        out[group] = {"questions": len(items), "layer_change": statistics.mean(every),
                      "layer_change_last": statistics.mean(last),
                      "first_token_kl": statistics.mean(kl),
                      "first_token_kl_median": statistics.median(kl),
                      "first_token_moved": statistics.mean(moved),
                      "answer_kl": statistics.mean(path_kl),
                      "answer_kl_max": statistics.mean(path_max)}
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
        "| first-token KL at locality (median) | mass moved there | KL along the base's "
        "answer, per token (largest) |",
        "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        loc, facts = r["locality"], r["facts"]
        kept = recipe.get(r["variant"], {}).get("scores", {}).get("locality")
        lines.append(
            f"| `{r['variant']}` | {_pct(kept)} | {loc['layer_change']:.2e} "
            f"({loc['layer_change_last']:.2e}) | {facts['layer_change']:.2e} "
            f"({facts['layer_change_last']:.2e}) | {loc['first_token_kl']:.3f} "
            f"({loc['first_token_kl_median']:.3f}) | {loc['first_token_moved']:.3f} "
            f"| {loc['answer_kl']:.3f} ({loc['answer_kl_max']:.3f}) |")
    return "\n".join(lines + _summary(result["runs"])) + "\n"


def _summary(runs: list[dict[str, Any]]) -> list[str]:
    """The penalised runs against the default's: how much less the update reached inside
    the network, and how much less at the answer."""
    def mean(prefix: str, key: str) -> float | None:
        values = [r["locality"][key] for r in runs
                  if r["variant"] == prefix or r["variant"].startswith(prefix + "-seed-")]
        return statistics.mean(values) if values else None

    keys = ("layer_change", "first_token_kl", "answer_kl")
    base = [mean("default", key) for key in keys]
    out = []
    for name in sorted({r["variant"].split("-seed-")[0] for r in runs} - {"default"}):
        mine = [mean(name, key) for key in keys]
        if all(base) and all(mine):
            change, first, along = (b / m for b, m in zip(base, mine))  # type: ignore[operator]
            out.append(f"`{name}` (over its seeds) moved the layers' output at locality "
                       f"questions {change:.1f}x less than `default` (over its seeds), their "
                       f"first answer token's distribution {first:.2f}x less and the "
                       f"distributions along the base's answers {along:.2f}x less (KL).")
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
