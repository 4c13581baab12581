"""Method, Train and Runs tabs: the generated form, the command line it shows, saved configs,
re-attaching feeds, room for a run, and a run started through the app's API."""

from __future__ import annotations

import shlex
import sqlite3
import time
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client

from conftest import ServedApp, run_cli
from workbench.core import presets
from workbench.core.config import RunConfig
from workbench.core.device import DeviceInfo
from workbench.core.errors import ConfigError, WorkbenchError
from workbench.core.estimate import set_tokens_or_none
from workbench.core.train import control
from workbench.demo.bench import demo_run_config
from workbench.ui import inject_actions, method_actions, recipe_actions, run_view
from workbench.ui.context import AppContext
from workbench.ui.method_tab import OWN_WIDGETS
from workbench.ui.settings_form import build_form, method_specific


def _form(cfg: RunConfig):
    with gr.Blocks():
        return build_form(cfg, OWN_WIDGETS)


def test_the_form_has_a_widget_per_setting_and_round_trips_a_config() -> None:
    cfg = demo_run_config().with_values({"method.located_layers": [1, 2],
                                         "model.revision": "main"})
    form = _form(cfg)
    assert len(form.widgets) == len(form.infos) > 30
    assert not {i.path for i in form.infos} & set(OWN_WIDGETS)
    raw = [w.value for w in form.widgets]  # what the browser would send back unchanged
    again = method_actions.make_config(cfg.model.name_or_path, cfg.data.knowledge_set,
                                       cfg.method.name, form.values(raw), cfg.name)
    assert again == cfg


def test_form_values_are_typed_and_bad_values_name_the_field() -> None:
    form = _form(RunConfig())
    raw = {i.path: w.value for i, w in zip(form.infos, form.widgets)}
    raw["training.epochs"] = 3.0  # gr.Number may hand back a float
    raw["method.target_modules"] = "q_proj, v_proj"
    values = form.values(list(raw.values()))
    assert values["training.epochs"] == 3 and isinstance(values["training.epochs"], int)
    assert values["method.target_modules"] == ["q_proj", "v_proj"]
    raw["training.epochs"] = 2.5
    with pytest.raises(ConfigError, match="training.epochs must be a whole number"):
        form.values(list(raw.values()))
    raw["training.epochs"] = 0
    with pytest.raises(ConfigError, match="training.epochs must be a positive integer"):
        method_actions.make_config("m", "s", "lora", form.values(list(raw.values())))


def test_a_method_shows_only_its_own_settings() -> None:
    form = _form(RunConfig())
    readers = method_specific()
    assert readers["method.lora_r"] >= {"lora", "qlora", "dora", "rslora", "prompt_distillation"}
    assert readers["method.located_layers"] == {"located"}
    shown = {i.path: u["visible"] for i, u in zip(form.infos, form.visibility("full", True))}
    assert not shown["method.lora_r"] and not shown["method.located_layers"]
    assert shown["training.learning_rate"] and shown["training.seed"]
    shown = {i.path: u["visible"] for i, u in zip(form.infos, form.visibility("lora", False))}
    assert shown["method.lora_r"] and not shown["method.target_modules"]  # advanced
    assert not shown["training.seed"] and shown["training.epochs"]


def test_the_command_line_rebuilds_the_same_config(tmp_path: Path) -> None:
    cfg = demo_run_config().with_values({"name": "demo's run", "model.device": "cpu"})
    command = method_actions.cli_command(cfg)
    setup, train = command.split("\n", 1)[0], command.splitlines()[-1]
    assert train == "workbench train run.yaml"
    args = shlex.split(command.rsplit("\n", 1)[0].replace("\\\n", " "))
    assert args[:4] == ["workbench", "config", "-q", "-o"]
    run_cli(*args[1:], cwd=tmp_path)
    assert RunConfig.load(tmp_path / "run.yaml") == cfg
    assert setup.startswith("workbench config")


