"""Compare: several models (base, tuned runs, no-training baselines) answering the same
questions side by side, and the fact scorecard built from their free-generation answers."""
