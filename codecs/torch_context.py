"""Deprecated alias: this module moved to :mod:`rdgap.codecs.coders.torch_context` (issue 16).

Importing ``rdgap.codecs.torch_context`` gives that module itself (same objects, so
monkeypatching and private names keep working) for one release.
"""

import importlib
import sys
import warnings

warnings.warn("rdgap.codecs.torch_context moved to rdgap.codecs.coders.torch_context; the old name is removed "
              "in the next release", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("rdgap.codecs.coders.torch_context")
