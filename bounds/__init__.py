"""rdgap.bounds: every statement of THEORY.md as a citable function.

Logarithms are base 2 and rates are bits unless a name says otherwise. Each
public function registers itself in :data:`CATALOGUE` with its statement,
hypotheses and sources (``rdgap bounds list``, ``rdgap cite NAME``).
"""

from .catalogue import CATALOGUE, BoundEntry, lookup  # noqa: F401

# --- T1, T3, T4, T5, T6 -------------------------------------------------------

# --- T7, T8, T9, T10 ----------------------------------------------------------
from .concentration import (  # noqa: F401
    RateInterval, empirical_bernstein_interval, empirical_bernstein_lower,
    empirical_bernstein_upper, hoeffding_confidence, hoeffding_radius, rate_interval,
    sample_size)
from .rademacher import (RademacherEstimate, contraction,  # noqa: F401
                         empirical_rademacher_linf, massart_linf_bound,
                         rademacher_generalization_bound,
                         rademacher_generalization_bound_expected)

# --- T2 (coder overhead; lives beside the coder rdgap ships) ------------------
