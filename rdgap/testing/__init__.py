r"""rdgap.testing: property-test any codec for hidden states against THEORY.md.

One call checks a codec::

    from rdgap.testing import check_codec
    check_codec(my_codec)          # raises AssertionError naming the broken property

or, with pytest, subclass :class:`CodecPropertyTests` and define a ``codec``
fixture (the ``rdgap`` pytest plugin, installed with the package, also offers
the fixture ``codec_properties``).

Public names (imported lazily, so that the pytest plugin stays light):

- :class:`Codec`, :func:`declarations` — the protocol (:mod:`rdgap.testing.protocol`);
- :func:`adapt`, :class:`FunctionCodec`, :class:`HiddenStateAdapter` — adapters;
- :func:`check_codec`, :data:`PROPERTIES`, :class:`PropertyViolation`,
  :class:`Report`, :class:`CodecPropertyTests` — the suite (:mod:`rdgap.testing.suite`);
- :class:`PropertyNotChecked` — the warning for a property that applies but could not be
  checked (:mod:`rdgap.testing.report`);
- :mod:`rdgap.testing.crafting` — well-formed streams with crafted headers;
  :mod:`rdgap.testing.rebuild` — how a codec is rebuilt in a fresh process;
- :mod:`rdgap.testing.strategies` — hypothesis strategies.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Codec": "protocol", "declarations": "protocol", "Declarations": "protocol",
    "adapt": "adapters", "FunctionCodec": "adapters", "HiddenStateAdapter": "adapters",
    "check_codec": "suite", "PROPERTIES": "suite", "PropertyViolation": "suite",
    "Report": "suite", "CodecPropertyTests": "suite", "PropertyNotChecked": "report",
}
__all__ = sorted(_EXPORTS) + ["strategies"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name == "strategies":
        return importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
