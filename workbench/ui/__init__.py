"""Gradio client of the headless core: app assembly, one module per tab, pure plot functions."""
