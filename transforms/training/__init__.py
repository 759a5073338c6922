"""Reproducible training of the models this project ships (one module per model)."""
