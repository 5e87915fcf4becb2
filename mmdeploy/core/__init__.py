"""Core of mmdeploy: rewriters applied during export and partition marks."""
from mmdeploy.core.marks import mark
from mmdeploy.core.rewriters import (FUNCTION_REWRITER, IR, MODULE_REWRITER, REWRITER_MANAGER,
                                     SYMBOLIC_REWRITER, RewriterContext, current_context,
                                     lib_version_checker)

__all__ = ['FUNCTION_REWRITER', 'MODULE_REWRITER', 'SYMBOLIC_REWRITER', 'REWRITER_MANAGER', 'IR',
           'RewriterContext', 'current_context', 'mark', 'lib_version_checker']
