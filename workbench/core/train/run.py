"""One training run, start to finish, in this process.

Claim the device, load the model, apply the method, render the knowledge set (plus replay and
teacher renderings), then train while writing one metrics row per step, asking the facts every
`probe_every` steps and saving a complete checkpoint every `checkpoint_every` steps and at
each epoch's end; finally save the adapter (or weights) with the run YAML into the run
folder. `resume=True` continues from the newest complete checkpoint, redoing only the steps
after it.

The same function runs in the background worker (`control.start_run`), in the foreground
(`workbench train`) and in every process of `accelerate launch`; only the main process writes
to the store and the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.config import RunConfig
from workbench.core.data import runs
from workbench.core.data.names import STEP_METRICS, RunStatus, StepMetric
from workbench.core.errors import WorkbenchError
from workbench.core.generate import Interrupted
from workbench.core.knowledge import probes, sets
from workbench.core.knowledge.render import (RenderReport, Rendered, examples_from_phrasings,
                                             render_set)
from workbench.core.methods.registry import Method, get_method
from workbench.core.models import LoadedModel, load_model
from workbench.core.store import Store, now
from workbench.core.train import jobs, sharding, trackers
from workbench.core.train.calibration import CALIBRATION_FILE
from workbench.core.train.loop import TrainLoop, causal_lm_loss
from workbench.core.train.outputs import save_outputs
from workbench.core.train.runlog import DEBUG_FILE, debug, log, run_logs
from workbench.core.units import format_bytes
from workbench.core.train.shrink import LoraShare, choose_share
from workbench.core.train.tracker import Tracker
from workbench.core.workspace import Workspace

Progress = Callable[[dict[str, Any], int], None]  # (metrics row, planned steps)

METRIC_COLUMNS = STEP_METRICS  # the old name, kept for callers


@dataclass
class RunSummary:
    run_id: int
    status: RunStatus
    steps: int
    final_loss: float | None
    output_dir: Path
    seconds: float
    scores: dict[str, float]
    stopped_early: str = ""  # why the run stopped before its last step, when it did


class Diverged(WorkbenchError):
    """The loss became NaN or infinite."""


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def create_run(store: Store, workspace: Workspace, cfg: RunConfig) -> int:
    sid = sets.set_id(store, cfg.data.knowledge_set) if cfg.data.knowledge_set else None
    run_id = runs.create(store, {
        "name": cfg.name or f"{cfg.method.name} on {cfg.data.knowledge_set or 'no set'}",
        "status": RunStatus.QUEUED.value, "method": cfg.method.name,
        "model": cfg.model.name_or_path, "set_id": sid, "config_yaml": cfg.to_yaml(),
        "created_at": now()}, lambda rid: str(workspace.run_dir(rid)))
    cfg.save(workspace.run_dir(run_id) / "run.yaml")
    return run_id


# --- data ----------------------------------------------------------------------------------
def render_knowledge(store: Store, cfg: RunConfig, tokenizer: Any) -> RenderReport:
    if not cfg.data.knowledge_set:
        raise WorkbenchError("the run has no knowledge set", hint="set data.knowledge_set")
    sid = sets.set_id(store, cfg.data.knowledge_set)
    examples = examples_from_phrasings(sets.list_facts(store, sid), probes.training_phrasings(store, sid),
                                       mode=cfg.data.mode, include_statements=cfg.data.include_statements,
                                       answer_style=cfg.data.answer_style)
    report = render_set(examples, tokenizer, cfg.data.max_seq_len, overflow="drop")
    if not report.rendered:
        raise WorkbenchError(f"knowledge set {cfg.data.knowledge_set!r} gives no training examples",
                             hint="add facts, or raise data.max_seq_len if all were too long")
    return report


def training_examples(store: Store, cfg: RunConfig, loaded: LoadedModel, method: Method, *,
                      should_stop: Callable[[], bool] | None = None) -> list[Any]:
    """The rendered knowledge, paired with teacher renderings for distillation, plus replay
    (whose screening of the base model's answers a Stop interrupts)."""
    from workbench.core.methods import distill
    from workbench.core.train.replay import FRESH_EPOCHS, replay_count, replay_examples

    report = render_knowledge(store, cfg, loaded.tokenizer)
    sid = sets.set_id(store, cfg.data.knowledge_set)
    rendered = report.rendered
    if method.distills:
        rendered = distill.attach_teachers(rendered, sets.list_facts(store, sid), loaded.tokenizer,
                                           cfg.data.max_seq_len)
        if not rendered:
            raise WorkbenchError("prompt distillation found no question/answer examples to distil",
                                 hint="use data.mode qa and facts with questions")
    n_replay = replay_count(len(rendered), cfg.data.replay_ratio)
    if n_replay and not method.distills:
        turns = max(1, min(cfg.training.epochs, FRESH_EPOCHS))
        replay = replay_examples(store, sid, loaded, n_replay, turns=turns,
                                 seed=cfg.training.seed, should_stop=should_stop)
        log.info("replay: %d of %d wanted examples the base model answers correctly%s",
                 len(replay), n_replay * turns,
                 f", a part for each of {turns} epochs" if turns > 1 else "")
        rendered = rendered + render_set(replay, loaded.tokenizer, cfg.data.max_seq_len).rendered
    log.info("training examples: %d (%d dropped as too long)", len(rendered), report.dropped)
    return rendered


# --- the run -------------------------------------------------------------------------------
class StopSignal:
    """Stop requests: the run row's flag (UI, `workbench runs stop`) or SIGTERM. Both let the
    current step finish, then save and exit; before the loop starts SIGTERM exits at once."""

    def __init__(self, store: Store, run_id: int) -> None:
        # in_loop stays True once training began: from then on a stop must never cut a
        # checkpoint or the final save short.
        self.store, self.run_id, self.signalled, self.in_loop = store, run_id, False, False
        self._previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. called from a UI thread): flag only
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.signalled = True
        if not self.in_loop:
            raise SystemExit(143)

    def requested(self) -> bool:
        return self.signalled or jobs.stop_requested(self.store, self.run_id)

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def execute_run(store: Store, workspace: Workspace, run_id: int, *, resume: bool = False,
                progress: Progress = lambda row, total: None) -> RunSummary:
    out = workspace.run_dir(run_id)
    main = is_main_process()
    with run_logs(out) if main else contextlib.nullcontext():
        return _execute(store, run_id, out, main=main, resume=resume, progress=progress,
                        calibration=workspace.root / CALIBRATION_FILE)


