"""The core must never import gradio: the CLI, the training worker and notebooks use it
without a web stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "workbench" / "core"


def test_importing_every_core_module_does_not_import_gradio() -> None:
    code = (
        "import importlib, pkgutil, sys, workbench.core as core\n"
        "names = [m.name for m in pkgutil.walk_packages(core.__path__, 'workbench.core.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "assert len(names) >= 5, names\n"
        "bad = sorted(m for m in sys.modules if m == 'gradio' or m.startswith('gradio.'))\n"
        "print(len(names), bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _is_ui(module: str) -> bool:
    return module == "gradio" or module.startswith(("gradio.", "workbench.ui"))


def test_no_core_source_file_mentions_a_gradio_import() -> None:
    """Also catches imports hidden inside functions, which the runtime check cannot see."""
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if _is_ui(n)]
    assert offenders == []
