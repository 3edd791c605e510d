"""Experiment runners and each paper's settings."""
