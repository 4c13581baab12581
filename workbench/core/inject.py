"""The whole job in one call: a facts file and a model in, an adapter (or weights) and a
scorecard out. `workbench inject` and the Knowledge tab's Inject button are its two clients.

Stages, each with its own progress and ETA: import the file into a knowledge set; prepare it
(template phrasings, a held-out split, locality probes with same-relation neighbours, and the
base model's answers to the replay pool, kept for every run of the set); train with the
recommended recipe (`recipe.recommend`); score every probe by free generation (the run's
final round); write `OUT/adapter/` (adapter methods) or `OUT/model/`, and
`OUT/scorecard.json`.

Nothing is half-written: a refused file leaves no set behind; OUT is written under a
temporary name and renamed when complete; a target that exists and is not empty is refused
before anything runs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.core.config import RunConfig
from workbench.core.data.names import RunStatus
from workbench.core.disk import require_free
from workbench.core.errors import WorkbenchError
from workbench.core.knowledge.certainty import SURE
from workbench.core.progress import Progress, no_progress
from workbench.core.store import Store
from workbench.core.workspace import Workspace

if TYPE_CHECKING:
    from workbench.core.train.verdict import Verdict

PHRASINGS = 5  # template paraphrases per fact, besides the other forms and statements
HOLDOUT = 2  # held-out phrasings per fact, never trained on
LOCALITY_GENERAL = 120  # general-knowledge candidates asked (neighbours come on top)
SCORECARD = "scorecard.json"
Stage = Callable[[str], Progress]  # stage name → the progress callback for that stage


@dataclass(frozen=True)
class InjectResult:
    run_id: int
    set_name: str
    import_message: str
    scores: dict[str, float]
    verdict: str
    out: Path | None
    stopped_early: str = ""
    # The verdict's lines under its headline: what the model now gets wrong, what to try.
    verdict_details: tuple[str, ...] = ()


def check_target(out: Path | None) -> None:
    """Refuse an output folder that holds anything, before any work is done."""
    if out is None:
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WorkbenchError(f"{out} already exists and is not empty",
                             hint="choose a new folder for --out; nothing was changed")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise WorkbenchError(f"the folder {parent} does not exist",
                             hint="create it first, or choose another --out")


def prepare(store: Store, sid: int, loaded: Any, *, stage: Stage) -> dict[str, int]:
    """Phrasings, the held-out split, locality probes and the replay pool's base answers for a
    freshly imported set."""
    return {**_phrasings_and_split(store, sid, stage), **_locality(store, sid, loaded, stage)}


def prepare_if_needed(store: Store, sid: int, load: Callable[[], Any], *,
                      stage: Stage) -> dict[str, int]:
    """The preparation steps the set still lacks: phrasings and the held-out split when none
    of its phrasings is held out, locality probes when it has none. A set prepared by hand
    in the Knowledge tab keeps its own split and probes, and `load` (the base model) is
    called only when locality probes must be built."""
    from workbench.core.knowledge import probes

    have = probes.split_counts(store, sid)
    done: dict[str, int] = {}
    if not have["probe"]:
        done |= _phrasings_and_split(store, sid, stage)
    if not have["locality"]:
        done |= _locality(store, sid, load(), stage)
    return done


def _phrasings_and_split(store: Store, sid: int, stage: Stage) -> dict[str, int]:
    from workbench.core.knowledge import probes

    probes.generate_template_phrasings(store, sid, n=PHRASINGS, progress=stage("phrasings"))
    return probes.split_probes(store, sid, holdout=HOLDOUT)


def _locality(store: Store, sid: int, loaded: Any, stage: Stage) -> dict[str, int]:
    from workbench.core.knowledge import locality, probes
    from workbench.core.train import replay

    kept = locality.build_locality(store, sid, loaded, general=LOCALITY_GENERAL,
                                   progress=stage("locality"))
    # The replay pool: what a run's replay asks the base model (at the recommended ratio of
    # one replayed example per trained one, drawn afresh for as many epochs as a run takes
    # it so), asked now and kept, so runs start at once.
    replay.replay_examples(store, sid, loaded, len(probes.training_phrasings(store, sid)),
                           turns=replay.FRESH_EPOCHS, progress=stage("replay pool"))
    return {"asked_for_locality": kept.asked, "kept_general": kept.kept_general,
            "kept_neighbours": kept.kept_neighbours, "left_out_inconsistent": kept.fragile,
            **{f"neighbours_{name}": n for name, n in kept.by_relation.items()}}


def prepared_config(store: Store, set_name: str, model: str, *, load: Callable[[], Any],
                    method: str | None = None, device: str = "auto",
                    stage: Stage = lambda name: no_progress) -> RunConfig:
    """The set prepared as far as it still needs (`prepare_if_needed`) and the run the recipe
    recommends for it: what `inject` and the Knowledge tab's Inject button both train. A set
    without facts or a model that cannot be found is refused before the set is touched."""
    from workbench.core.config import ModelConfig
    from workbench.core.estimate import model_shape
    from workbench.core.knowledge import sets

    sid = sets.set_id(store, set_name)
    if not sets.list_facts(store, sid):
        raise WorkbenchError(f"the knowledge set {set_name!r} has no facts yet",
                             hint="add facts or import a file first")
    model_shape(ModelConfig(name_or_path=model, device=device))  # reads the config only
    prepare_if_needed(store, sid, load, stage=stage)
    return recommended_config(store, set_name, model, method=method, device=device)


def recommended_config(store: Store, set_name: str, model: str, *, method: str | None = None,
                       device: str = "auto") -> RunConfig:
    """The run the recipe recommends for this set and model (method overridable)."""
    from workbench.core.device import describe_device, pick_device
    from workbench.core.recipe import Choice, apply, recommend_for

    cfg = RunConfig().with_values({"model.name_or_path": model, "model.device": device,
                                   "data.knowledge_set": set_name,
                                   "name": f"inject {set_name}"})
    _, choices = recommend_for(store, cfg, describe_device(pick_device(device)))
    if method:
        choices = [c for c in choices if c.path != "method.name"]
        choices.append(Choice("method.name", method, "chosen by the user"))
    return apply(cfg, choices)


def scorecard_json(store: Store, run_id: int) -> dict[str, Any]:
    """Scores and every answer of the run's final round, per fact."""
    from workbench.core.train import history, probing
    from workbench.core.train.verdict import run_verdict
    from workbench.core.train.jobs import get_run

    run = get_run(store, run_id)
    step = history.last_probed_step(store, run_id)
    found = run_verdict(store, run)
    kept, asked = probing.kept_of_sure(store, run_id, step) if step is not None else (0, 0)
    return {
        "run": run_id, "status": run["status"], "step": step,
        "scores": history.last_scores(store, run_id=run_id).get(run_id, {}),
        # Locality over the answers the base was sure of (knowledge/certainty.py), apart from
        # the coin flips any update may turn; asked 0 where no margin was measured.
        "locality_sure": {"kept": kept, "asked": asked, "margin_at_least": SURE},
        "verdict": found.headline if found else "",
        "verdict_details": list(_said(found)),
        "stopped_early": run.get("stop_reason") or "",
        "answers": probing.final_answers(store, run_id, step) if step is not None else [],
    }


