"""Sharded training (`training.distributed: fsdp`): accelerate's FSDP2 plugin, and what a run
needs beyond DDP once no process holds the whole model.

Under FSDP2 (`fully_shard`, one unit per decoder layer plus the root) every parameter is a
DTensor holding 1/N of its rows; a forward pass all-gathers one layer at a time (and prefetches
the next). Memory per process is then about weights/N + two gathered layers + (trained weights,
gradients, optimizer state)/N + activations, where DDP keeps all of it in every process. What
that costs the rest of the run, and how this module pays it:

- a forward pass needs every rank, so probe rounds (free generation) run on all ranks in
  lockstep (`generate(synced_gpus=True)`, and a Stop decided between batches, `Ranks.agree`),
  and only rank 0 writes answers, metrics and files;
- no rank can `save_pretrained` or `copy_` a tensor into a parameter alone: checkpoints,
  the best round's adapter and the outputs are gathered whole (torch.distributed.checkpoint's
  `get_state_dict(full_state_dict=True)`, on the CPU) and written by rank 0 in the same files a
  single process writes, so a run trained on two GPUs resumes on one, and loads in Compare and
  export; loading puts full tensors back with `set_state_dict`, which slices each rank's share;
- decisions made from answers (best round, early stop, the shrink search) are rank 0's,
  broadcast, since a rank that decided otherwise would wait forever in the next all-gather.

accelerate enables its FSDP plugin only for GPU-type launches; on a CPU launch (gloo, the
tests) the same plugin is adopted by hand (`adopt`), so the tests run the code users run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FSDP = "fsdp"  # training.distributed's value for sharded training


def fsdp_plugin() -> Any:
    """FSDP2 over every decoder layer (the model's `_no_split_modules`), resharding after
    each forward (lowest memory; the backward gathers each layer again), full state dicts."""
    from accelerate import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap", reshard_after_forward=True,
        state_dict_type="FULL_STATE_DICT", cpu_ram_efficient_loading=False)


def world_size() -> int:
    """Processes of this launch, from the launcher's environment (before any process group)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def wants_fsdp(distributed: str) -> bool:
    return distributed == FSDP and world_size() > 1


def adopt(accelerator: Any, plugin: Any) -> None:
    """Make a CPU launch (accelerate's MULTI_CPU, which ignores `fsdp_plugin`) use `plugin`, as a
    GPU launch does by itself."""
    from accelerate.utils import DistributedType

    state = accelerator.state
    if state.distributed_type == DistributedType.MULTI_CPU:
        state.distributed_type = DistributedType.FSDP
        state.fsdp_plugin = plugin


def enable_generate(model: Any) -> None:
    """`generate` enters through the root's FSDP hooks (it is not `forward`): without it the
    root's own parameters (embeddings, final norm, head) stay sharded during generation."""
    from torch.distributed.fsdp import register_fsdp_forward_method

    register_fsdp_forward_method(model, "generate")


def held_bytes(model: Any) -> tuple[int, int]:
    """(bytes of parameters this process holds, bytes of all of them): under FSDP each
    process holds its slices (`to_local`), under DDP or alone the whole model."""
    held = total = 0
    for param in model.parameters():
        local = param.to_local() if hasattr(param, "to_local") else param
        held += local.numel() * local.element_size()
        total += param.numel() * param.element_size()
    return held, total


# What the communication backends say when the process at the other end is gone.
_PEER_GONE = ("connection reset by peer", "connection closed by peer", "broken pipe",
              "nccl communicator was aborted", "socket timeout")


def peer_lost(err: BaseException) -> bool:
    """True when `err` is a collective failing because another rank of the launch died."""
    if world_size() < 2:
        return False
    from torch.distributed import DistError

    text = str(err).lower()
    return isinstance(err, DistError) or (isinstance(err, RuntimeError)
                                          and any(s in text for s in _PEER_GONE))


# --- gathering and scattering whole tensors ---------------------------------------------------

def _options(**kwargs: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_state(model: Any, *, trainable_only: bool) -> dict[str, Any]:
    """The model's full state dict on rank 0 (CPU tensors), {} elsewhere; every rank must call."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_options(cpu_offload=True,
                                                         ignore_frozen_params=trainable_only))
    if not trainable_only:
        return state
    # A tied head comes back under its own name too, though frozen: keep what trains.
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    return {name: tensor for name, tensor in state.items() if name in trained}


def full_optimizer(model: Any, optimizer: Any) -> dict[str, Any]:
    """The optimizer's full state on rank 0 in torch's own layout (state and param_groups by
    parameter index, as `optimizer.state_dict()` gives in one process), {} elsewhere."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    from workbench.core.train.checkpoint import optimizer_param_names

    by_name = get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))
    if not by_name:
        return {}
    index = {name: i for i, name in enumerate(optimizer_param_names(model, optimizer))}
    return {"state": {index[name]: value for name, value in by_name["state"].items()},
            "param_groups": [{**group, "params": [index[n] for n in group["params"]]}
                             for group in by_name["param_groups"]]}


