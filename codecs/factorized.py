"""Deprecated alias: this module moved to :mod:`rdgap.codecs.entropy_models.factorized` (issue 16).

Importing ``rdgap.codecs.factorized`` gives that module itself (same objects, so
monkeypatching and private names keep working) for one release.
"""

import importlib
import sys
import warnings

warnings.warn("rdgap.codecs.factorized moved to rdgap.codecs.entropy_models.factorized; the old name is removed "
              "in the next release", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("rdgap.codecs.entropy_models.factorized")
