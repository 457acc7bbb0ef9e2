"""rdgap.bounds: every statement of THEORY.md as a citable function.

Logarithms are base 2 and rates are bits unless a name says otherwise. Each
public function registers itself in :data:`CATALOGUE` with its statement,
hypotheses and sources (``rdgap bounds list``, ``rdgap cite NAME``).
"""

from .catalogue import CATALOGUE, BoundEntry, lookup  # noqa: F401

# --- T1, T3, T4, T5, T6 -------------------------------------------------------
from .gibbs import (RateGap, TwoPartRate, VEntropy, cross_entropy, entropy,  # noqa: F401
                    kl_divergence, rate_entropy_gap, two_part_rate, v_entropy)
from .gaussian import (dependency_headroom, gaussian_jensen_codelength,  # noqa: F401
                       gaussian_logdet_bound)
from .marginal import (MarginalEntropyFloor, marginal_entropy_floor,  # noqa: F401
                       mcdiarmid_deviation, miller_madow_entropy, plugin_entropy,
                       plugin_entropy_sensitivity, total_correlation_estimate)
from .quantized import (GISH_PIERCE_GAP_BITS, HighResolution,  # noqa: F401
                        differential_entropy, high_resolution_entropy,
                        laplace_quantized_entropy, quantized_entropy, quantized_log_pmf,
                        quantized_pmf)
from .rate_distortion import (GaussianRateDistortion, gaussian_rate_distortion,  # noqa: F401
                              shannon_lower_bound)

# --- T7, T8, T9, T10 ----------------------------------------------------------
from .betting import betting_interval, betting_lower, betting_upper  # noqa: F401
from .concentration import (  # noqa: F401
    RateInterval, empirical_bernstein_interval, empirical_bernstein_lower,
    empirical_bernstein_upper, hoeffding_confidence, hoeffding_radius, rate_interval,
    sample_size)
from .fisher import (fisher_step_allocation, predicted_delta_ce,  # noqa: F401
                     predicted_rate_curve)
from .lipschitz import (entropy_after_map_bound, jacobian_spectral_norm,  # noqa: F401
                        logdet_entropy_bound)
from .rademacher import (RademacherEstimate, contraction,  # noqa: F401
                         empirical_rademacher_linf, massart_linf_bound,
                         rademacher_generalization_bound,
                         rademacher_generalization_bound_expected)

# --- T2 (coder overhead; lives beside the coder rdgap ships) ------------------
from .coder import (RansLengthBounds, rans_length_bounds,  # noqa: F401
                    table_quantization_cost)