def load_full(model: Any, optimizer: Any, trainable: dict[str, Any],
              optimizer_state: dict[str, Any] | None, *, from_rank0: bool = False) -> None:
    """Put full tensors (a checkpoint written by one process or by rank 0) into the sharded
    model and optimizer; each rank keeps its slice. Every rank must call, with the same data,
    or with `from_rank0` only rank 0's (the others pass {}: a file only rank 0's machine has)."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_state_dict

    from workbench.core.train.checkpoint import optimizer_param_names

    options = _options(strict=False, broadcast_from_rank0=from_rank0)
    if optimizer is None or optimizer_state is None:
        set_model_state_dict(model, trainable, options=options)
        return
    names = optimizer_param_names(model, optimizer)
    by_name = {"state": {names[i]: value for i, value in optimizer_state["state"].items()},
               "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                                for group in optimizer_state["param_groups"]]}
    set_state_dict(model, optimizer, model_state_dict=trainable, optim_state_dict=by_name,
                   options=options)


def load_adapter(model: Any, folder: Path) -> None:
    """A saved peft adapter (the best round's, written by rank 0) back into the sharded model;
    rank 0 reads it and sends each rank its slices. Its keys are the parameter names without
    the adapter's name (".default"), as peft saves them."""
    import torch.distributed as dist
    from safetensors.torch import load_file

    from workbench.core.models import ADAPTER_WEIGHTS

    full = {}
    if dist.get_rank() == 0:
        saved = load_file(str(folder / ADAPTER_WEIGHTS))
        for name, param in model.named_parameters():
            key = name.replace(".default.", ".").replace(".default", "")
            if param.requires_grad and key in saved:
                full[name] = saved[key]
    load_full(model, None, full, None, from_rank0=True)


# --- one decision for every rank ------------------------------------------------------------

@dataclass(frozen=True)
class Ranks:
    """This process's place in the launch. `lockstep`: the model is sharded, so every rank
    must take part in every forward pass (probes included) and in every gather."""

    main: bool = True
    world: int = 1
    lockstep: bool = False
    device: str = "cpu"  # where a collective's tensors live (NCCL wants them on the GPU)

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank (a Stop, an early stop): the others must stop at the
        same step, or they would wait forever in the next collective."""
        return bool(self.from_main(bool(flag)))

    def from_main(self, value: Any) -> Any:
        """Rank 0's `value` (picklable) on every rank; every rank must call it."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shared(self, value: Any) -> Any:
        """In lockstep, rank 0's `value` on every rank; otherwise `value` (then only rank 0
        runs the probes, and no other rank is there to ask)."""
        return self.from_main(value) if self.lockstep else value

    def save_pretrained(self, model: Any, folder: Path, *, trainable_only: bool = True) -> None:
        """`model.save_pretrained(folder)`, by rank 0 from the gathered tensors when sharded."""
        if not self.lockstep:
            if self.main:
                model.save_pretrained(folder)
            return
        state = full_state(model, trainable_only=trainable_only)
        if self.main:
            model.save_pretrained(folder, state_dict=state)

    def max_over_ranks(self, values: dict[str, Any]) -> dict[str, Any]:
        """Each value the largest of every rank's (per-process memory), on every rank; None
        where no rank could read it."""
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        keys = list(values)
        box = torch.tensor([-1.0 if values[k] is None else float(values[k]) for k in keys],
                           dtype=torch.float64, device=self.device)
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        return {k: None if v < 0 else int(v) for k, v in zip(keys, box.tolist())}
