"""Injection methods, one module each (`base` says what a method declares); `registry` lists
them, and `section` is the run config's method section built from that list.

Import direction: config → methods → settings/sections. No method module imports config.py
or the training loop.
"""