def test_saved_configs_and_recent_models_persist(bench) -> None:
    ws, store, config = bench
    cfg = config()
    presets.save_config(ws, "my run", cfg)
    assert presets.saved_configs(ws) == ["my run"]
    assert presets.load_config(ws, "my run") == cfg
    for bad in ("../escape", "", "a/b"):
        with pytest.raises(ConfigError, match="not usable"):
            presets.save_config(ws, bad, cfg)
    presets.remember_model(store, "a")
    presets.remember_model(store, "b")
    assert presets.remember_model(store, "a") == ["a", "b"]
    with store.write() as db:  # a damaged preference is forgotten, not an error
        db.execute("UPDATE prefs SET value = 'not json' WHERE key = ?", [presets.RECENT_MODELS_KEY])
    assert presets.recent_models(store) == []


class _FakeCache:
    def __init__(self, device: str) -> None:
        self.current = type("Loaded", (), {"device": device, "source": type(
            "S", (), {"describe": lambda self: "hub model chat/model"})()})()
        self.released = False

    def release(self) -> None:
        self.released, self.current = True, None


@pytest.mark.parametrize("held, released", [(1 << 30, False), (7 << 30, True)])
def test_the_chat_model_is_released_only_when_the_run_would_not_fit(bench, monkeypatch, held,
                                                                      released) -> None:
    ws, store, config = bench
    cache = _FakeCache("cpu")
    ctx = AppContext(ws, store, DeviceInfo("cpu", "test", 8 << 30), models=cache)  # type: ignore[arg-type]
    estimate = type("E", (), {"total": 1 << 30, "capacity": 8 << 30})()
    monkeypatch.setattr(method_actions, "run_estimate", lambda ctx, cfg: estimate)
    monkeypatch.setattr("workbench.core.device.memory_in_use", lambda device: held)
    from workbench.core.compare.pool import ComparePool

    ctx.compare = ComparePool(store, ws, own={7: object()})  # a full run's copy in Compare
    note = method_actions.make_room(ctx, config())
    assert cache.released is released
    assert (ctx.compare.own == {}) is released
    assert ("Released the chat model" in note) is released


def test_a_feed_reads_only_new_rows_and_redraws_after_a_resume(bench) -> None:
    ws, store, config = bench
    run_id = control.create_run(store, ws, config())
    feed, changed = run_view.poll(store, None, run_id)
    assert changed and feed.metrics == [] and feed.run["status"] == "queued"
    for step in (1, 2, 3):
        store.db["metrics"].insert({"run_id": run_id, "step": step, "loss": 1.0 / step,
                                    "time": time.time()})
    feed, changed = run_view.poll(store, feed, run_id)
    assert [m["step"] for m in feed.metrics] == [1, 2, 3] and changed
    feed, changed = run_view.poll(store, feed, run_id)
    assert not changed and len(feed.metrics) == 3
    with store.write() as db:  # a resume from step 1 rewrote the later rows
        db.execute("DELETE FROM metrics WHERE step > 1")
        db.execute("UPDATE runs SET resumes = 1 WHERE id = ?", [run_id])
        db["metrics"].insert({"run_id": run_id, "step": 2, "loss": 9.0, "time": time.time()})
    feed, _ = run_view.poll(store, feed, run_id)
    assert [(m["step"], m["loss"]) for m in feed.metrics] == [(1, 1.0), (2, 9.0)]
    assert "Run" in run_view.message_markdown(feed) and len(run_view.figures(feed)) == 5


def test_start_refuses_a_config_without_a_knowledge_set(bench) -> None:
    ws, store, config = bench
    ctx = AppContext(ws, store, DeviceInfo("cpu", "test", 8 << 30))
    with pytest.raises(WorkbenchError, match="choose a knowledge set"):
        method_actions.start(ctx, config(**{"data.knowledge_set": ""}))


