"""Helpers shared by the converter, the codebases and the CLI."""
