"""Core of mmdeploy: rewriters applied during export and partition marks.

The names of the original MMDeploy are here (``FUNCTION_REWRITER``,
``MODULE_REWRITER``, ``SYMBOLIC_REWRITER``, ``mark``, ``patch_model``), so a
rewrite module written for it imports unchanged.
"""
from mmdeploy.core.marks import mark
from mmdeploy.core.rewriters import (FUNCTION_REWRITER, IR, MODULE_REWRITER, REWRITER_MANAGER,
                                     SYMBOLIC_REWRITER, LibVersionChecker, RewriterContext, RewriteWarning,
                                     current_context, lib_version_checker, patch_model)

__all__ = ['FUNCTION_REWRITER', 'MODULE_REWRITER', 'SYMBOLIC_REWRITER', 'REWRITER_MANAGER', 'IR',
           'RewriterContext', 'current_context', 'mark', 'patch_model', 'lib_version_checker',
           'LibVersionChecker', 'RewriteWarning']
