"""What :func:`rdgap.testing.check_codec` returns (:class:`Report`) and raises
(:class:`PropertyViolation`), and the warning for a property it could not check."""

from __future__ import annotations

from dataclasses import dataclass, field


class PropertyViolation(AssertionError):
    """A property of :func:`check_codec` that a codec breaks.

    Attributes
    ----------
    property : str
        One of :data:`rdgap.testing.PROPERTIES`.
    """

    def __init__(self, prop: str, message: str):
        super().__init__(f"{prop}: {message}")
        self.property = prop


class PropertyNotChecked(UserWarning):
    """A property that applies to the codec but could not be checked (the reason says
    what to declare); :attr:`Report.not_checked` holds the same reasons."""


@dataclass
class Report:
    """What :func:`check_codec` checked.

    Attributes
    ----------
    checked : list of str
        Properties that ran and held.
    not_applicable : dict
        Property → why it does not apply to this codec (no model, no family, …).
    not_checked : dict
        Property → why it applies but was *not* checked (no way to rebuild the
        codec in another process, no sibling, no crafted streams): a gap in
        the evidence, not a pass. Each also raises a :class:`PropertyNotChecked`
        warning.
    numbers : dict
        Property → summary numbers (statistical properties, cross-process set-up).
    """

    codec: str
    checked: list = field(default_factory=list)
    not_applicable: dict = field(default_factory=dict)
    not_checked: dict = field(default_factory=dict)
    numbers: dict = field(default_factory=dict)
