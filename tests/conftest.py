"""Settings for the whole test suite.

This project's own tests run with strict rewrites: a rewrite whose target no
longer exists in the installed codebase is an error (RewriteError), not the
warning users get, so an upstream rename fails CI instead of silently
changing a graph. Tests of the lenient default clear the variable themselves.
"""
import os

os.environ.setdefault('MMDEPLOY_STRICT_REWRITES', '1')
