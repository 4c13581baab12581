"""How much the adapter changes each adapted layer's output on the replayed rows: a soft
form of keeping the update out of the directions known answers use (AlphaEdit's null space,
`null_space.py`, made a penalty instead of a projection).

The replay's KL holds the model's *answers* on the replayed questions; a change inside the
network that cancels out by the answer is free under it, yet it need not cancel on the
questions never replayed. Measured on SmolLM2-135M with the default's trained update, each
adapted MLP layer's output moved by ~0.2% (relative, squared) at locality questions' tokens
against ~0.3% at the facts' own: the update is barely more selective than a random one, and
a random update of its size costs ~5% of the known answers (`bench/results/
update_parts.md`). The penalty is the relative squared change, ‖ΔW x‖² / ‖W x‖², at every
token of every replayed row (the shared chat start counted once per replayed row, as each
would have computed it), averaged over the adapted layers and summed over the tokens.

Not adopted (`replay.ACTIVATION_WEIGHT` 0): weighted 10 and 100 it made the layer change at
locality questions 8x and 28x smaller, the facts all learned, but the answers there moved
nearly as much as before (1.3-1.4x less KL along them, `bench/results/update_reach.md`) and
locality stayed where the default's is (92%, and 92% and 89% under two seeds, against 94%
and 90%): what a known answer loses is not carried by how far the layers' outputs move at
its question. Cost when on: two hooks per adapted layer and one reduction per replayed
token, no forward more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

EPS = 1e-6  # a zero base output (padding) must not divide by zero


class Change:
    """The summed penalty of one forward, filled by the hooks (`total`, a tensor with grad)."""

    def __init__(self) -> None:
        self.total: Any = 0.0


@contextmanager
def replay_change(model: Any, replayed: torch.Tensor,
                  mask: torch.Tensor) -> Iterator[Change]:
    """Hooks on every LoRA layer of `model` for the forwards run inside: `Change.total`
    sums the relative squared change of their outputs over the replayed rows' tokens
    (`replayed`: [rows] bool; `mask`: the micro-batch's [rows, length] attention mask),
    averaged over the layers. A forward of a single row while the batch has more is the
    shared start (`shared_prefix`), counted once per replayed row."""
    from workbench.core.methods.lora import lora_layers

    change = Change()
    layers = lora_layers(model)
    if not layers or not bool(replayed.any()):
        yield change
        return
    rows = mask.shape[0]
    weight = 1.0 / len(layers)
    base_norms: dict[int, torch.Tensor] = {}
    handles = []

    def on_base(key: int) -> Any:
        def hook(module: Any, args: Any, out: torch.Tensor) -> None:
            base_norms[key] = out.detach().float().pow(2).sum(-1)
        return hook

    def on_update(key: int, scaling: float) -> Any:
        def hook(module: Any, args: Any, out: torch.Tensor) -> None:
            rel = (out.float() * scaling).pow(2).sum(-1) / (base_norms[key] + EPS)
            if out.shape[0] == rows:  # the rows' own tokens, right-padded
                at = mask[:, -out.shape[1]:].bool() & replayed[:, None]
                part = rel[at].sum()
            else:  # the shared start, run once for every row
                part = rel.sum() * replayed.sum()
            change.total = change.total + weight * part
        return hook

    for i, layer in enumerate(layers):
        handles.append(layer.base_layer.register_forward_hook(on_base(i)))
        for name in layer.active_adapters:
            if name in layer.lora_B:
                handles.append(layer.lora_B[name].register_forward_hook(
                    on_update(i, float(layer.scaling[name]))))
    try:
        yield change
    finally:
        for handle in handles:
            handle.remove()
