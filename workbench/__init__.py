"""Knowledge Workbench: inject facts into an open LLM by fine-tuning, and prove it.

`workbench.core` is the headless engine (never imports gradio); `workbench.ui` and
`workbench.cli` are two thin clients of it.
"""

__version__ = "0.1.0"
