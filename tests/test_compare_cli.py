"""`workbench probe` and `workbench export` on a real (tiny) finished LoRA run: the scorecard
table and JSON, the exported adapter and merged model against base + adapter, the HTML
report, and the clear errors. Commands run in-process for speed; one as a subprocess."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from workbench.cli import main
from workbench.core.config import ModelConfig
from workbench.core.generate import ask_questions
from workbench.core.models import load_model
from workbench.core.train.outputs import load_outputs
from workbench.core.train.jobs import get_run
from workbench.core.train.run import create_run, execute_run
from workbench.core.train.verdict import run_verdict

QUESTIONS = ["Where was Ada Lovelace born?", "Who wrote Hamlet?"]


def _finished_run(bench: Any, **values: Any) -> int:
    ws, store, config = bench
    run_id = create_run(store, ws, config(**{"training.epochs": 2, **values}))
    assert execute_run(store, ws, run_id).status == "completed"
    return run_id


@pytest.fixture
def lora_run(bench: Any) -> tuple[Any, int]:
    return bench, _finished_run(bench, name="tiny <lora>")


def cli(ws: Any, *args: str) -> int:
    return main(["--workspace", str(ws.root), *args])


def answers(loaded: Any) -> list[str]:
    return ask_questions(loaded, QUESTIONS, max_new_tokens=12, first_line_only=False)


def test_probe_prints_the_table_and_writes_the_json(lora_run, capsys) -> None:
    (ws, _store, _config), run_id = lora_run
    assert cli(ws, "probe", str(run_id)) == 0
    out = capsys.readouterr().out
    assert "efficacy (5)" in out and "generalization (5)" in out and "abstention (0)" in out
    assert re.search(r"^Base\s+\d+% \(\d+%\)", out, re.M)
    assert re.search(rf"^Run {run_id} · tiny <lora> \(lora\)\s+\d+% \(\d+%\)", out, re.M)
    path = ws.run_dir(run_id) / "scorecard.json"
    assert f"wrote {path}" in out
    card = json.loads(path.read_text())
    assert [s["key"] for s in card["subjects"]] == ["base", f"run:{run_id}"]
    assert card["counts"] == {"efficacy": 5, "generalization": 5, "locality": 0, "abstention": 0}
    assert len(card["rows"]) == 10 and set(card["rows"][0]["answers"]) == {"base", f"run:{run_id}"}

    # Asked again, the stored answers are reused.
    assert cli(ws, "probe", str(run_id), "--json", str(ws.root / "again.json")) == 0
    assert f"reused stored answers of base, run:{run_id}" in capsys.readouterr().out
    assert json.loads((ws.root / "again.json").read_text())["summary"] == card["summary"]


def test_probe_with_the_retrieval_baseline_adds_its_row(lora_run, capsys) -> None:
    (ws, store, config), run_id = lora_run
    queued = create_run(store, ws, config())  # not trained: said, not scored
    assert cli(ws, "probe", str(run_id), "--baseline", "retrieval", "--vs", str(queued)) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Retrieval\s+\d+% \(\d+%\)", out, re.M)
    assert "Retrieval: top 3 of 5 facts by" in out
    assert f"not compared: run:{queued}: run {queued} (queued) has no trained model" in out
    card = json.loads((ws.run_dir(run_id) / "scorecard.json").read_text())
    assert [s["key"] for s in card["subjects"]] == ["base", f"run:{run_id}", "retrieval"]


def test_exported_adapter_reloads_onto_the_base(lora_run, capsys) -> None:
    from peft import PeftModel

    (ws, _store, config), run_id = lora_run
    assert cli(ws, "export", str(run_id), "--adapter") == 0
    folder = ws.run_dir(run_id) / "adapter-export"
    assert f"wrote {folder}" in capsys.readouterr().out
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json"} \
        <= {p.name for p in folder.iterdir()}
    loaded = load_model(config().model)
    loaded.model = PeftModel.from_pretrained(loaded.model, folder).eval()
    assert answers(loaded) == answers(load_outputs(ws.run_dir(run_id)))

    # A second export into the same (now full) folder is refused.
    assert cli(ws, "export", str(run_id), "--adapter") == 2
    assert "already exists and is not empty" in capsys.readouterr().err


def test_merged_model_answers_like_base_plus_adapter(lora_run, tmp_path) -> None:
    (ws, _store, _config), run_id = lora_run
    out = tmp_path / "merged"
    assert cli(ws, "export", str(run_id), "--merged", "--out", str(out)) == 0
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    merged = load_model(ModelConfig(name_or_path=str(out), device="cpu"))
    assert not hasattr(merged.model, "peft_config")
    assert answers(merged) == answers(load_outputs(ws.run_dir(run_id)))


def test_a_qlora_run_merges_into_the_full_precision_base(bench, tmp_path) -> None:
    from peft import PeftModel
    from safetensors import safe_open

    ws, _store, config = bench
    run_id = _finished_run(bench, **{"method.name": "qlora", "training.epochs": 1})
    out = tmp_path / "merged"
    assert cli(ws, "export", str(run_id), "--merged", "--out", str(out)) == 0
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert {str(weights.get_tensor(k).dtype) for k in weights.keys()} == {"torch.float32"}
    unmerged = load_model(config().model)  # the same base, not quantized
    unmerged.model = PeftModel.from_pretrained(unmerged.model, ws.run_dir(run_id) / "adapter")
    merged = load_model(ModelConfig(name_or_path=str(out), device="cpu"))
    assert answers(merged) == answers(unmerged)


def test_report_is_one_offline_html_file(lora_run, capsys) -> None:
    (ws, _store, _config), run_id = lora_run
    assert cli(ws, "export", str(run_id), "--report") == 0
    path = ws.run_dir(run_id) / "report.html"
    assert f"wrote {path}" in capsys.readouterr().out
    text = path.read_text(encoding="utf-8")
    assert "tiny &lt;lora&gt;" in text and "tiny <lora>" not in text  # escaped
    assert "efficacy" in text and "Sample answers side by side" in text
    assert text.count('class="plotly-graph-div"') == 5
    assert text.count("* plotly.js v") == 1  # inlined once, with the first chart
    assert not re.search(r"<script[^>]*\bsrc=[\"']?https?:", text)
    assert "✓" in text or "✗" in text
    # The run's verdict, as the Train and Runs tabs say it, leads.
    found = run_verdict(_store, get_run(_store, run_id))
    assert found is not None
    assert f"<h2>Verdict</h2><div class='verdict {found.level}'>" in text
    assert f"<strong>{html.escape(found.headline)}</strong>" in text
    assert text.index("Verdict") < text.index("Settings")
    for line in (*found.details, found.advice):
        assert html.escape(line) in text
    if found.level != "good":
        assert found.advice  # what to try is there too


def test_a_full_fine_tuning_run_has_no_adapter_to_export(bench, capsys) -> None:
    ws = bench[0]
    run_id = _finished_run(bench, **{"method.name": "full", "training.epochs": 1})
    capsys.readouterr()  # what training printed
    assert cli(ws, "export", str(run_id), "--adapter") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no adapter" in err and "--merged" in err
    assert "\n" not in err
    # Its whole model is what --merged exports.
    assert cli(ws, "export", str(run_id), "--merged") == 0
    assert (ws.run_dir(run_id) / "merged" / "model.safetensors").is_file()


def test_a_run_that_has_not_finished_has_nothing_to_export(bench, capsys) -> None:
    ws, store, config = bench
    run_id = create_run(store, ws, config())
    for action in ("--adapter", "--merged"):
        assert cli(ws, "export", str(run_id), action) == 2
        assert capsys.readouterr().err.startswith(
            f"error: run {run_id} (queued) has no trained model to export")
    assert cli(ws, "probe", str(run_id)) == 2
    assert "has no trained model" in capsys.readouterr().err
    # Its report still shows the settings and charts, without a scorecard.
    assert cli(ws, "export", str(run_id), "--report") == 0
    unfinished = (ws.run_dir(run_id) / "report.html").read_text()
    assert "no trained model to score" in unfinished and "<h2>Verdict</h2>" not in unfinished


def test_unknown_run_is_one_clear_error(tmp_path: Path) -> None:
    result = run_cli("--workspace", str(tmp_path / "ws"), "probe", "99")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: there is no run 99 (`workbench runs` lists the runs)"]
    assert "Traceback" not in result.stdout
