"""Training: batching of rendered examples and the explicit optimisation loop."""
