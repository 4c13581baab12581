"""The pre-flight memory estimate: exact parameter counts from the config alone, the
breakdown's arithmetic per method, suggestions that really fit, clear errors, and the product
promise that on a CPU the estimate lands within 25 % of the peak the worker measures."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.core.config import ModelConfig, RunConfig
from workbench.core.device import DeviceInfo
from workbench.core.errors import WorkbenchError
from workbench.core.estimate import (CPU_RUNTIME, NF4_BYTES, PAGED_ADAM8_BYTES, batch_seq_len,
                                     estimate_memory, lora_targets, model_shape)
from workbench.core.models import format_bytes, resolve_source
from workbench.core.store import Store
from workbench.core.train import control, jobs
from workbench.core.train.run import render_knowledge
from workbench.testing import build_tiny_model

GiB = 2**30
CPU = DeviceInfo("cpu", "test CPU", 64 * GiB, cpu_cores=2)
H100 = DeviceInfo("cuda", "test H100", 80 * GiB)
RTX = DeviceInfo("cuda", "test 24 GB GPU", 24 * GiB)


@pytest.fixture(scope="module")
def llama7b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config-only folder of Llama-2-7B's shape (LlamaConfig's defaults): no weights."""
    from transformers import LlamaConfig

    folder = tmp_path_factory.mktemp("llama7b")
    LlamaConfig().save_pretrained(folder)
    return folder


def _run(model: Path | str, **values: object) -> RunConfig:
    return RunConfig().with_values({"model.name_or_path": str(model), **values})


# --- the model's shape -------------------------------------------------------------------------
def test_shape_counts_llama_7b_exactly_without_weights(llama7b: Path) -> None:
    shape = model_shape(ModelConfig(name_or_path=str(llama7b)))
    assert shape.total_params == 6_738_415_616  # Llama-2-7B's published count
    assert (shape.n_layers, shape.hidden, shape.intermediate) == (32, 4096, 11008)
    assert (shape.vocab, shape.q_dim, shape.kv_dim) == (32000, 4096, 4096)
    assert shape.embedding_params == shape.head_params == 32000 * 4096  # untied head
    assert shape.linear_params == 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert shape.other_params == 65 * 4096  # two norms per layer + the final norm
    assert model_shape(ModelConfig(name_or_path=str(llama7b))) is shape  # cached


def test_demo_model_shape_works_offline() -> None:
    shape = model_shape(ModelConfig())  # "workbench-demo", HF_HUB_OFFLINE=1 in conftest
    assert shape.source == f"folder {resolve_source('workbench-demo').location}"
    assert shape.head_params == 0 and shape.total_params == 4_720_896  # tied head counted once
    assert (shape.n_layers, shape.vocab, shape.stored_dtype) == (4, 2048, "float32")


def test_an_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="not in the local Hugging Face cache") as err:
        model_shape(ModelConfig(name_or_path="no-such-org/no-such-model-xyz"))
    assert "hf download no-such-org/no-such-model-xyz" in str(err.value)
    with pytest.raises(WorkbenchError, match="no model folder"):
        model_shape(ModelConfig(name_or_path=str(tmp_path / "missing" / "model")))
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(WorkbenchError, match="cannot read the configuration"):
        model_shape(ModelConfig(name_or_path=str(tmp_path)))


@pytest.mark.parametrize("method,targets", [
    ("lora", ["all-linear"]), ("dora", ["all-linear"]), ("lora", ["q_proj", "v_proj"])])
