"""rdgap.proofs: sympy derivations of the bounds in :mod:`rdgap.bounds`.

Each module registers builders in :data:`DERIVATIONS`; ``rdgap proofs`` prints
them step by step and the tests check every numeric bound against its
lambdified derivation.
"""

from .derivation import DERIVATIONS, Derivation, derivation  # noqa: F401

# --- T1, T3, T4, T5, T6 -------------------------------------------------------
from . import gaussian, gibbs, marginal, quantized, rate_distortion  # noqa: F401,E402

# --- T7, T8, T9, T10 ----------------------------------------------------------
from . import betting, concentration, fisher, lipschitz, rademacher  # noqa: F401

# --- T2 -----------------------------------------------------------------------
from . import coder  # noqa: F401,E402
