"""The shift guard tests' source (tests/codecs/test_shift_guard*.py): a linear softmax
read-out and a KL probe (ΔCE's expectation, no label noise) over AR(1) Laplace channels
whose spreads span two decades, so that the Fisher-whitened KLT has components far below
the step; :func:`shifted` gives those components 5× their energy (issue 19's mechanism)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec_data import ar_laplace_states
from linear_split import KLProbe, LinearReadout

CHANNELS, VOCAB, TOKENS = 16, 32, 40
LEVEL = 0.05
STATISTICS, PROBE, EVALUATION, FRESH = 16, 16, 16, 240
#: The quietest quarter: 4 of 16 components (the default 1/16 watches 36 of SmolLM2's 576;
#: one component of heavy-tailed AR(1) states scores too noisily for a 40-token window).
QUIET = 0.25
#: The injected shift: 5× the energy (√5 the amplitude) in the KLT components below half a
#: step (SmolLM2's quiet components carry 2–3× their news energy on other text).
SHIFT = 5 ** 0.5


def states(windows: int, seed: int = 0, memory: float = 0.7) -> torch.Tensor:
    """:func:`codec_data.ar_laplace_states` at this module's size."""
    return ar_laplace_states(windows, seed, memory, CHANNELS, TOKENS)


def build_source():
    """``(split, FitContext, evaluation windows, fresh fit-law windows)``."""
    from rdgap.codecs.fit import FitContext
    from rdgap.codecs.transforms.fisher import fisher_diagonal

    split = LinearReadout(CHANNELS, VOCAB)
    hidden = states(STATISTICS + PROBE + EVALUATION + FRESH, seed=0)
    fisher = fisher_diagonal(split, hidden[:STATISTICS], samples=4, full=True)
    context = FitContext(split, hidden[:STATISTICS], fisher,
                         KLProbe(split, hidden[STATISTICS:STATISTICS + PROBE]))
    start = STATISTICS + PROBE
    return split, context, hidden[start:start + EVALUATION], hidden[start + EVALUATION:]


def fit_plain_guard(context):
    """``klt-context`` guarded by ``gaussian-fisher``, both uncapped."""
    from rdgap.codecs.quantizers.shift_guard_fit import fit_guarded

    torch.manual_seed(0)
    return fit_guarded(context, None, LEVEL, primary="klt-context", cap=None,
                       quiet_fraction=QUIET)


def shifted(primary, hidden: torch.Tensor, factor: float = SHIFT):
    """``hidden`` with the KLT components below half a step on fit text scaled by
    ``factor`` (positions ≥ 1), and how many components moved."""
    z = (hidden[:, 1:].double().numpy() - primary.mean) @ primary.analysis.T
    low = z.reshape(-1, CHANNELS).std(0) / primary.step < 0.5
    z[..., low] *= factor
    out = hidden.double().numpy().copy()
    out[:, 1:] = primary.mean + z @ primary.synthesis.T
    return torch.from_numpy(out.astype(np.float32)), int(low.sum())


# the fixtures of every shift-guard test module (imported there by name; module scope:
# each module fits once)
@pytest.fixture(scope="module")
def source():
    """:func:`build_source`'s ``(split, FitContext, evaluation, fresh)``."""
    return build_source()


@pytest.fixture(scope="module")
def fitted(source):
    """:func:`fit_plain_guard` on the source's context."""
    return fit_plain_guard(source[1])
