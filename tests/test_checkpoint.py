"""Training checkpoints: a resume from one continues exactly as the uninterrupted run would,
interrupted or damaged checkpoints are never picked, and nothing but safetensors and JSON is
read or written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from workbench.core.errors import WorkbenchError
from workbench.core.train import checkpoint as ckpt
from workbench.core.train.checkpoint import (CHECKPOINTS, latest_complete, load_checkpoint,
                                             prune_checkpoints, save_checkpoint)

STATE = {"step": 3, "epoch": 1, "micro_batch_size": 8, "gradient_accumulation_steps": 1,
         "best_generalization": 0.6}


# --- helpers -----------------------------------------------------------------------------------

def _inputs(vocab: int, steps: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1234)
    return [torch.randint(0, vocab, (2, 12), generator=gen) for _ in range(steps)]


def _lora_model(tiny_llama: Path, r: int = 4, seed: int = 0) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)  # LoRA A matrices start random: a fresh model differs until loaded
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    # Dropout makes every step draw from the RNG, so an unrestored RNG would show in the losses.
    return get_peft_model(base, LoraConfig(r=r, lora_alpha=8, lora_dropout=0.1,
                                           target_modules="all-linear"))


def _full_model(tiny_llama: Path, tie: bool) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    if tie:
        model.lm_head.weight = model.get_input_embeddings().weight
        model.config.tie_word_embeddings = True
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight is model.get_input_embeddings().weight
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _optim(model: Any, total: int = 10) -> tuple[Any, Any]:
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-3, weight_decay=0.01)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=2, num_training_steps=total)
    return optimizer, scheduler


def _train(model: Any, optimizer: Any, scheduler: Any, batches: list[torch.Tensor]) -> list[float]:
    model.train()
    losses = []
    for ids in batches:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def _trainable(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _assert_same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [n for n in a if not torch.equal(a[n], b[n])]
    assert different == []


def _assert_resumes_exactly(tmp_path: Path, build: Any) -> None:
    """Train 3 steps, checkpoint, train 2 more; then a fresh model, optimizer and scheduler
    loaded from the checkpoint must take the same 2 steps bit for bit."""
    model = build(seed=0)
    optimizer, scheduler = _optim(model)
    batches = _inputs(model.config.vocab_size, 5)
    _train(model, optimizer, scheduler, batches[:3])
    path = save_checkpoint(tmp_path, 3, model, optimizer, scheduler, STATE)
    expected_losses = _train(model, optimizer, scheduler, batches[3:])
    expected_params = _trainable(model)
    expected_lr = scheduler.get_last_lr()

    fresh = build(seed=99)
    fresh_optimizer, fresh_scheduler = _optim(fresh)
    torch.manual_seed(12345)  # a different RNG state than at the save
    assert load_checkpoint(path, fresh, fresh_optimizer, fresh_scheduler) == STATE
    losses = _train(fresh, fresh_optimizer, fresh_scheduler, batches[3:])
    assert losses == expected_losses
    _assert_same_params(_trainable(fresh), expected_params)
    assert fresh_scheduler.get_last_lr() == expected_lr


def _linear() -> tuple[torch.nn.Module, Any, Any]:
    """A model small enough to save many times in a test."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer, scheduler = _optim(model)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def _save_linear(run_dir: Path, *steps: int) -> list[Path]:
    model, optimizer, scheduler = _linear()
    return [save_checkpoint(run_dir, s, model, optimizer, scheduler, {"step": s}) for s in steps]


# --- exact resume ------------------------------------------------------------------------------

def test_lora_resume_continues_exactly(tmp_path: Path, tiny_llama: Path) -> None:
    _assert_resumes_exactly(tmp_path, lambda seed: _lora_model(tiny_llama, seed=seed))
    folder = tmp_path / CHECKPOINTS / "step-00000003"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["COMPLETE", "optimizer.json", "optimizer.safetensors", "rng.safetensors",
                     "scheduler.json", "state.json", "trainable.safetensors"]
    manifest = json.loads((folder / "COMPLETE").read_text())
    assert manifest["step"] == 3
    assert manifest["files"] == {n: (folder / n).stat().st_size for n in names if n != "COMPLETE"}


