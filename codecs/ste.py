"""Deprecated alias: this module moved to :mod:`rdgap.codecs.quantizers.ste` (issue 16).

Importing ``rdgap.codecs.ste`` gives that module itself (same objects, so
monkeypatching and private names keep working) for one release.
"""

import importlib
import sys
import warnings

warnings.warn("rdgap.codecs.ste moved to rdgap.codecs.quantizers.ste; the old name is removed "
              "in the next release", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("rdgap.codecs.quantizers.ste")