def _execute(store: Store, run_id: int, out: Path, *, main: bool, resume: bool,
             progress: Progress, calibration: Path) -> RunSummary:
    cfg = RunConfig.from_run(runs.get(store, run_id))
    started = time.perf_counter()
    stop = StopSignal(store, run_id)
    try:
        if main:
            from workbench.core.device import pick_device

            jobs.claim(store, run_id, pick_device(cfg.model.device), resume=resume)
        summary = _train(store, cfg, run_id, out, resume=resume, main=main, stop=stop,
                         progress=progress, calibration=calibration)
        summary.seconds = time.perf_counter() - started
        if main:
            jobs.finish(store, run_id, summary.status, stop_reason=summary.stopped_early)
            log.info("run %d %s after %d steps", run_id, summary.status, summary.steps)
        return summary
    except BaseException as err:
        status, message = _failure(err)
        if main:
            # People read one line; the traceback is for a bug report.
            log.error("run %d %s: %s (details in %s)", run_id, status, message, DEBUG_FILE)
            debug.error("%s", "".join(traceback.format_exception(err)).rstrip())
            jobs.finish(store, run_id, status, error=message, tail=jobs.log_tail(out))
        if isinstance(err, Diverged):
            raise WorkbenchError(f"run {run_id} diverged: {err}", hint=err.hint) from None
        raise
    finally:
        stop.close()


