"""Datasets and transforms for training and evaluation (paper sections 6 and 7)."""