def test_trainable_count_matches_peft(tiny_llama: Path, method: str, targets: list[str]) -> None:
    """LoRA r=8 on the tiny Llama: r·(in+out) per wrapped linear (DoRA: + out), as peft
    builds it on the real model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = _run(tiny_llama, **{"method.name": method, "method.lora_r": 8,
                              "method.target_modules": targets})
    shape = model_shape(cfg.model)
    wrapped = lora_targets(shape, targets)
    by_hand = sum(8 * (i + o) + (o if method == "dora" else 0) for _, i, o in wrapped)
    assert len(wrapped) == (14 if targets == ["all-linear"] else 4)  # 2 layers × 7 (or × 2)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                           LoraConfig(r=8, target_modules="all-linear" if targets == ["all-linear"]
                                      else targets, use_dora=method == "dora"))
    peft_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert by_hand == peft_count == estimate_memory(cfg, device=CPU, seq_len=32).trainable_params


def test_located_trains_what_located_apply_marks(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    from workbench.core.methods import located
    from workbench.core.methods.registry import trainable_parameters

    for layers in ([], [0, 1]):
        cfg = _run(tiny_llama, **{"method.name": "located", "method.located_layers": layers,
                                  "method.located_modules": ["mlp.down_proj", "self_attn"]})
        model = located.apply(AutoModelForCausalLM.from_pretrained(tiny_llama), cfg.method)
        expected = trainable_parameters(model)[0]
        assert estimate_memory(cfg, device=CPU, seq_len=32).trainable_params == expected
    with pytest.raises(WorkbenchError, match="out of range"):
        estimate_memory(_run(tiny_llama, **{"method.name": "located",
                                            "method.located_layers": [5]}), device=CPU)


# --- the breakdown ------------------------------------------------------------------------------
def test_breakdown_arithmetic_lora_qlora_full_on_llama_7b(llama7b: Path) -> None:
    n = 6_738_415_616
    lin = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)  # the quantized weights
    adapters = 32 * 16 * (4 * (4096 + 4096) + 3 * (4096 + 11008))  # r=16, all-linear
    base = {"training.micro_batch_size": 1}

    full = estimate_memory(_run(llama7b, **base, **{"method.name": "full"}), device=H100,
                           seq_len=256)
    assert full.dtype == "bfloat16" and full.weights == 2 * n
    assert full.trainable == 2 * n  # bf16 gradients
    assert full.optimizer == 2 * 2 * n + 2 * n  # two bf16 moments + foreach's sqrt(v)
    assert full.overlap == min(full.trainable, full.activations)

    lora = estimate_memory(_run(llama7b, **base), device=H100, seq_len=256)
    assert lora.trainable_params == adapters == 39_976_960
    assert lora.weights == 2 * n and lora.trainable == 8 * adapters  # fp32 adapters + grads
    assert lora.optimizer == 8 * adapters + 4 * adapters

    qlora = estimate_memory(_run(llama7b, **base, **{"method.name": "qlora"}), device=H100,
                            seq_len=256)
    # NF4 linears; embeddings, head and norms upcast to fp32 by prepare_model_for_kbit_training.
    assert qlora.dtype == "nf4" and qlora.weights == int(lin * NF4_BYTES) + (n - lin) * 4
    assert qlora.optimizer == int(adapters * PAGED_ADAM8_BYTES)  # paged 8-bit AdamW on CUDA
    assert qlora.weights < lora.weights / 3 and qlora.total < lora.total

    # Activations grow with tokens; gradient checkpointing keeps a fraction of them.
    longer = estimate_memory(_run(llama7b, **base), device=H100, seq_len=512)
    assert longer.activations > 1.9 * lora.activations - longer.logits
    recomputed = estimate_memory(_run(llama7b, **base, **{"training.gradient_checkpointing": True}),
                                 device=H100, seq_len=256)
    assert recomputed.activations < lora.activations / 4
    # Totals: runtime + weights + trained + optimizer + activations - overlap.
    for e in (full, lora, qlora):
        assert e.total == (e.runtime + e.weights + e.trainable + e.optimizer + e.activations
                           - e.overlap)


def test_qlora_on_cpu_keeps_plain_adamw_and_the_mapped_checkpoint(tiny_llama: Path) -> None:
    cfg = _run(tiny_llama, **{"method.name": "qlora", "model.device": "cpu"})
    est = estimate_memory(cfg, device=CPU, seq_len=32)
    assert est.optimizer == 2 * 4 * est.trainable_params  # paged 8-bit AdamW is CUDA-only
    shape = model_shape(cfg.model)
    assert est.loading_stays and est.loading == shape.total_params * 4
    assert est.total == (est.runtime + est.weights + est.loading + est.trainable + est.optimizer
                         + est.activations - est.overlap)


def test_logits_dominate_a_small_model_with_a_large_vocabulary(tiny_llama: Path,
                                                               tmp_path: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_llama)
    config.vocab_size = 152_000  # Qwen-sized vocabulary on a 64-wide, 2-layer body
    config.save_pretrained(tmp_path)
    est = estimate_memory(_run(tmp_path), device=H100, seq_len=512)
    assert est.logits > 0.9 * est.activations


def test_lines_say_what_each_part_is(tiny_llama: Path) -> None:
    est = estimate_memory(_run(tiny_llama, **{"model.device": "cpu"}), device=CPU, seq_len=40)
    lines = est.lines()
    assert est.fits and est.suggestion == "" and lines[0].endswith("RAM: fits")
    assert lines[1] == f"weights {format_bytes(est.weights)} (float32)"
    assert any(line.startswith("activations") and "micro batch 8 x 40 tokens" in line
               for line in lines)
    assert lines[-1] == f"runtime {format_bytes(CPU_RUNTIME)} (Python and libraries)"
    here = estimate_memory(_run(tiny_llama, **{"model.device": "cpu"}))  # this machine's RAM
    assert here.device == "cpu" and here.capacity > 0 and here.seq_len == 512  # max_seq_len


# --- suggestions ---------------------------------------------------------------------------------
def _assert_suggestion_fits(cfg: RunConfig, device: DeviceInfo, seq_len: int) -> str:
    est = estimate_memory(cfg, device=device, seq_len=seq_len)
    assert not est.fits and est.suggestion and est.suggested_values
    fixed = estimate_memory(cfg.with_values(dict(est.suggested_values)), device=device,
                            seq_len=seq_len)
    assert fixed.fits and fixed.total < est.total
    assert est.suggestion.endswith(format_bytes(fixed.total))
    return est.suggestion


def test_suggestion_is_the_least_disruptive_change_that_fits(llama7b: Path) -> None:
    # LoRA on 7B at micro batch 16 × 512 tokens: activations overflow 24 GB; a smaller micro
    # batch with more accumulation trains the same and fits.
    big_batch = _run(llama7b, **{"training.micro_batch_size": 16})
    text = _assert_suggestion_fits(big_batch, RTX, 512)
    assert text.startswith("micro batch ") and "same effective batch" in text
    # Full fine-tuning of 7B needs ~5x its 13 GB weights: no batch size helps, a lighter
    # method does.
    full = _run(llama7b, **{"method.name": "full", "training.micro_batch_size": 1})
    assert _assert_suggestion_fits(full, RTX, 256).startswith("use lora instead of full")
    # Even the weights alone do not fit: nothing but a smaller model.
    tiny = DeviceInfo("cuda", "test 2 GB GPU", 2 * GiB)
    est = estimate_memory(_run(llama7b), device=tiny, seq_len=256)
    assert est.suggestion == "a smaller model" and est.suggested_values == ()
    assert "to fit: a smaller model" in est.lines()


def test_suggestion_can_combine_changes(llama7b: Path) -> None:
    # QLoRA of 7B at micro batch 16 × 2048 on 16 GB: the 4-bit base fits, the activations
    # need both a small micro batch and checkpointing.
    gpu16 = DeviceInfo("cuda", "test 16 GB GPU", 16 * GiB)
    cfg = _run(llama7b, **{"method.name": "qlora", "training.micro_batch_size": 16,
                           "data.max_seq_len": 2048})
    text = _assert_suggestion_fits(cfg, gpu16, 2048)
    assert " and " in text or "gradient checkpointing" in text


# --- the knowledge set's length ----------------------------------------------------------------
def test_batch_seq_len_is_the_longest_rendered_example(bench) -> None:
    ws, store, config = bench
    cfg = config()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model.name_or_path)
    longest = max(len(r.input_ids) for r in render_knowledge(store, cfg, tok).rendered)
    assert batch_seq_len(store, cfg, tok) == longest < cfg.data.max_seq_len
    capped = cfg.with_values({"data.max_seq_len": longest - 1})
    assert batch_seq_len(store, capped, tok) <= longest - 1


# --- against the worker's measurement ----------------------------------------------------------
def _measured_peak(store: Store, ws, cfg: RunConfig) -> int:
    """The worker's max mem_peak: the process's peak RSS, so the run needs its own process."""
    run_id = control.start_run(store, ws, cfg)
    assert control.wait(run_id, timeout=300) == 0, jobs.log_tail(ws.run_dir(run_id))
    assert jobs.get_run(store, run_id)["status"] == "completed"
    return int(store.db.execute("SELECT max(mem_peak) FROM metrics WHERE run_id = ?",
                                [run_id]).fetchone()[0])


def _check_against_worker(bench, model: Path | str, values: dict[str, object], *,
                          model_share: bool = True) -> None:
    from transformers import AutoTokenizer

    ws, store, config = bench
    cfg = config(**{"model.name_or_path": str(model), "training.epochs": 2, **values})
    seq_len = batch_seq_len(store, cfg, AutoTokenizer.from_pretrained(model))
    est = estimate_memory(cfg, device=CPU, seq_len=seq_len)
    measured = _measured_peak(store, ws, cfg)
    error = (est.total - measured) / measured
    print(f"\n{cfg.method.name} {values}: estimate {est.total / 2**20:.0f} MiB, measured "
          f"{measured / 2**20:.0f} MiB, error {error:+.1%}\n  " + "\n  ".join(est.lines()))
    assert abs(error) <= 0.25, (est.total, measured, est.lines())
    if model_share:  # model-dependent memory is a real share of the peak, not just runtime
        assert measured > 1.3 * CPU_RUNTIME


@pytest.fixture(scope="module")
def llama768(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 33M-parameter random Llama (hidden 768, 6 layers): 130 MB of fp32 weights, ~4x that
    under full fine-tuning, activations of ~0.2 GB at micro batch 8."""
    return build_tiny_model(tmp_path_factory.mktemp("llama768"), "llama", hidden_size=768,
                            layers=6)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_estimate_is_within_25_percent_of_the_worker_peak_on_cpu(bench, llama768: Path,
                                                                 method: str) -> None:
    _check_against_worker(bench, llama768, {"method.name": method,
                                            "training.micro_batch_size": 8})