def _wait_for(predicate, timeout: float = 120.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def test_starting_a_run_through_the_api_creates_a_run_and_metrics_rows(served_app: ServedApp) -> None:
    client = Client(served_app.url, verbose=False)
    cfg = demo_run_config(device="cpu").with_values({"name": "api run", "training.epochs": 50,
                                                     "training.stop_at_efficacy": 0.0})
    run_id = client.predict(cfg.to_yaml(), api_name="/start_run")
    db = sqlite3.connect(served_app.workspace / "workbench.db")
    try:
        name, = db.execute("SELECT name FROM runs WHERE id = ?", [run_id]).fetchone()
        assert name == "api run"
        _wait_for(lambda: db.execute("SELECT count(*) FROM metrics WHERE run_id = ?",
                                     [run_id]).fetchone()[0] >= 3)
        db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", [run_id])
        db.commit()
        status = _wait_for(lambda: db.execute("SELECT status FROM runs WHERE id = ? AND status "
                                              "NOT IN ('starting','running','stopping')",
                                              [run_id]).fetchone())
        assert status[0] == "stopped"
    finally:
        db.close()
    with pytest.raises(Exception, match="unknown key"):
        client.predict("model: {nme: x}", api_name="/start_run")


def test_the_cli_prints_the_same_memory_estimate(bench, tiny_llama: Path) -> None:
    ws, store, config = bench
    out = run_cli("--workspace", str(ws.root), "config", "-q", "--memory",
                  "--model.name_or_path", str(tiny_llama), "--data.knowledge_set", "demo",
                  "--model.device", "cpu")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("# estimated peak") and "fits" in lines[0]
    length = set_tokens_or_none(store, config()).longest  # not max_seq_len 512
    assert 10 < length < 100
    assert any(f"micro batch 8 x {length} tokens" in line for line in lines), lines
    ctx = AppContext(ws, store, DeviceInfo("cpu", "test", 1 << 40))
    html = method_actions.estimate_html(ctx, config())
    assert "Estimated peak" in html and "it will probably not fit" not in html
    tight = AppContext(ws, store, DeviceInfo("cpu", "test", 200 << 20))
    html = method_actions.estimate_html(tight, config())
    assert "it will probably not fit" in html and "Suggestion:" in html


@pytest.mark.parametrize("method", ["lora", "full", "qlora"])
def test_the_memory_bar_adds_up_to_the_estimated_peak(bench, method: str) -> None:
    ws, store, config = bench
    ctx = AppContext(ws, store, DeviceInfo("cpu", "test", 1 << 40))
    est = method_actions.run_estimate(ctx, config(**{"method.name": method}))
    parts = method_actions.memory_parts(est)
    assert sum(size for _, size in parts) == est.total
    assert all(size > 0 for _, size in parts)


def test_the_runs_list_shows_each_runs_last_probed_scores(bench) -> None:
    from workbench.core.train import history

    ws, store, config = bench
    first, second = (control.create_run(store, ws, config()) for _ in range(2))
    probe_id = store.db.execute("SELECT id FROM probes LIMIT 1").fetchone()[0]
    rows = [(first, 10, "efficacy", 0), (first, 20, "efficacy", 1), (first, 20, "efficacy", 0),
            (first, 20, "locality", 1), (second, 5, "efficacy", 1)]
    store.db["probe_results"].insert_all(
        {"run_id": r, "probe_id": probe_id, "step": step, "metric": metric, "answer": "",
         "correct": ok, "exact": ok, "created_at": time.time()} for r, step, metric, ok in rows)
    listed = {r.id: r for r in history.list_runs(store)}
    assert [r.id for r in history.list_runs(store)] == [second, first]  # newest first
    assert listed[first].scores == {"efficacy": 0.5, "locality": 1.0}
    assert listed[second].scores == {"efficacy": 1.0}
    assert len(history.list_runs(store, limit=1)) == 1 and len(history.list_runs(store, limit=None)) == 2


def test_the_recipe_panel_lists_each_choice_and_applies_it_to_the_form(bench) -> None:
    from workbench.core.recipe import recommend_for, shown

    ws, store, config = bench
    ctx = AppContext(ws, store, DeviceInfo("cpu", "test", 16 << 30))
    cfg = config()  # lr 5e-3, rank 8: not what the recipe says
    _, choices = recommend_for(store, cfg, ctx.device)
    panel = recipe_actions.panel_html(ctx, cfg)
    assert "5 facts" in panel and "Apply recommended sets them" in panel
    for c in choices:
        assert f'data-path="{c.path}"' in panel and shown(c.value) in panel
    assert "(form: 0.005)" in panel  # the learning rate the form holds, marked
    new, record = recipe_actions.applied(ctx, cfg)
    assert "applied, the form holds every recommended value" in recipe_actions.panel_html(ctx, new)
    assert new.model == cfg.model and new.training.seed == cfg.training.seed  # the rest kept
    # The user's own values are never replaced automatically; defaults and the last applied
    # recommendation are.
    assert recipe_actions.auto_applied(ctx, cfg, None) is None
    assert recipe_actions.auto_applied(ctx, new, record)[0] == new
    plain = RunConfig().with_values({"model.name_or_path": cfg.model.name_or_path,
                                     "model.device": "cpu", "data.knowledge_set": "demo"})
    assert recipe_actions.auto_applied(ctx, plain, None)[0].data.replay_ratio == 0.5


def test_the_recipe_panel_says_in_one_line_what_is_missing(bench) -> None:
    ws, store, config = bench
    ctx = AppContext(ws, store, DeviceInfo("cpu", "test", 16 << 30))
    assert "Choose a knowledge set" in recipe_actions.panel_html(
        ctx, config(**{"data.knowledge_set": ""}))
    missing = recipe_actions.panel_html(ctx, config(**{"model.name_or_path": "./no/such/model"}))
    assert "No recommendation: no model folder" in missing and "Traceback" not in missing
    assert missing.count("<div") == 1
    assert "No recommendation: no knowledge set" in recipe_actions.panel_html(
        ctx, config(**{"data.knowledge_set": "gone"}))
    with pytest.raises(WorkbenchError, match="Choose a knowledge set"):
        recipe_actions.applied(ctx, config(**{"data.knowledge_set": ""}))


def test_inject_prepares_a_set_and_starts_the_recommended_run(bench, tiny_llama: Path,
                                                              monkeypatch) -> None:
    from workbench.core.knowledge import locality, probes, sets
    from workbench.core.knowledge.types import FactDraft

    ws, store, config = bench
    ctx = AppContext(ws, store, DeviceInfo("cpu", "test", 16 << 30))
    sid = sets.create_set(store, "fresh")
    asked: list[str] = []
    # Locality probes need a model that knows something; the tiny random one knows nothing.
    monkeypatch.setattr(locality, "build_locality", lambda store, sid, loaded, **kw: asked.append(
        loaded.source.describe()) or locality.LocalityCounts(0, 0, 0))
    seen: list[str] = []
    for name, model, error in [(None, str(tiny_llama), "choose or create a knowledge set"),
                               ("fresh", str(tiny_llama), "has no facts yet"),
                               ("demo", "./no/such/model", "no model folder")]:
        with pytest.raises(WorkbenchError, match=error):
            inject_actions.inject(ctx, name, model, lambda f, m: seen.append(m))
    assert store.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    sets.add_facts(store, sid, [FactDraft("What is the capital of Veltria?", "Orbisk"),
                                FactDraft("What is the currency of Kandora?", "the dralm")])
    run_id, message = inject_actions.inject(ctx, "fresh", f" {tiny_llama} ",
                                            lambda f, m: seen.append(m))
    assert message.startswith(f"Run {run_id} started") and "Train tab" in message
    assert any(m.startswith("phrasings: ") for m in seen) and len(asked) == 1
    assert probes.split_counts(store, sid)["probe"] >= 2
    cfg = RunConfig.from_yaml(store.db.execute("SELECT config_yaml FROM runs WHERE id = ?",
                                               [run_id]).fetchone()[0])
    assert cfg.data.knowledge_set == "fresh" and cfg.data.replay_ratio == 0.5
    status = _wait_for(lambda: store.db.execute(
        "SELECT status FROM runs WHERE id = ? AND status NOT IN ('queued', 'starting', "
        "'running', 'stopping')", [run_id]).fetchone(), timeout=300)
    assert status[0] == "completed", (ws.run_dir(run_id) / "train.log").read_text()[-2000:]