def _failure(err: BaseException) -> tuple[RunStatus, str]:
    """(status, message) for a run that ended by an exception."""
    if isinstance(err, Diverged):
        return RunStatus.DIVERGED, str(err)
    if isinstance(err, (SystemExit, Interrupted)):  # SIGTERM or Stop before the first step
        return RunStatus.STOPPED, "stopped before training began"
    if isinstance(err, KeyboardInterrupt):
        return RunStatus.INTERRUPTED, "interrupted by the user"
    if sharding.peer_lost(err):
        return RunStatus.INTERRUPTED, (
            "another process of the run ended (killed, crashed or its machine went away; its "
            "own output is in the launcher's); resume continues from the last checkpoint")
    text = err.message if isinstance(err, WorkbenchError) else f"{type(err).__name__}: {err}"
    hint = getattr(err, "hint", "")
    return RunStatus.FAILED, f"{text} ({hint})" if hint else text


def _null_space(model: Any, examples: Sequence[Rendered], cfg: RunConfig,
                loaded: LoadedModel) -> Callable[[], None] | None:
    """training.protect_known: LoRA's A projected out of the known answers' directions now
    and after every step (`null_space`); None when off or nothing to protect."""
    from workbench.core.methods.lora import lora_layers
    from workbench.core.train import null_space

    energy = cfg.training.protect_known
    replayed = [r for r in examples if r.example is not None and r.example.replay]
    if not energy or not replayed or not lora_layers(model):
        return None
    found = null_space.projections(model, replayed, loaded.tokenizer.pad_token_id,
                                   loaded.model.device, energy)
    null_space.project(found)
    return lambda: null_space.project(found)