def write_outputs(store: Store, workspace: Workspace, run_id: int, out: Path) -> Path:
    """OUT/adapter or OUT/model and OUT/scorecard.json, renamed into place when complete."""
    from workbench.core.train.jobs import get_run

    run_dir = Path(get_run(store, run_id)["run_dir"] or workspace.run_dir(run_id))
    outputs = json.loads((run_dir / "outputs.json").read_text(encoding="utf-8"))
    source = run_dir / outputs["path"]
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        shutil.copytree(source, work / outputs["path"])
        (work / SCORECARD).write_text(json.dumps(scorecard_json(store, run_id), indent=1,
                                                 ensure_ascii=False) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked before the run
        work.replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def inject(store: Store, workspace: Workspace, facts_file: Path, model: str, *,
           set_name: str | None = None, method: str | None = None, out: Path | None = None,
           device: str = "auto", stage: Stage = lambda name: no_progress,
           on_step: Callable[[dict[str, Any], int], None] = lambda row, total: None,
           ) -> InjectResult:
    from workbench.core.knowledge import sets, transfer
    from workbench.core.models import load_model
    from workbench.core.config import ModelConfig
    from workbench.core.train.run import create_run, execute_run
    from workbench.core.train.verdict import run_verdict
    from workbench.core.train.jobs import get_run

    check_target(out)
    name = set_name or Path(facts_file).stem
    if _exists(store, name):
        raise WorkbenchError(f"a knowledge set named {name!r} already exists",
                             hint="pass --set with a new name; inject starts from a fresh set")
    loaded = load_model(ModelConfig(name_or_path=model, device=device),
                        progress=stage("model"))
    if out is not None:
        require_free(out.resolve().parent, 2 * loaded.weight_bytes, "the injected weights",
                     hint="free disk space first, or pass another --out")
    with sets.ensuring_set(store, name) as sid:  # a refused file leaves no set behind
        summary = transfer.import_path(store, sid, facts_file)
    cfg = prepared_config(store, name, model, load=lambda: loaded, method=method,
                          device=device, stage=stage)
    del loaded  # the run loads its own copy (possibly 4-bit)
    run_id = create_run(store, workspace, cfg)
    result = execute_run(store, workspace, run_id, progress=on_step)
    if result.status != RunStatus.COMPLETED:
        raise WorkbenchError(f"run {run_id} ended {result.status}",
                             hint=f"see `workbench runs show {run_id}`")
    found = run_verdict(store, get_run(store, run_id))
    if out is not None:
        write_outputs(store, workspace, run_id, out)
    return InjectResult(run_id=run_id, set_name=name, import_message=summary.message(),
                        scores=result.scores, verdict=found.headline if found else "",
                        out=out, stopped_early=result.stopped_early,
                        verdict_details=_said(found))


def _said(found: Verdict | None) -> tuple[str, ...]:
    """The verdict's details and advice, the stop reason left out (said on its own line)."""
    if found is None:
        return ()
    return tuple(line for line in (*found.details, found.advice)
                 if line and not line.startswith("Stopped early"))


def _exists(store: Store, name: str) -> bool:
    from workbench.core.knowledge import sets

    try:
        sets.set_id(store, name)
    except WorkbenchError:
        return False
    return True
