"""The house's shape, checked from the source alone (no module is imported): no import circle
inside `workbench/`, no module importing from a layer above its own, and no file so long that
it mixes jobs. ARCHITECTURE.md explains the layers; this table is their definition.
"""

from __future__ import annotations

from pathlib import Path

from import_graph import circles, imports, module_files

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 450

# Bottom to top. A module may import from its own layer and the layers below, never above.
# A module's layer is that of the longest entry naming it or a package above it; the two
# package entries marked exact name only their own `__init__`, so a new module anywhere must
# be placed here on purpose.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Leaf utilities: no state, no database, no model. `data.names` is the run statuses and
    # metric names, plain definitions that device readings and charts share with the data layer.
    ("foundations", ("workbench!", "workbench.core!", "workbench.core.errors",
                     "workbench.core.paths", "workbench.core.device", "workbench.core.memory",
                     "workbench.core.tokens", "workbench.core.settings",
                     "workbench.core.progress", "workbench.core.scoring",
                     "workbench.core.sections", "workbench.core.data.names",
                     "workbench.core.units", "workbench.core.disk")),
    # The database: schema and transactions, then the typed reads and writes of every table.
    ("store and data", ("workbench.core.store", "workbench.core.workspace",
                        "workbench.core.data")),
    # Loading, describing and running a model.
    ("models", ("workbench.core.models", "workbench.core.hub", "workbench.core.model_shape",
                "workbench.core.model_cache", "workbench.core.gguf_import",
                "workbench.core.generate")),
    # Facts, phrasings, probes: what is taught and how it is asked.
    ("knowledge", ("workbench.core.knowledge",)),
    # The methods and the run config built from their registry, the training loop and its
    # bookkeeping, comparing trained runs, and the charts of both.
    ("methods, training, comparison", ("workbench.core.methods", "workbench.core.config",
                                       "workbench.core.train", "workbench.core.compare",
                                       "workbench.core.charts")),
    # Plans and workflows over a whole run: memory and time estimates before it starts,
    # recipes and presets that choose its settings, the one-call inject pipeline, the export
    # bundle (a run's files for other runtimes, each scored again).
    ("planning and workflows", ("workbench.core.estimate", "workbench.core.time_estimate",
                                "workbench.core.recipe", "workbench.core.presets",
                                "workbench.core.inject", "workbench.core.export")),
    # The demo world and model, and fixtures for tests: clients of the core.
    ("demo and fixtures", ("workbench.demo", "workbench.testing", "workbench.realmodel")),
    ("ui", ("workbench.ui",)),
    # `workbench serve` starts the UI, so the CLI sits on top.
    ("cli", ("workbench.cli", "workbench.__main__")),
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of `module`'s layer; None when no entry places it."""
    best: tuple[int, int] | None = None  # (length of the entry, layer)
    for rank, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            exact = entry.endswith("!")
            key = entry.rstrip("!")
            if module == key or (not exact and module.startswith(key + ".")):
                if best is None or len(key) > best[0]:
                    best = (len(key), rank)
    return None if best is None else best[1]


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in module_files(ROOT) if layer_of(m) is None]
    assert not unplaced, f"place these modules in LAYERS (tests/test_layers.py): {unplaced}"


def test_no_import_circles() -> None:
    found = circles(imports(ROOT))
    assert not found, "import circles (each a set of modules that reach each other): " + \
        "; ".join(" ↔ ".join(c) for c in found)


def test_imports_only_go_down() -> None:
    upward = []
    for module, deps in sorted(imports(ROOT).items()):
        own = layer_of(module)
        for dep in sorted(deps):
            other = layer_of(dep)
            if own is not None and other is not None and other > own:
                upward.append(f"{module} ({LAYERS[own][0]}) imports {dep} ({LAYERS[other][0]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_checks_see_what_they_claim_to() -> None:
    """The graph catches lazy and type-checking imports; the table puts the ends in order."""
    graph = imports(ROOT)
    assert "workbench.core.errors" in graph["workbench.core.store"]
    assert layer_of("workbench.core.errors") == 0
    assert layer_of("workbench.core.data.names") == 0
    assert layer_of("workbench.core.data.runs") == 1
    assert layer_of("workbench.cli") == len(LAYERS) - 1
    assert layer_of("workbench.nonexistent") is None  # `workbench!` is exact
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_file_over_the_line_limit() -> None:
    """A file past MAX_LINES is doing more than one job: split it by job, as the packages
    under core/knowledge/ and core/estimate/ were."""
    long = {str(p.relative_to(ROOT)): n for p in module_files(ROOT).values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"
