"""Where the project's shipped assets live (demo model, locality list, CSS)."""

from __future__ import annotations

import os
from pathlib import Path

# The repository's assets/ folder (the package is installed editable, as README says);
# $WORKBENCH_ASSETS points elsewhere for packaged installs.
ASSETS = Path(os.environ.get("WORKBENCH_ASSETS") or Path(__file__).resolve().parents[2] / "assets")
LOCALITY_FILE = ASSETS / "locality" / "general_knowledge.jsonl"
