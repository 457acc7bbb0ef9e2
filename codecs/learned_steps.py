"""Deprecated alias: this module moved to :mod:`rdgap.codecs.quantizers.learned_steps` (issue 16).

Importing ``rdgap.codecs.learned_steps`` gives that module itself (same objects, so
monkeypatching and private names keep working) for one release.
"""

import importlib
import sys
import warnings

warnings.warn("rdgap.codecs.learned_steps moved to rdgap.codecs.quantizers.learned_steps; the old name is removed "
              "in the next release", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("rdgap.codecs.quantizers.learned_steps")
