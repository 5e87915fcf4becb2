"""A stand-in for an upstream codebase: the target of the original-style rewrites."""
