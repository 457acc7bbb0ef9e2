"""Deprecated alias: this module moved to :mod:`rdgap.codecs.coders.ans` (issue 16).

Importing ``rdgap.codecs.ans`` gives that module itself (same objects, so
monkeypatching and private names keep working) for one release.
"""

import importlib
import sys
import warnings

warnings.warn("rdgap.codecs.ans moved to rdgap.codecs.coders.ans; the old name is removed "
              "in the next release", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("rdgap.codecs.coders.ans")
