"""Deprecated alias: this module moved to :mod:`rdgap.codecs.coders.rans_torch` (issue 16).

Importing ``rdgap.codecs.rans_torch`` gives that module itself (same objects, so
monkeypatching and private names keep working) for one release.
"""

import importlib
import sys
import warnings

warnings.warn("rdgap.codecs.rans_torch moved to rdgap.codecs.coders.rans_torch; the old name is removed "
              "in the next release", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("rdgap.codecs.coders.rans_torch")
