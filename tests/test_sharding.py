"""The parts of sharded training that one process can check: how a step is split when a run
resumes on another number of processes, what a config may not combine with FSDP, the 4-bit
storage FSDP needs, and how a lost process and a multi-process run are reported. The
two-process runs themselves are in test_fsdp.py."""

from __future__ import annotations

import pytest

from workbench.core import charts
from workbench.core.config import RunConfig
from workbench.core.errors import ConfigError, WorkbenchError
from workbench.core.train import sharding
from workbench.core.train.loop import split_step


@pytest.mark.parametrize(("step_size", "micro", "world", "expected"), [
    (8, 4, 1, (4, 2)),  # trained on 2 processes x 4, resumed on 1: accumulate 2
    (8, 8, 2, (4, 1)),  # trained on 1 x 8, resumed on 2: 4 each
    (6, 4, 1, (3, 2)),  # 4 does not divide 6: the largest micro-batch that does
    (16, 16, 4, (4, 1)),
    (5, 8, 1, (5, 1)),
])
def test_a_resume_keeps_the_examples_per_step(step_size: int, micro: int, world: int,
                                              expected: tuple[int, int]) -> None:
    got = split_step(step_size, micro, world)
    assert got == expected and got[0] * got[1] * world == step_size


def test_a_step_the_processes_cannot_share_is_refused_with_a_way_out() -> None:
    with pytest.raises(WorkbenchError) as err:
        split_step(9, 4, 2)
    assert "9 examples a step" in err.value.message and "divides 9" in err.value.hint


def test_fsdp_and_the_null_space_projection_are_refused_together() -> None:
    with pytest.raises(ConfigError, match="protect_known"):
        RunConfig().with_values({"training.distributed": "fsdp", "training.protect_known": 0.02})
    assert RunConfig().with_values({"training.distributed": "fsdp"}).training.distributed == "fsdp"
    with pytest.raises(ConfigError):
        RunConfig().with_values({"training.distributed": "zero3"})


def test_a_shardable_4bit_base_stores_its_weights_in_the_compute_dtype() -> None:
    """QLoRA + FSDP: uint8 storage would not survive FSDP's DTensor conversion."""
    import torch

    pytest.importorskip("bitsandbytes")
    from workbench.core.models import _quantization_config

    plain = _quantization_config("4bit", "cpu", torch.bfloat16)
    shardable = _quantization_config("4bit", "cpu", torch.bfloat16, shardable=True)
    assert plain.bnb_4bit_quant_storage == torch.uint8
    assert shardable.bnb_4bit_quant_storage == torch.bfloat16
    assert shardable.bnb_4bit_compute_dtype == torch.bfloat16


def test_fsdp_is_only_wanted_with_several_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not sharding.wants_fsdp("fsdp")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert sharding.wants_fsdp("fsdp") and not sharding.wants_fsdp("ddp")


def test_one_process_needs_no_collectives() -> None:
    ranks = sharding.Ranks()
    assert ranks.agree(True) is True and ranks.from_main({"a": 1}) == {"a": 1}
    assert ranks.shared(0.5) == 0.5
    memory = {"mem_peak": 5, "mem_reserved": None}
    assert ranks.max_over_ranks(memory) == memory


def test_a_lost_process_reads_as_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = RuntimeError("[gloo/transport/tcp/pair.cc:537] Read error: Connection reset by peer")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert sharding.peer_lost(gone)
    assert not sharding.peer_lost(ValueError("bad value"))
    assert not sharding.peer_lost(RuntimeError("CUDA out of memory"))
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not sharding.peer_lost(gone)  # one process has no peer to lose


def test_the_charts_say_whose_memory_and_throughput_they_show() -> None:
    rows = [{"step": 1, "mem_peak": 2**30, "mem_allocated": 2**29, "tokens_per_s": 900.0}]
    title = charts.memory_figure(rows, processes=2, sharded=True).layout.title.text
    assert title == "Memory · largest of 2 processes (FSDP)"
    assert charts.memory_figure(rows).layout.title.text == "Memory"
    assert charts.throughput_figure(rows, processes=2).layout.title.text.endswith(
        "all 2 processes")


def test_weights_load_where_each_process_can_hold_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process loads onto its own card, not all onto the first; a sharded run's
    unquantized weights load into RAM and FSDP moves each process's share to its card."""
    from workbench.core.models import placement

    monkeypatch.setenv("LOCAL_RANK", "1")
    assert placement("cuda", quantized=False) == {"device_map": {"": 1}}
    assert placement("cuda", quantized=True, shardable=True) == {"device_map": {"": 1}}
    assert placement("cuda", quantized=False, shardable=True) == {}
    assert placement("cpu", quantized=False) == {}
    assert placement("cpu", quantized=True) == {"device_map": {"": "cpu"}}
    assert placement("mps", quantized=False) == {"device_map": {"": "mps"}}
    monkeypatch.delenv("LOCAL_RANK")
    assert placement("cuda", quantized=False) == {"device_map": {"": 0}}
