"""The export bundle on finished tiny-model runs: GGUF files that transformers' GGUF loader
reads back with the merged model's answers (f16 identical, q8_0 ≥98% agreement) on a tiny
Llama and a tiny Qwen2, the Ollama Modelfile, the re-score and its --strict exit, and bad
inputs (unknown run, unsupported architecture, full disk) as one line with nothing left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workbench.cli import main
from workbench.core import disk
from workbench.core.config import ModelConfig
from workbench.core.errors import WorkbenchError
from workbench.core.export import bundle as bundle_mod
from workbench.core.export import gguf_write
from workbench.core.export.bundle import export_bundle
from workbench.core.export.ollama import go_template, chat_pieces, modelfile
from workbench.core.export.rescore import Change, Rescore, load_gguf
from workbench.core.generate import ask_questions
from workbench.core.knowledge import sets
from workbench.core.models import FALLBACK_CHAT_TEMPLATE, load_model
from workbench.core.train import probing
from workbench.core.train.run import create_run, execute_run
from workbench.testing import train_tokenizer

SUBJECTS = ["France", "Japan", "Freedonia", "Ada Lovelace", "Hamlet", "the Moon", "Paris",
            "Mount Kilimanjaro", "the Nile", "Marie Curie"]
ASKS = ["What is {}?", "Tell me about {}.", "Where is {}?", "Who knows {}?", "Describe {}."]
QUESTIONS = [a.format(s) for s in SUBJECTS for a in ASKS]  # 50, beside the set's probes


def _run(bench: Any, **values: Any) -> tuple[Any, Any, int]:
    ws, store, config = bench
    run_id = create_run(store, ws, config(**{"training.epochs": 2, **values}))
    assert execute_run(store, ws, run_id).status == "completed"
    return ws, store, run_id


def cli(ws: Any, *args: str) -> int:
    return main(["--workspace", str(ws.root), *args])


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_gguf_files_answer_as_the_merged_model(bench: Any, arch: str, request: Any,
                                               tmp_path: Path) -> None:
    folder = request.getfixturevalue(f"tiny_{arch}")
    ws, store, run_id = _run(bench, **{"model.name_or_path": str(folder)})
    out = tmp_path / "bundle"
    made = export_bundle(store, ws, run_id, out, gguf=["f16", "q8_0"], modelfile=False)
    assert made.files == ["README.md", "adapter", "merged", "model-f16.gguf", "model-q8_0.gguf",
                          "scorecard.json"]
    merged = load_model(ModelConfig(name_or_path=str(out / "merged"), device="cpu"))
    items = probing.probe_items(store, sets.set_id(store, "demo"), locality=True)
    questions = [i.question for i in items] + QUESTIONS

    def answers(loaded: Any) -> list[str]:
        return ask_questions(loaded, questions, max_new_tokens=16)

    reference = answers(merged)
    f16 = answers(load_gguf(out / "model-f16.gguf", "cpu"))
    q8 = answers(load_gguf(out / "model-q8_0.gguf", "cpu"))
    assert f16 == reference
    agree = sum(a == b for a, b in zip(q8, reference)) / len(reference)
    assert agree >= 0.98, f"q8_0 agrees on {agree:.0%} of {len(reference)}"
    # The re-score: each file beside the run, in the bundle's scorecard and README.
    card = json.loads((out / "scorecard.json").read_text())
    assert [e["artifact"] for e in card["exports"]] == ["merged", "model-f16.gguf",
                                                        "model-q8_0.gguf"]
    assert all(not e["flagged"] for e in card["exports"])
    readme = (out / "README.md").read_text()
    assert "model-q8_0.gguf: efficacy" in readme
    assert f"vllm serve {folder} --enable-lora --lora-modules" in readme
    assert "llama-cli -m model-f16.gguf" in readme


def test_the_cli_writes_the_bundle_with_the_modelfile(bench: Any, tmp_path: Path,
                                                      capsys: Any) -> None:
    ws, _store, run_id = _run(bench)
    out = tmp_path / "b"
    assert cli(ws, "export", str(run_id), "--gguf", "q8_0", "--ollama", "-o", str(out)) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}: Modelfile, README.md, adapter, merged, model-q8_0.gguf" in text
    assert "model-q8_0.gguf: efficacy" in text and "use it (from" in text
    assert "  Ollama: ollama create" in text and "  vLLM, adapter: vllm serve" in text
    recipe = (out / "Modelfile").read_text()
    assert "FROM ./model-q8_0.gguf" in recipe
    assert 'TEMPLATE """' in recipe and "{{ .Prompt }}<|eos|><|assistant|>{{ .Response }}" in recipe
    assert 'PARAMETER stop "<|eos|>"' in recipe
    assert "ollama create" in (out / "README.md").read_text()