@pytest.mark.slow
@pytest.mark.parametrize("values", [
    {"method.name": "qlora", "training.micro_batch_size": 8},
    {"method.name": "prompt_distillation", "training.micro_batch_size": 8},
    {"method.name": "dora", "training.micro_batch_size": 8},
    {"method.name": "located", "training.micro_batch_size": 8},
    {"training.gradient_checkpointing": True, "training.micro_batch_size": 8},
    {"method.name": "full", "training.gradient_checkpointing": True,
     "training.micro_batch_size": 8},
    {"training.micro_batch_size": 16},
], ids=lambda v: "-".join(str(x) for x in v.values()))
def test_more_configurations_are_within_25_percent_on_cpu(bench, llama768: Path,
                                                          values: dict[str, object]) -> None:
    _check_against_worker(bench, llama768, values)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_demo_model_is_within_25_percent_on_cpu(bench, method: str) -> None:
    _check_against_worker(bench, resolve_source("workbench-demo").location,
                          {"method.name": method, "training.micro_batch_size": 8},
                          model_share=False)  # 19 MB of weights: the runtime dominates


def test_the_bar_legend_and_the_breakdown_give_the_same_activations() -> None:
    """The Method tab's legend shows activations net of what the backward pass frees; the
    words below it gave the gross figure and read 158.5 against the legend's 157.5 MiB."""
    from workbench.core.estimate import MemoryEstimate
    from workbench.ui.method_actions import memory_parts

    mib = 2**20
    est = MemoryEstimate(weights=100 * mib, trainable=2 * mib, optimizer=4 * mib,
                         activations=int(158.5 * mib), logits=20 * mib, overlap=1 * mib,
                         loading=0, loading_stays=False, runtime=450 * mib,
                         total=int((100 + 2 + 4 + 157.5 + 450) * mib), capacity=24 * 2**30,
                         device="cpu", dtype="float32", method="lora", seq_len=128, batch=16,
                         trainable_params=10**6)
    legend = dict(memory_parts(est))["activations"]
    assert format_bytes(legend) == "157.5 MiB"
    text = "; ".join(est.lines())
    assert "activations 157.5 MiB at the peak" in text
    assert "of 158.5 MiB of activations, 1.0 MiB are freed" in text
    assert sum(dict(memory_parts(est)).values()) == est.total


