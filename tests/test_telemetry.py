"""Per-step telemetry: memory, NVML, FLOPs per token, peak FLOP/s, smoothing, and the row."""

from __future__ import annotations

import json

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from workbench.core.train import telemetry as tm


@pytest.fixture(scope="module")
def llama(tiny_llama: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama)


def _manual_matmul(config: Any) -> int:
    """q, k, v, o, gate, up, down per layer, plus the lm_head; embeddings excluded."""
    d, inter = config.hidden_size, config.intermediate_size
    head_dim = d // config.num_attention_heads
    q = o = d * config.num_attention_heads * head_dim
    k = v = d * config.num_key_value_heads * head_dim
    per_layer = q + k + v + o + 3 * d * inter
    return config.num_hidden_layers * per_layer + d * config.vocab_size


def test_importing_telemetry_does_not_import_torch() -> None:
    code = "import sys, workbench.core.train.telemetry; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# --- memory ---------------------------------------------------------------------------------


def test_cpu_memory_snapshot_reports_rss_peak_and_ram() -> None:
    snap = tm.memory_snapshot("cpu")
    assert set(snap) == {"mem_allocated", "mem_reserved", "mem_peak", "mem_capacity"}
    assert snap["mem_reserved"] is None
    allocated, peak, capacity = snap["mem_allocated"], snap["mem_peak"], snap["mem_capacity"]
    assert allocated and peak and capacity
    assert 0 < allocated <= peak
    assert allocated <= capacity


def test_cuda_memory_snapshot_reads_the_named_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    seen: list[int] = []

    def counter(value: int) -> Any:
        return lambda index: seen.append(index) or value

    monkeypatch.setattr(torch.cuda, "memory_allocated", counter(10))
    monkeypatch.setattr(torch.cuda, "memory_reserved", counter(20))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", counter(15))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: types.SimpleNamespace(total_memory=100))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert tm.memory_snapshot("cuda:1") == {"mem_allocated": 10, "mem_reserved": 20,
                                            "mem_peak": 15, "mem_capacity": 100}
    assert seen == [1, 1, 1]
    tm.memory_snapshot("cuda")
    assert seen[-1] == 0


# --- NVML -----------------------------------------------------------------------------------


def _fake_pynvml(*, fail: bool = False) -> types.ModuleType:
    fake = types.ModuleType("pynvml")
    calls: list[str] = []

    def failing(*args: Any) -> Any:
        raise RuntimeError("NVML: not supported")

    fake.calls = calls  # type: ignore[attr-defined]
    fake.nvmlInit = lambda: calls.append("init")  # type: ignore[attr-defined]
    fake.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByUUID = (  # type: ignore[attr-defined]
        lambda uuid: calls.append(uuid) or "handle")
    fake.nvmlDeviceGetHandleByIndex = lambda index: "handle"  # type: ignore[attr-defined]
    fake.nvmlDeviceGetUtilizationRates = (  # type: ignore[attr-defined]
        failing if fail else lambda h: types.SimpleNamespace(gpu=87, memory=40))
    fake.nvmlDeviceGetPowerUsage = (  # type: ignore[attr-defined]
        failing if fail else lambda h: 312_500)
    return fake


def test_nvml_reads_utilisation_and_watts(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    nvml = tm.Nvml(0, uuid="1234-abcd")
    assert nvml.available
    assert nvml.sample() == (87.0, 312.5)
    nvml.close()
    assert fake.calls == ["init", "GPU-1234-abcd", "shutdown"]  # type: ignore[attr-defined]
    assert nvml.sample() == (None, None)


def test_nvml_errors_become_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(fail=True))
    nvml = tm.Nvml(0)
    assert nvml.sample() == (None, None)
    nvml.close()


def test_nvml_without_the_package_or_a_driver_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = tm.Nvml(0)  # the real pynvml: no NVIDIA driver on a CPU-only machine, or a GPU
    if not nvml.available:
        assert nvml.sample() == (None, None)
    nvml.close()
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert tm.Nvml(0).sample() == (None, None)


# --- FLOPs ----------------------------------------------------------------------------------


def test_flops_per_token_full_fine_tuning_is_6n_plus_attention() -> None:
    flops = tm.flops_per_token(matmul_params=1000, trainable_params=1000, n_layers=2,
                               attn_dim=8, seq_len=10)
    assert flops == 6 * 1000 + 6 * 2 * 10 * 8  # 6000 + 960


def test_flops_per_token_lora_is_4_base_plus_6_adapter() -> None:
    base, lora = 1000, 50
    flops = tm.flops_per_token(matmul_params=base + lora, trainable_params=lora, n_layers=3,
                               attn_dim=4, seq_len=5.5)
    assert flops == 4 * base + 6 * lora + 6 * 3 * 5.5 * 4
    assert tm.flops_per_token(matmul_params=1000, trainable_params=0, n_layers=0,
                              attn_dim=0, seq_len=128) == 4000  # frozen: forward + input grads


