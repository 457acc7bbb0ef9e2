"""The ``rdgap`` pytest plugin (entry point ``pytest11``): the ``codec_properties`` fixture.

Loaded in every pytest session once rdgap is installed, so it imports nothing
heavy: :mod:`rdgap.testing.suite` (hypothesis, numpy) is imported when the
fixture is first used. Options: ``--rdgap-max-examples`` and ``--rdgap-delta``
set the defaults of :func:`rdgap.testing.check_codec` for the fixture.

Example test file::

    def test_my_codec(codec_properties):
        codec_properties(MyCodec())        # raises AssertionError naming the property
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("rdgap", "rdgap codec property tests")
    group.addoption("--rdgap-max-examples", type=int, default=None,
                    help="hypothesis examples per property for the codec_properties fixture")
    group.addoption("--rdgap-delta", type=float, default=None,
                    help="failure probability of each statistical codec property")


@pytest.fixture
def codec_properties(request):
    """``check(codec, **options)``: :func:`rdgap.testing.check_codec` with the session's options."""
    from rdgap.testing.suite import check_codec

    defaults = {}
    if request.config.getoption("--rdgap-max-examples") is not None:
        defaults["max_examples"] = request.config.getoption("--rdgap-max-examples")
    if request.config.getoption("--rdgap-delta") is not None:
        defaults["delta"] = request.config.getoption("--rdgap-delta")

    def check(codec, **options):
        return check_codec(codec, **{**defaults, **options})

    return check
