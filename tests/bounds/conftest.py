"""Fixtures shared by the bound tests: lambdified derivations and a tolerance check."""

from __future__ import annotations

import math
from functools import cache

import pytest

from rdgap.proofs import DERIVATIONS


@cache
def _lambdified(name: str):
    return DERIVATIONS[name]().lambdify()


@pytest.fixture(scope="session")
def closed_form():
    """``closed_form(name)``: the derivation ``name`` lambdified with mpmath (built once)."""
    return _lambdified


@pytest.fixture(scope="session")
def close():
    """``close(a, b, rtol=1e-9, abs_tol=1e-12)``: ``math.isclose`` on floats."""

    def check(a, b, rtol: float = 1e-9, abs_tol: float = 1e-12) -> bool:
        return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=abs_tol)

    return check