# --- several processes ---------------------------------------------------------------------------
def test_fsdp_divides_what_it_shards_by_the_processes(llama7b: Path) -> None:
    """The issue's case: a 7B model in bf16 LoRA does not fit a 12 GB card, nor two under DDP
    (each holds it all); FSDP over two puts half the layers in each, plus the two layers it
    gathers at a time and the embeddings and head it keeps whole."""
    card = DeviceInfo("cuda", "test 12 GB GPU", 12 * GiB, count=2)
    base = {"training.micro_batch_size": 1, "training.gradient_checkpointing": True}
    one = estimate_memory(_run(llama7b, **base), device=card, seq_len=256)
    ddp = estimate_memory(_run(llama7b, **base, **{"training.processes": 2}), device=card,
                          seq_len=256)
    fsdp = estimate_memory(_run(llama7b, **base, **{"training.processes": 2,
                                                    "training.distributed": "fsdp"}),
                           device=card, seq_len=256)
    assert not one.fits and not ddp.fits and fsdp.fits
    assert ddp.total == one.total and not ddp.sharded
    shape = model_shape(ModelConfig(name_or_path=str(llama7b)))
    root = (shape.embedding_params + shape.head_params) * 2
    layers = one.weights - root
    assert fsdp.weights == layers // 2 + 2 * layers // 32 + root
    assert fsdp.optimizer == -(-one.optimizer // 2) and fsdp.trainable == -(-one.trainable // 2)
    assert fsdp.activations == one.activations  # each process runs its own micro-batch
    assert any("per process of 2 (fsdp)" in line for line in fsdp.lines())
    assert any("per process of 2 (ddp)" in line and "fsdp would split" in line
               for line in ddp.lines())
