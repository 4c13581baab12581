"""Injection methods, one module each; `registry` maps names to them.

The method modules import nothing from config.py at run time: config composes their settings
dataclasses into `MethodConfig`.
"""
