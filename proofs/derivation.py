"""A symbolic derivation: premises, steps and the closed form they yield."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy as sp


@dataclass
class Derivation:
    """A sympy derivation of one bound.

    Attributes
    ----------
    name : str
        The bound it derives (a name in :data:`rdgap.bounds.catalogue.CATALOGUE`).
    result : sympy.Expr
        The closed form the steps arrive at.
    symbols : tuple of sympy.Symbol
        The free parameters of ``result``, in the order that :meth:`lambdify`
        takes them.
    assumptions : list of str
        The premises the derivation rests on.
    steps : list of (str, sympy.Expr or sympy.Eq)
        Each step with a sentence that says what was done.
    """

    name: str
    result: sp.Expr
    symbols: tuple[sp.Symbol, ...]
    assumptions: list[str]
    steps: list[tuple[str, sp.Basic]] = field(default_factory=list)

    def lambdify(self, modules: str = "mpmath") -> Callable:
        """The closed form as a numeric function of :attr:`symbols`."""
        return sp.lambdify(self.symbols, self.result, modules=modules)

    def render(self, latex: bool = False) -> str:
        """The derivation as text, step by step (pretty text or LaTeX)."""
        show = sp.latex if latex else (lambda e: sp.pretty(e, use_unicode=True))
        lines = [f"== {self.name} ==", "Assumptions:"]
        lines += [f"  - {a}" for a in self.assumptions]
        for number, (sentence, expression) in enumerate(self.steps, start=1):
            lines.append(f"Step {number}. {sentence}")
            lines += ["    " + row for row in show(expression).splitlines()]
        lines.append("Result:")
        lines += ["    " + row for row in show(self.result).splitlines()]
        return "\n".join(lines)


DERIVATIONS: dict[str, Callable[[], Derivation]] = {}


def derivation(name: str) -> Callable:
    """Decorator registering a zero-argument function that builds a Derivation."""

    def decorate(build: Callable[[], Derivation]) -> Callable[[], Derivation]:
        if name in DERIVATIONS:
            raise ValueError(f"derivation {name!r} is registered twice")
        DERIVATIONS[name] = build
        return build

    return decorate
