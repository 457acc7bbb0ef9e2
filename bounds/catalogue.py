"""The catalogue of citable bounds: statement, hypotheses and sources.

Every public bound registers itself with :func:`register`; ``rdgap bounds
list`` prints the catalogue and ``rdgap cite NAME`` prints one entry's BibTeX
and LaTeX statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .references import REFERENCES


@dataclass(frozen=True)
class BoundEntry:
    """One citable statement of THEORY.md.

    Attributes
    ----------
    name : str
        Public name of the function in :mod:`rdgap.bounds`.
    theory : str
        The THEORY.md item it implements (``"T1"`` ... ``"T10"``).
    statement : str
        The statement in plain-text mathematics.
    latex : str
        The same statement in LaTeX.
    hypotheses : tuple of str
        What must hold for the statement to be true.
    references : tuple of str
        Keys into :data:`rdgap.bounds.references.REFERENCES`.
    function : callable
        The numeric implementation.
    """

    name: str
    theory: str
    statement: str
    latex: str
    hypotheses: tuple[str, ...]
    references: tuple[str, ...]
    function: Callable

    def bibtex(self) -> str:
        """The BibTeX records of this entry's sources, one after another."""
        return "\n\n".join(REFERENCES[key] for key in self.references)


CATALOGUE: dict[str, BoundEntry] = {}


def register(*, theory: str, statement: str, latex: str,
             hypotheses: tuple[str, ...] | list[str],
             references: tuple[str, ...] | list[str]) -> Callable:
    """Decorator that adds a bound function to :data:`CATALOGUE`.

    Raises
    ------
    ValueError
        If a reference key is unknown or the name is registered twice.
    """
    unknown = [key for key in references if key not in REFERENCES]
    if unknown:
        raise ValueError(f"references: unknown keys {unknown}; add them to "
                         f"rdgap.bounds.references.REFERENCES first")

    def decorate(function: Callable) -> Callable:
        name = function.__name__
        if name in CATALOGUE:
            raise ValueError(f"bound {name!r} is registered twice")
        CATALOGUE[name] = BoundEntry(name=name, theory=theory, statement=statement,
                                     latex=latex, hypotheses=tuple(hypotheses),
                                     references=tuple(references), function=function)
        return function

    return decorate


def lookup(name: str) -> BoundEntry:
    """The catalogue entry called ``name``; a ``KeyError`` lists the valid names."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"name: no bound called {name!r}; expected one of "
                       f"{sorted(CATALOGUE)} (see `rdgap bounds list`)") from None
