"""Headless core: config, store, models and (later) knowledge, methods, training, probing.

Nothing under this package may import gradio; `tests/test_core_is_headless.py` enforces it,
so the CLI, the training worker and notebooks can use the core without a web stack.
"""