def test_the_modelfile_follows_each_template() -> None:
    tok = train_tokenizer()
    pieces = chat_pieces(tok)
    assert go_template(pieces) == ("{{ if .System }}<|system|>{{ .System }}<|eos|><|user|>"
                                   "{{ else }}<|user|>{{ end }}{{ .Prompt }}<|eos|><|assistant|>"
                                   "{{ .Response }}<|eos|>")
    assert set(pieces.stops) == {"<|eos|>", "<|assistant|>", "<|system|>", "<|user|>"}
    assert 'SYSTEM """Answer in one word."""' in modelfile("m.gguf", tok,
                                                          system="Answer in one word.")
    # The workbench's plain-text fallback: the next "### Question:" ends an answer.
    tok.chat_template = FALLBACK_CHAT_TEMPLATE
    pieces = chat_pieces(tok)
    assert "### Question:" in pieces.stops
    assert go_template(pieces).endswith("### Answer:\n{{ .Response }}<|eos|>\n\n")
    # A template that refuses a system turn (Gemma's): no {{ .System }} to fill.
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}"
                         "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
                         "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n"
                         "{% endif %}")
    text = go_template(chat_pieces(tok))
    assert ".System" not in text and text.startswith("<start_of_turn>user\n{{ .Prompt }}")
    # Literal braces in a template are escaped for Go.
    tok.chat_template = "{% for m in messages %}{{ '{{' }}{{ m['content'] }}{% endfor %}"
    assert '{{ else }}{{ "{{" }}{{ end }}{{ .Prompt }}' in go_template(chat_pieces(tok))


def test_gguf_streams_one_tensor_at_a_time(tiny_llama: Path, tmp_path: Path,
                                           monkeypatch: Any) -> None:
    """Each tensor is read, converted and written before the next is read: peak memory is
    one tensor, not a second copy of the model."""
    from gguf import GGUFWriter

    events: list[str] = []
    real_read, real_write = gguf_write._read, GGUFWriter.write_tensor_data

    def read(*args: Any) -> Any:
        for data in real_read(*args):
            events.append("read")
            yield data

    def write(self: Any, tensor: Any, *args: Any) -> None:
        events.append("write")
        real_write(self, tensor, *args)

    monkeypatch.setattr(gguf_write, "_read", read)
    monkeypatch.setattr(GGUFWriter, "write_tensor_data", write)
    out = gguf_write.write_gguf(tiny_llama, tmp_path / "m.gguf", "q8_0")
    assert events == ["read", "write"] * (len(events) // 2) and len(events) > 20
    config = __import__("transformers").AutoConfig.from_pretrained(tiny_llama)
    tensors = sum(t.nbytes for t in gguf_write.plan(tiny_llama, config, "q8_0"))
    assert tensors < out.stat().st_size < tensors + 2**20  # the rest: metadata, vocabulary


def test_a_lossy_conversion_is_flagged_and_strict_exits_1(bench: Any, tmp_path: Path,
                                                          monkeypatch: Any, capsys: Any) -> None:
    result = Rescore("model-q8_0.gguf", {"efficacy": 1.0, "generalization": 0.8},
                     {"efficacy": 0.9, "generalization": 0.8},
                     lost=[Change("efficacy", "Who wrote Hamlet?", "Shakespeare",
                                  "Shakespeare.", "Marlowe.")])
    assert result.flagged
    assert result.line() == ("model-q8_0.gguf: efficacy 90% (−10.0) · held-out 80% (±0); lost 1: "
                             "'Who wrote Hamlet?' now 'Marlowe.' — more than 2 points lost")
    ws, _store, run_id = _run(bench)
    monkeypatch.setattr(bundle_mod, "rescore", lambda loaded, label, items, answered: result)
    assert cli(ws, "export", str(run_id), "--gguf", "q8_0", "-o", str(tmp_path / "a")) == 0
    assert "LOST model-q8_0.gguf" in capsys.readouterr().out
    assert cli(ws, "export", str(run_id), "--gguf", "q8_0", "--strict",
               "-o", str(tmp_path / "b")) == 1
    assert "lost more than 2 points (--strict)" in capsys.readouterr().err


def test_bad_inputs_are_one_line_and_leave_nothing(bench: Any, tmp_path: Path,
                                                   monkeypatch: Any, capsys: Any) -> None:
    ws, store, run_id = _run(bench)
    capsys.readouterr()
    assert cli(ws, "export", "99", "--gguf", "f16") == 2
    err = capsys.readouterr().err
    assert "run 99" in err and len(err.strip().splitlines()) <= 2
    assert cli(ws, "export", str(run_id), "--adapter", "--ollama") == 2
    assert "--ollama, --strict and --no-rescore go with --gguf" in capsys.readouterr().err

    # A full disk: refused before anything is written.
    monkeypatch.setattr(disk.shutil, "disk_usage",
                        lambda path: type("U", (), {"free": 10 * 2**20})())
    with pytest.raises(WorkbenchError, match="not enough disk for the export: it needs about"):
        export_bundle(store, ws, run_id, tmp_path / "full", gguf=["f16"])
    assert [p.name for p in tmp_path.iterdir()] == ["ws"]  # no bundle, no temp folder
    monkeypatch.undo()

    # An architecture with no GGUF layout: one line naming the supported ones, exit 1, the
    # adapter and merged folders still written.
    monkeypatch.setattr(gguf_write, "ARCHITECTURES", {"gemma2": "gemma2"})
    out = tmp_path / "unsupported"
    assert cli(ws, "export", str(run_id), "--gguf", "q8_0", "--ollama", "-o", str(out)) == 1
    err = capsys.readouterr().err
    assert "error: GGUF export does not support llama models; supported: gemma2" in err
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter", "merged",
                                                     "scorecard.json"]
    assert "no GGUF: GGUF export does not support llama" in (out / "README.md").read_text()
    # Nothing half-written beside the target either.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("arch", ["mistral", "qwen3", "gemma2", "gemma3_text"])
