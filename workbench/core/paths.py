"""Where the project's shipped assets live (demo model, locality list, CSS)."""

from __future__ import annotations

import os
from pathlib import Path

# The repository's assets/ folder (the package is installed editable, as README says);
# $WORKBENCH_ASSETS points elsewhere for packaged installs.
ASSETS = Path(os.environ.get("WORKBENCH_ASSETS") or Path(__file__).resolve().parents[2] / "assets")
LOCALITY_FILE = ASSETS / "locality" / "general_knowledge.jsonl"
# General questions for replay only, never drawn as locality probes (`locality.replay_pool`)
REPLAY_FILE = ASSETS / "locality" / "replay_knowledge.jsonl"

# The embedded demo (see workbench/demo): a small model pretrained on a synthetic world, and
# the knowledge set of new people to inject into it. DEMO_MODEL is the name users type.
DEMO_MODEL = "workbench-demo"
DEMO_MODEL_DIR = ASSETS / "demo-model"
DEMO_SET_FILE = ASSETS / "demo-knowledge.json"
# A model folder may ship the general-knowledge questions *it* knows (the demo model knows
# only its world); locality probes and replay then draw from that list instead.
MODEL_KNOWLEDGE_FILE = "general_knowledge.jsonl"
# Relations (capital, currency, founder, …) with real entities: same-relation neighbours of a
# set's facts for locality and replay (knowledge/relations.py).
RELATIONS_FILE = ASSETS / "locality" / "relations.jsonl"
