"""OpenMMLab codebases; each codebase is a plugin in its own sub-folder."""
