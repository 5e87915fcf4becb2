"""Rewriters applied while exporting: function, module and symbolic."""
from mmdeploy.core.rewriters.function_rewriter import RewriteCallContext
from mmdeploy.core.rewriters.manager import (REWRITER_MANAGER, RewriterContext, RewriterManager, current_context,
                                             patch_model)
from mmdeploy.core.rewriters.records import IR, lib_version_checker
from mmdeploy.core.rewriters.reporting import STRICT_ENV, RewriteWarning
from mmdeploy.core.rewriters.rewriter_utils import BackendChecker, Checker, IRChecker, LibVersionChecker

FUNCTION_REWRITER = REWRITER_MANAGER.function
MODULE_REWRITER = REWRITER_MANAGER.module
SYMBOLIC_REWRITER = REWRITER_MANAGER.symbolic

__all__ = ['FUNCTION_REWRITER', 'MODULE_REWRITER', 'SYMBOLIC_REWRITER', 'REWRITER_MANAGER', 'IR',
           'RewriterContext', 'RewriterManager', 'RewriteCallContext', 'current_context', 'patch_model',
           'lib_version_checker', 'Checker', 'BackendChecker', 'IRChecker', 'LibVersionChecker',
           'RewriteWarning', 'STRICT_ENV']