def test_each_supported_architecture_reads_back(arch: str, tmp_path: Path) -> None:
    """Beyond the tiny Llama and Qwen2 runs: a random model of each other architecture written
    as f16 GGUF gives transformers' GGUF loader the same next-token logits (Gemma's norms
    stored plus one, Qwen3's head width, Mistral written as Llama)."""
    import torch
    import transformers as tf

    tok = train_tokenizer()
    classes = {"mistral": (tf.MistralConfig, tf.MistralForCausalLM),
               "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM),
               "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM),
               "gemma3_text": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM)}[arch]
    # Qwen3's GGUF config in transformers takes the head width as 128 (it reads no key for it)
    head_dim = 128 if arch == "qwen3" else 16
    config = classes[0](vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        head_dim=head_dim, max_position_embeddings=512,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = classes[1](config)
    with torch.no_grad():  # norms away from their initial ones, so a missed +1 would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    gguf_write.write_gguf(tmp_path / "m", tmp_path / "m.gguf", "f16")
    back = tf.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf",
                                                   dtype=torch.float32)
    ids = torch.tensor([tok("What is the capital of Freedonia? 123")["input_ids"]])
    with torch.no_grad():
        expected, got = model(ids).logits, back(ids).logits
    assert torch.allclose(expected, got, atol=2e-3), (expected - got).abs().max()


def test_an_unsupported_architecture_names_the_supported_ones(tmp_path: Path) -> None:
    import transformers as tf

    tok = train_tokenizer()
    model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1,
                                             n_head=2))
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    with pytest.raises(gguf_write.UnsupportedArchitecture,
                       match="GGUF export does not support gpt2 models; supported: gemma2, "
                             "gemma3, gemma3_text, llama, mistral, qwen2, qwen3"):
        gguf_write.write_gguf(tmp_path / "m", tmp_path / "m.gguf", "f16")
    assert not (tmp_path / "m.gguf").exists()


def test_the_panel_flags_a_lossy_file_in_red() -> None:
    from workbench.core.export.bundle import Bundle
    from workbench.ui.export_actions import delta_table, summary

    lossy = Rescore("model-q8_0.gguf", {"efficacy": 1.0, "locality": 0.9},
                    {"efficacy": 1.0, "locality": 0.85},
                    lost=[Change("locality", "What currency is used in Iceland?", "krona",
                                 "the Icelandic krona", "the jorekot")])
    fine = Rescore("merged", {"efficacy": 1.0, "locality": 0.9}, {"efficacy": 1.0, "locality": 0.9})
    made = Bundle(Path("/x/export"), ["Modelfile", "merged", "model-q8_0.gguf"], [fine, lossy],
                  commands=["Ollama: `ollama create run-1 -f Modelfile` then `ollama run run-1`"])
    text = summary(made)
    assert "<span class='export-flag'>model-q8_0.gguf lost more than 2 points" in text
    assert "- Ollama: `ollama create run-1 -f Modelfile`" in text
    table = delta_table(made)
    assert list(table["file"]) == ["merged", "⚠ model-q8_0.gguf"]
    assert table.iloc[1]["locality"] == "85% (−5.0)" and table.iloc[0]["locality"] == "90% (±0)"
    assert "What currency is used in Iceland? → the jorekot" in table.iloc[1]["what changed"]