def _train(store: Store, cfg: RunConfig, run_id: int, out: Path, *, resume: bool, main: bool,
           stop: StopSignal, progress: Progress, calibration: Path) -> RunSummary:
    import torch

    from workbench.core.train.checkpoint import checkpoint_state
    from workbench.core.train.telemetry import Telemetry

    trackers.check_installed(cfg.training.report_to)  # before minutes of loading, not after
    torch.manual_seed(cfg.training.seed)  # adapter initialisation is part of the run's recipe
    log.info("loading %s", cfg.model.name_or_path)
    loaded = load_model(cfg.model, quantization=cfg.effective_quantization,
                        shardable=sharding.wants_fsdp(cfg.training.distributed))
    method = get_method(cfg.method.name)
    examples = training_examples(store, cfg, loaded, method, should_stop=stop.requested)
    model = method.apply(loaded.model, cfg.method)
    loss = method.loss_for(cfg.method) or causal_lm_loss  # a method's own loss, or the token loss
    if cfg.data.replay_match == "distribution" and cfg.data.replay_ratio > 0 and not method.distills:
        from workbench.core.train.replay import anchored  # adapter methods only (RunConfig)

        loss = anchored(loss)
    checkpoint = _resume_point(out, run_id) if resume else None
    step_size = checkpoint_state(checkpoint).get("step_size") if checkpoint else None
    loop = TrainLoop(model, examples,
                     settled_precision(cfg, loaded.device, loaded.parameters, calibration),
                     pad_id=loaded.tokenizer.pad_token_id,
                     device=loaded.device, loss=loss, optimizer=method.optimizer,
                     trackers=trackers.accelerator_options(cfg.training.report_to, out),
                     after_step=_null_space(model, examples, cfg, loaded),
                     step_size=step_size)
    if cfg.training.report_to:
        trackers.start(loop.accelerator, cfg.name or f"run {run_id}", cfg.to_dict())
    try:
        state: dict[str, Any] = {}
        if checkpoint is not None:
            state = loop.restore(checkpoint)
            log.info("resumed from %s (step %d)", checkpoint.name, loop.step)
            if state.get("processes", loop.world) != loop.world:
                log.info("trained on %d process(es), continuing on %d: micro-batch %d x %d "
                         "accumulated keeps %d examples a step", state["processes"], loop.world,
                         loop.micro, loop.accum, loop.step_size)
            if main:
                _forget_after(store, run_id, loop.step)
        # MFU against the peak of the precision the matmuls run in (autocast's, if on)
        compute = loop.compute_dtype or str(loaded.dtype)
        telemetry = Telemetry(loop.unwrapped, loaded.device, compute.removeprefix("torch."),
                              calibration=calibration, ranks=loop.ranks)
        log.info("device %s, %d process(es)%s, %d steps of %d examples; %s", loaded.device,
                 loop.world, " sharded (FSDP2)" if loop.ranks.lockstep else "", loop.total,
                 loop.step_size, telemetry.summary())
        if loop.world > 1:
            held, total = sharding.held_bytes(loop.model)
            log.info("parameters held by each process: %s of %s", format_bytes(held),
                     format_bytes(total))
        if loop.world != cfg.training.processes:
            log.info("launched with %d process(es) where training.processes says %d: the "
                     "memory estimate assumed %d", loop.world, cfg.training.processes,
                     cfg.training.processes)
        debug.info("telemetry %s", telemetry.describe())
        sid = sets.set_id(store, cfg.data.knowledge_set)
        tracker = Tracker(store, run_id, loaded, lambda: loop.unwrapped, out, sid,
                          adapter=method.adapter, cfg=cfg, should_stop=stop.requested, state=state,
                          ranks=loop.ranks)
        if main:
            runs.update(store, run_id, {"total_steps": loop.total, "processes": loop.world,
                                        "sharded": int(loop.ranks.lockstep)})
        last_probe = state.get("last_probe_step", 0)

        def on_step(metrics: dict[str, Any]) -> bool:
            nonlocal last_probe
            step = metrics[StepMetric.STEP]
            if not math.isfinite(metrics[StepMetric.LOSS]):
                raise Diverged(f"loss became {metrics[StepMetric.LOSS]} at step {step}",
                               hint="lower training.learning_rate or raise training.warmup_ratio")
            tokens = metrics[StepMetric.TOKENS]
            metrics.update(telemetry.row(tokens, metrics[StepMetric.STEP_SECONDS],
                                         tokens / max(metrics[StepMetric.EXAMPLES], 1)))
            early = False
            if main:
                _record_step(store, run_id, metrics)
                trackers.send(loop.accelerator, metrics, step)
                progress(metrics, loop.total)
            every = cfg.training.probe_every
            # A sharded model is asked by every rank at once (`sharding`); else by rank 0.
            if (main or loop.ranks.lockstep) and every and step % every == 0 and step < loop.total:
                try:
                    trackers.send(loop.accelerator, tracker.probe(step), step, "recall/")
                    early = bool(tracker.stop_reason)
                except Interrupted:  # a Stop mid-round: the round is dropped, the step kept
                    log.info("stop requested while probing at step %d", step)
                    return loop.ranks.agree(True)
                last_probe = step
            if _checkpoint_due(cfg, step, loop):
                loop.save(out, tracker.state(last_probe))
            return loop.ranks.agree(early or stop.requested())

        stop.in_loop = True
        result = loop.run(on_step)
        if result.stopped:
            # Saved before the final scoring, which may take longer than a supervisor's grace
            # period between SIGTERM and SIGKILL (`jobs.STOP_GRACE_S`).
            loop.save(out, tracker.state(result.steps))
        scores: dict[str, Any] = {}
        scoring = main or loop.ranks.lockstep  # who asks the probes (see on_step)
        if loop.ranks.agree(stop.requested()):
            # A user's Stop ends the run now: scoring every probe of a real set takes minutes on
            # a CPU. The checkpoint is saved; Compare scores the run, Resume continues it.
            log.info("stopped at step %d: the final scoring was skipped (score the run in "
                     "Compare, or resume it)", result.steps)
        elif scoring:
            try:
                # The last weights get a live round of their own (seconds), so the best round is
                # weighed against them, not against a round some steps before the end.
                if tracker.best_step is not None and last_probe != result.steps:
                    tracker.probe(result.steps, closing=True)
                load = sharding.load_adapter if loop.ranks.lockstep else _load_adapter
                if tracker.restore_best(lambda folder: load(loop.unwrapped, folder)):
                    log.info("the final round scores the kept weights")
                # DoRA also learns a magnitude: scaling B alone is no interpolation to the base.
                if cfg.training.shrink_update and method.adapter and tracker.live and \
                        not getattr(method.settings, "use_dora", False):
                    choose_share(tracker.ask_facts, LoraShare(loop.unwrapped))
                scores = tracker.probe(result.steps, final=True)
                trackers.send(loop.accelerator, scores, result.steps, "final/")
            except Interrupted:  # a Stop (or SIGTERM) during the final scoring
                log.info("stopped during the final scoring at step %d", result.steps)
                scores = {}
                result.stopped = True
        save_outputs(loop.unwrapped, loaded.tokenizer, cfg, out, method.adapter, loop.ranks)
        telemetry.close()
        status = (RunStatus.STOPPED if result.stopped and not tracker.stop_reason
                  else RunStatus.COMPLETED)
        return RunSummary(run_id, status, result.steps, result.final_loss, out, 0.0, scores,
                          stopped_early=tracker.stop_reason)
    finally:
        # Also when the run fails or is stopped: a tracker's run (wandb, mlflow) is closed,
        # not left open as if still training.
        trackers.finish(loop.accelerator)


