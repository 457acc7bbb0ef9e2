"""Deprecated alias: this module moved to :mod:`rdgap.codecs.coders.container` (issue 16).

Importing ``rdgap.codecs.container`` gives that module itself (same objects, so
monkeypatching and private names keep working) for one release.
"""

import importlib
import sys
import warnings

warnings.warn("rdgap.codecs.container moved to rdgap.codecs.coders.container; the old name is removed "
              "in the next release", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("rdgap.codecs.coders.container")