def test_lora_checkpoint_holds_only_the_lora_weights(tmp_path: Path, tiny_llama: Path) -> None:
    from safetensors import safe_open

    model = _lora_model(tiny_llama)
    path = save_checkpoint(tmp_path, 1, model, None, None, {"step": 1})
    with safe_open(str(path / "trainable.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert keys and all("lora_" in k for k in keys)
    assert keys == {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_full_fine_tuning_resume_continues_exactly(tmp_path: Path, tiny_llama: Path,
                                                   tie: bool) -> None:
    def build(seed: int) -> Any:
        torch.manual_seed(seed)
        model = _full_model(tiny_llama, tie)
        if seed:  # the fresh model must not match by luck
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)
        return model

    _assert_resumes_exactly(tmp_path, build)


def test_optimizer_state_keeps_dtypes_shapes_and_plain_values(tmp_path: Path) -> None:
    """8-bit optimizers keep uint8 state with float absmax and int counters; AdamW keeps a 0-dim
    float32 `step`. All must come back with their dtype, shape and type."""

    class QuantState(torch.optim.Optimizer):
        def __init__(self, params: Any) -> None:
            super().__init__(params, {"lr": 0.1, "betas": (0.9, 0.99), "optim_bits": 8})
            self.given: dict[str, Any] = {}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            # torch's own load then casts float state to the parameter dtype (and bitsandbytes'
            # keeps uint8): that is the optimizer's policy; what it is given must be exact.
            self.given = state_dict
            super().load_state_dict(state_dict)

        def step(self, closure: Any = None) -> None:
            for group in self.param_groups:
                for p in group["params"]:
                    s = self.state[p]
                    s["step"] = s.get("step", 0) + 1
                    s["state1"] = torch.arange(p.numel(), dtype=torch.uint8).view_as(p)
                    s["absmax1"] = torch.tensor([0.5, 2.0])
                    s["scale"] = torch.tensor(3.0, dtype=torch.bfloat16)

    model = torch.nn.Linear(3, 2)
    optimizer = QuantState(model.parameters())
    optimizer.step()
    path = save_checkpoint(tmp_path, 1, model, optimizer, None, {})
    fresh = QuantState(model.parameters())
    load_checkpoint(path, model, fresh)
    before, after = optimizer.state_dict(), fresh.given
    assert before["param_groups"] == after["param_groups"]
    assert isinstance(after["param_groups"][0]["betas"], tuple)
    assert before["state"].keys() == after["state"].keys()
    for index, state in before["state"].items():
        restored = after["state"][index]
        assert restored["step"] == 1 and type(restored["step"]) is int
        for key in ("state1", "absmax1", "scale"):
            assert restored[key].dtype == state[key].dtype
            assert torch.equal(restored[key], state[key])
        assert restored["scale"].dim() == 0


def test_adamw_step_stays_a_float32_scalar(tmp_path: Path) -> None:
    model, optimizer, scheduler = _linear()
    path = save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {})
    fresh_optimizer, fresh_scheduler = _optim(model)
    load_checkpoint(path, model, fresh_optimizer, fresh_scheduler)
    step = fresh_optimizer.state_dict()["state"][0]["step"]
    assert step.dtype == torch.float32 and step.dim() == 0 and step.item() == 1.0


def test_scheduler_json_keeps_what_lambda_lr_needs(tmp_path: Path) -> None:
    model, optimizer, scheduler = _linear()
    path = save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {})
    saved = json.loads((path / "scheduler.json").read_text())
    assert saved["type"] == "LambdaLR" and saved["dropped"] == []
    assert saved["state"]["last_epoch"] == 1 and saved["state"]["base_lrs"] == [5e-3]


def test_optimizer_and_scheduler_are_optional(tmp_path: Path) -> None:
    model, _, _ = _linear()
    path = save_checkpoint(tmp_path, 7, model, None, None, {"step": 7})
    other = torch.nn.Linear(4, 3)
    assert load_checkpoint(path, other) == {"step": 7}
    assert torch.equal(other.weight, model.weight)
    with pytest.raises(WorkbenchError, match="without an optimizer state"):
        load_checkpoint(path, other, _optim(other)[0])


# --- finding a complete checkpoint --------------------------------------------------------------

def test_latest_complete_is_the_newest_step(tmp_path: Path) -> None:
    assert latest_complete(tmp_path) is None
    _save_linear(tmp_path, 5, 100, 20)
    assert latest_complete(tmp_path) == tmp_path / CHECKPOINTS / "step-00000100"


def test_a_partial_folder_is_ignored(tmp_path: Path) -> None:
    good, newer = _save_linear(tmp_path, 10, 20)
    # What a crash during the save of step 30 leaves behind: a partial, with or without manifest.
    partial = tmp_path / CHECKPOINTS / ".step-00000030.partial"
    partial.mkdir()
    (partial / "trainable.safetensors").write_bytes(b"12345")
    (partial / "COMPLETE").write_text(json.dumps({"step": 30, "files": {}}))
    assert latest_complete(tmp_path) == newer


@pytest.mark.parametrize("damage", ["no manifest", "bad manifest", "truncated file",
                                    "missing file"])
