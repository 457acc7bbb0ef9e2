"""Small sympy helpers shared by the derivations of T1, T3, T4, T5 and T6."""

from __future__ import annotations

import sympy as sp


def log2(x):
    """``log_2 x`` as ``log(x) / log(2)``."""
    return sp.log(x) / sp.log(2)


def vanishes(expression) -> bool:
    """Whether ``expression`` simplifies to zero (logs expanded, symbols assumed positive)."""
    return sp.simplify(sp.expand_log(sp.expand(expression), force=True)) == 0


def require_equal(lhs, rhs, claim: str):
    """``Eq(lhs, rhs)`` after checking that ``lhs - rhs`` simplifies to zero.

    Raises ``AssertionError`` naming the ``claim`` when it does not, so a
    derivation whose algebra is wrong cannot be built.
    """
    if not vanishes(lhs - rhs):
        raise AssertionError(f"derivation step failed: {claim}")
    return sp.Eq(lhs, rhs, evaluate=False)
