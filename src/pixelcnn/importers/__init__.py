"""Importers of models trained by other implementations (reference checkpoints)."""