def test_model_flops_shape_counts_linear_weights_from_the_config(llama: Any) -> None:
    config = llama.config
    matmul, trainable, n_layers, attn_dim = tm.model_flops_shape(llama)
    assert matmul == _manual_matmul(config)
    assert trainable == matmul  # full fine-tuning: every matmul weight trains
    assert n_layers == config.num_hidden_layers
    assert attn_dim == config.hidden_size  # 4 heads × 16


def test_model_flops_shape_counts_a_tied_lm_head_once() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4,
                         head_dim=16, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    matmul, _, n_layers, attn_dim = tm.model_flops_shape(model)
    assert attn_dim == 4 * 16  # an explicit head_dim wins over hidden_size // heads
    assert n_layers == 1
    attention = 2 * 32 * 64 + 2 * 64 * 32  # q, k, v, o with 64-wide heads
    assert matmul == attention + 3 * 32 * 64 + 32 * 100


def test_model_flops_shape_with_lora_counts_adapters_as_trained_matmuls(llama: Any) -> None:
    import copy

    from peft import LoraConfig, get_peft_model

    base_matmul = tm.model_flops_shape(llama)[0]
    peft_model = get_peft_model(copy.deepcopy(llama),
                                LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    matmul, trainable, n_layers, attn_dim = tm.model_flops_shape(peft_model)
    config = llama.config
    head_dim = config.hidden_size // config.num_attention_heads
    q_out, v_out = config.hidden_size, config.num_key_value_heads * head_dim
    adapters = config.num_hidden_layers * 4 * ((config.hidden_size + q_out)
                                               + (config.hidden_size + v_out))
    assert trainable == adapters
    assert trainable == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert matmul == base_matmul + adapters
    assert (n_layers, attn_dim) == (config.num_hidden_layers, config.hidden_size)


def test_packed_weights_count_as_in_times_out() -> None:
    """bitsandbytes 4-bit layers store half as many elements as the matmul has weights."""
    import torch

    class Packed4bit(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.in_features, self.out_features = 64, 32
            self.weight = torch.nn.Parameter(torch.zeros(64 * 32 // 2, 1, dtype=torch.uint8),
                                             requires_grad=False)

    model = torch.nn.Sequential(torch.nn.Embedding(10, 64), Packed4bit(), torch.nn.LayerNorm(32))
    assert tm.model_flops_shape(model) == (64 * 32, 0, 0, 0)  # no config: no attention term


# --- peak FLOP/s ----------------------------------------------------------------------------


def test_peak_table_matches_the_longest_name() -> None:
    peak, source = tm.peak_flops("cuda", "NVIDIA H100 80GB HBM3", "bfloat16")
    assert peak == pytest.approx(989e12, rel=1e-3)
    assert "H100" in source and "bf16" in source
    assert tm.peak_flops("cuda", "NVIDIA H100 PCIe", "bfloat16")[0] == pytest.approx(756e12)
    ti = tm.peak_flops("cuda:0", "NVIDIA GeForce RTX 4060 Ti", "bfloat16")[0]
    plain = tm.peak_flops("cuda:0", "NVIDIA GeForce RTX 4060", "bfloat16")[0]
    assert ti and plain and ti != plain
    assert tm.peak_flops("cuda", "NVIDIA A10G", "bf16")[0] != tm.peak_flops(
        "cuda", "NVIDIA A10", "bf16")[0]
    assert tm.peak_flops("cuda", "NVIDIA A100-SXM4-80GB", "torch.bfloat16")[0] == 312e12
    assert tm.peak_flops("cuda", "NVIDIA GeForce RTX 4090", "float16")[0] == 165.2e12


def test_peak_table_columns_and_unknowns() -> None:
    assert tm.peak_flops("cuda", "Tesla T4", "float16")[0] == 65e12
    assert tm.peak_flops("cuda", "Tesla T4", "bfloat16") == (None, "unknown")  # no bf16 cores
    assert tm.peak_flops("cuda", "Tesla T4", "tf32")[0] == 8.1e12  # no TF32: plain FP32
    assert tm.peak_flops("cuda", "NVIDIA A100 80GB PCIe", "float32")[0] == 19.5e12
    assert tm.peak_flops("cuda", "NVIDIA A100 80GB PCIe", "tf32")[0] == 156e12
    assert tm.peak_flops("cuda", "Some Future GPU", "bfloat16") == (None, "unknown")
    assert tm.peak_flops("cuda", "NVIDIA GeForce RTX 4090 Laptop GPU", "bfloat16")[0] is None
    assert tm.peak_flops("cpu", "CPU", "float32") == (None, "unknown")
    assert tm.peak_flops("mps", "Apple GPU", "float16") == (None, "unknown")


def test_measured_peak_on_cpu_is_a_plausible_rate() -> None:
    assert tm.measure_peak_flops("cpu", "float32") > 1e8


# --- smoothing and the row ------------------------------------------------------------------


def test_smoother_starts_at_the_raw_rate_then_averages() -> None:
    smoother = tm.Smoother(alpha=0.3)
    assert smoother.update(0, 0.0) == 0.0  # no duration yet: nothing to average
    assert smoother.update(1000, 2.0) == 500.0
    assert smoother.update(2000, 2.0) == pytest.approx(0.3 * 1000 + 0.7 * 500)
    assert smoother.update(10, 0.0) == pytest.approx(650.0)  # a zero-length step changes nothing
    with pytest.raises(ValueError):
        tm.Smoother(alpha=0.0)


def test_cpu_row_has_every_key_and_a_fractional_mfu(llama: Any, tmp_path) -> None:
    telemetry = tm.Telemetry(llama, "cpu", "float32", calibration=tmp_path / "cpu-peak.json")
    try:
        assert telemetry.peak_source.startswith("calibrated 20")
        row = telemetry.row(tokens=512, seconds=1.0, seq_len=128)
        assert set(row) == set(tm.ROW_KEYS)
        assert row["gpu_util"] is None and row["power_w"] is None
        assert row["mem_reserved"] is None
        assert row["mem_allocated"] and row["mem_peak"] and row["mem_capacity"]
        assert row["tokens_per_s"] == 512.0
        assert isinstance(row["mfu"], float) and 0.0 < row["mfu"] < 1.0
        expected = telemetry.flops_per_token(128) * 512.0 / telemetry.peak
        assert row["mfu"] == pytest.approx(expected)
        info = telemetry.describe()
        assert info["seq_len"] == 128 and info["peak_flops"] == telemetry.peak
        assert info["flops_per_token"] == telemetry.flops_per_token(128)
        assert info["mem_capacity"] == row["mem_capacity"]
    finally:
        telemetry.close()


def test_without_a_peak_mfu_is_none(llama: Any) -> None:
    telemetry = tm.Telemetry(llama, "cpu", "float32", measure_peak=False)
    row = telemetry.row(tokens=100, seconds=0.5, seq_len=64)
    assert telemetry.peak_source == "unknown"
    assert row["mfu"] is None and row["tokens_per_s"] == 200.0
    telemetry.close()


def test_the_cpu_peak_is_calibrated_once_per_machine_and_kept(llama: Any, tmp_path,
                                                              monkeypatch) -> None:
    from workbench.core.train import calibration

    path = tmp_path / "cpu-peak.json"
    calls: list[tuple[int, ...]] = []
    monkeypatch.setattr(calibration, "measure",
                        lambda dtype, sizes=calibration.SIZES, repeats=5, **k:
                        calls.append(sizes) or (100e9, list(sizes)))
    first = tm.Telemetry(llama, "cpu", "float32", calibration=path)
    assert first.peak == 100e9 and calls == [(512, 1024, 2048)]
    stored = json.loads(path.read_text())
    (entry,) = stored.values()
    assert entry["peak_flops"] == 100e9 and entry["date"] and entry["sizes"] == [512, 1024, 2048]
    second = tm.Telemetry(llama, "cpu", "float32", calibration=path)
    assert second.peak == 100e9 and len(calls) == 1  # read back, not measured again
    first.close()
    second.close()


def test_an_mfu_above_the_peak_recalibrates_then_is_capped_and_marked(llama: Any, tmp_path,
                                                                      monkeypatch) -> None:
    from workbench.core.train import calibration

    path = tmp_path / "cpu-peak.json"
    readings = iter([1e9, 2e9])  # calibrated on a busy machine, then a little higher
    monkeypatch.setattr(calibration, "measure", lambda *a, **k: (next(readings), [512]))
    telemetry = tm.Telemetry(llama, "cpu", "float32", calibration=path)
    fast = 10 * 1e9 / telemetry.flops_per_token(64)  # tokens/s worth 10 GFLOP/s
    row = telemetry.row(tokens=int(fast), seconds=1.0, seq_len=64)
    assert telemetry.peak == 2e9  # recalibrated once, the higher figure kept
    assert json.loads(path.read_text()).popitem()[1]["peak_flops"] == 2e9
    assert row["mfu"] == 1.0 and telemetry.estimated  # never above 100 %, marked
    assert telemetry._mfu(1e9) == pytest.approx(0.5)  # below the peak: the plain fraction
    telemetry.close()
