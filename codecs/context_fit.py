"""Deprecated alias: this module moved to :mod:`rdgap.codecs.entropy_models.context_fit` (issue 16).

Importing ``rdgap.codecs.context_fit`` gives that module itself (same objects, so
monkeypatching and private names keep working) for one release.
"""

import importlib
import sys
import warnings

warnings.warn("rdgap.codecs.context_fit moved to rdgap.codecs.entropy_models.context_fit; the old name is removed "
              "in the next release", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("rdgap.codecs.entropy_models.context_fit")
