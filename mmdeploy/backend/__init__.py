"""Inference-engine backends; each engine is a plugin in its own sub-folder."""
