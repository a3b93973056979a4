"""Scoring a model's answers on held-out conversations (CoQA's metric)."""
