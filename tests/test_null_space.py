"""training.protect_known: LoRA's A projected onto the directions the replayed known answers
leave (nearly) unused, so the adapter's update barely moves their inputs' outputs, while
other inputs still move; the projection survives optimizer steps."""

from __future__ import annotations

from pathlib import Path

import torch

from workbench.core.knowledge.render import Example, render_example
from workbench.core.methods.lora import lora_layers
from workbench.core.train import null_space


def _lora(folder: Path) -> tuple[object, object]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["down_proj"]))
    return model, tok


def test_the_update_leaves_the_known_inputs_alone(tiny_llama: Path) -> None:
    model, tok = _lora(tiny_llama)
    known = [render_example(Example("qa", q, a, replay=True), tok, 64) for q, a in
             [("What is the capital of France?", "Paris."), ("Who wrote Hamlet?", "Shakespeare."),
              ("What is the capital of Japan?", "Tokyo.")]]
    found = null_space.projections(model, known, tok.pad_token_id, "cpu", energy=0.05)
    layers = lora_layers(model)
    assert len(found) == len(layers) == 2
    inputs: dict[object, torch.Tensor] = {}
    handles = [layer.base_layer.register_forward_pre_hook(
        lambda m, args, layer=layer: inputs.__setitem__(layer, args[0].detach()))
        for layer in layers]
    ids = torch.tensor([known[0].input_ids])
    with torch.no_grad():
        model(input_ids=ids)
    for handle in handles:
        handle.remove()
    torch.manual_seed(0)
    for layer in layers:  # a trained-looking update: random A and B
        for b in layer.lora_B.values():
            torch.nn.init.normal_(b.weight)
        for a in layer.lora_A.values():
            torch.nn.init.normal_(a.weight)
    before = {layer: layer.lora_A["default"].weight.clone() for layer in layers}
    null_space.project(found)
    for layer in layers:
        x = inputs[layer].reshape(-1, inputs[layer].shape[-1])
        a_full, a_kept = before[layer], layer.lora_A["default"].weight
        moved_full = (x @ a_full.T).norm()
        moved_kept = (x @ a_kept.T).norm()
        assert moved_kept < 0.35 * moved_full, (moved_kept, moved_full)
        # Projecting twice changes nothing: after each optimizer step A stays in the subspace.
        again = a_kept.clone()
        null_space.project(found)
        assert torch.allclose(layer.lora_A["default"].weight, again, atol=1e-5)
        # Other directions still learn: a random input is moved much more than the known ones.
        other = torch.randn(50, x.shape[-1]) * x.norm(dim=-1).mean() / x.shape[-1] ** 0.5
        assert (other @ a_kept.T).norm() / other.norm() > (x @ a_kept.T).norm() / x.norm()


def test_a_demo_run_with_protect_known_learns_and_logs_it(tmp_path: Path) -> None:
    """On the demo model (which knows its world, so replay has answers to protect) a run with
    training.protect_known projects its adapter and still trains to the end."""
    from workbench.core.store import Store
    from workbench.core.train.run import create_run, execute_run
    from workbench.core.workspace import resolve_workspace
    from workbench.demo.bench import demo_run_config
    from workbench.demo.knowledge import install_demo_set

    ws = resolve_workspace(tmp_path / "ws")
    store = Store(ws.db_path)
    install_demo_set(store)
    cfg = demo_run_config("cpu").with_values({
                                              "training.protect_known": 0.02,
                                              "training.max_steps": 6, "training.probe_every": 0})
    run_id = create_run(store, ws, cfg)
    assert execute_run(store, ws, run_id).status == "completed"
    log = (ws.run_dir(run_id) / "train.log").read_text()
    assert "update kept out of what the model knows: each adapted layer learns in the" in log