def test_a_damaged_checkpoint_is_ignored(tmp_path: Path, damage: str) -> None:
    previous, broken = _save_linear(tmp_path, 10, 20)
    if damage == "no manifest":
        (broken / "COMPLETE").unlink()
    elif damage == "bad manifest":
        (broken / "COMPLETE").write_text('{"step": 20, "files": {"trainable.safet')
    elif damage == "truncated file":
        data = (broken / "optimizer.safetensors").read_bytes()
        (broken / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    else:
        (broken / "rng.safetensors").unlink()
    assert latest_complete(tmp_path) == previous
    model, optimizer, scheduler = _linear()
    with pytest.raises(WorkbenchError, match="incomplete or damaged"):
        load_checkpoint(broken, model, optimizer, scheduler)


def test_saving_a_step_again_replaces_it(tmp_path: Path) -> None:
    model, optimizer, scheduler = _linear()
    save_checkpoint(tmp_path, 4, model, optimizer, scheduler, {"step": 4, "round": 1})
    stale = tmp_path / CHECKPOINTS / ".step-00000004.partial"
    stale.mkdir()
    (stale / "junk").write_text("left by a crash")
    path = save_checkpoint(tmp_path, 4, model, optimizer, scheduler, {"step": 4, "round": 2})
    assert load_checkpoint(path, model, optimizer, scheduler)["round"] == 2
    assert sorted(p.name for p in (tmp_path / CHECKPOINTS).iterdir()) == ["step-00000004"]


def test_a_failed_save_leaves_nothing(tmp_path: Path) -> None:
    model, optimizer, scheduler = _linear()
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {"bad": object()})
    assert list((tmp_path / CHECKPOINTS).iterdir()) == []
    assert latest_complete(tmp_path) is None


@pytest.mark.parametrize("step", [2, 1])  # a new step, and a rerun of the saved step
def test_a_full_disk_mid_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch,
                                                           step: int) -> None:
    import errno

    model, optimizer, scheduler = _linear()
    first = save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {"step": 1})
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    real = ckpt._save_tensors

    def fill_the_disk(tensors: dict, path: Path) -> None:
        if path.name == ckpt.OPTIMIZER_TENSORS:  # half a file, then the disk is full
            path.write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(tensors, path)

    monkeypatch.setattr(ckpt, "_save_tensors", fill_the_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path, step, model, optimizer, scheduler, {"step": step})
    assert latest_complete(tmp_path) == first
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert [p.name for p in (tmp_path / CHECKPOINTS).iterdir()] == [first.name]  # no debris
    assert load_checkpoint(first, model, optimizer, scheduler)["step"] == 1


# --- pruning -----------------------------------------------------------------------------------

def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    _save_linear(tmp_path, 1, 2, 3, 4, 5)
    root = tmp_path / CHECKPOINTS
    (root / ".step-00000006.partial").mkdir()
    (root / "notes.txt").write_text("not ours")  # something else in the folder is left alone
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "step-00000004", "step-00000005"]
    prune_checkpoints(tmp_path, keep=5)
    assert latest_complete(tmp_path) == root / "step-00000005"
    prune_checkpoints(tmp_path, keep=1)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "step-00000005"]


def test_prune_drops_a_damaged_checkpoint_and_counts_only_intact_ones(tmp_path: Path) -> None:
    _, b, c = _save_linear(tmp_path, 1, 2, 3)
    (c / "COMPLETE").unlink()
    prune_checkpoints(tmp_path, keep=1)
    assert sorted(p.name for p in (tmp_path / CHECKPOINTS).iterdir()) == [b.name]


def test_prune_of_a_run_without_checkpoints_does_nothing(tmp_path: Path) -> None:
    prune_checkpoints(tmp_path)
    assert not (tmp_path / CHECKPOINTS).exists()


# --- mismatches --------------------------------------------------------------------------------

def test_loading_into_a_different_lora_rank_fails_clearly(tmp_path: Path, tiny_llama: Path) -> None:
    model = _lora_model(tiny_llama, r=4)
    path = save_checkpoint(tmp_path, 1, model, *_optim(model), {"step": 1})
    other = _lora_model(tiny_llama, r=8)
    with pytest.raises(WorkbenchError) as err:
        load_checkpoint(path, other, *_optim(other))
    message = str(err.value)
    assert "step-00000001" in message and "lora_A" in message
    assert "(4, 64)" in message and "(8, 64)" in message and "LoRA rank" in message
    assert "\n" not in message


def test_loading_into_a_model_with_other_trainable_weights_fails_clearly(tmp_path: Path) -> None:
    model, optimizer, scheduler = _linear()
    path = save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {})
    other = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(WorkbenchError, match="trainable weights the model lacks, e.g. bias"):
        load_checkpoint(path, other)


def test_an_optimizer_over_other_parameters_is_refused(tmp_path: Path) -> None:
    model, optimizer, scheduler = _linear()
    path = save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {})
    only_weight = torch.optim.AdamW([model.weight], lr=1e-3)
    with pytest.raises(WorkbenchError, match="stepped 2 parameters, this one steps 1"):
        load_checkpoint(path, model, only_weight)


# --- what the module may use --------------------------------------------------------------------

def test_the_module_never_uses_object_serialisation() -> None:
    source = Path(ckpt.__file__).read_text(encoding="utf-8")
    for banned in ("pickle", "torch.load", "torch.save", "import marshal", "dill"):
        assert banned not in source.lower(), banned


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, workbench.core.train.checkpoint; sys.exit('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