def settled_precision(cfg: RunConfig, device: str, parameters: int, calibration: Path) -> Any:
    """cfg.training with mixed precision "auto" settled for a CPU (`calibration.cpu_autocast`)
    for a model of `parameters`; elsewhere the loop settles it."""
    from workbench.core.train.calibration import cpu_precision

    training = cfg.training
    if device != "cpu":
        return training
    choice, why = cpu_precision(training.mixed_precision, cfg.effective_quantization,
                                parameters, calibration)
    if choice == training.mixed_precision:
        return training
    log.info("%s", why)
    return dataclasses.replace(training, mixed_precision=choice)


def _resume_point(out: Path, run_id: int) -> Path:
    from workbench.core.train.checkpoint import latest_complete

    checkpoint = latest_complete(out)
    if checkpoint is None:
        raise WorkbenchError(f"run {run_id} has no complete checkpoint to resume from",
                             hint="start the run again instead")
    return checkpoint


def _load_adapter(model: Any, folder: Path) -> None:
    """Put a saved adapter's weights back into the training model (the best round's)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from workbench.core.models import ADAPTER_WEIGHTS

    set_peft_model_state_dict(model, load_file(str(folder / ADAPTER_WEIGHTS)))


def _checkpoint_due(cfg: RunConfig, step: int, loop: TrainLoop) -> bool:
    """Every `checkpoint_every` steps and at each epoch's end, but not after the last step:
    the run's outputs are saved then, and a finished run is not resumed."""
    if step >= loop.total:
        return False
    every = cfg.training.checkpoint_every
    return bool(every and step % every == 0) or (
        cfg.training.checkpoint_each_epoch and step % loop.per_epoch == 0)


def _forget_after(store: Store, run_id: int, step: int) -> None:
    """Steps after the checkpoint are trained again: drop their rows so charts stay honest."""
    runs.forget_after(store, run_id, step)


def _record_step(store: Store, run_id: int, metrics: dict[str, Any]) -> None:
    row = {k: metrics.get(k) for k in STEP_METRICS}
    row["grad_accum"] = metrics.get("gradient_accumulation_steps")
    runs.record_step(store, run_id, row)
