"""A learned flexible density for integer latents: Ballé's deep factorized prior.

Ballé, Minnen, Singh, Hwang & Johnston (2018), *Variational image compression
with a scale hyperprior*, appendix 6.1: each channel's cumulative is a small
monotone network ``c(x) = σ(f_K ∘ … ∘ f_1(x))`` with
``f_k(x) = g_k(H_k x + b_k)``, ``g_k(x) = x + a_k ⊙ tanh(x)``, ``H_k`` kept
positive by a softplus and ``a_k ∈ (−1, 1)`` by a tanh, so that ``c`` is
increasing. An integer ``k`` has probability ``c(k + ½) − c(k − ½)``: the
discrete likelihood that the two-part rate of THEORY.md T1 charges the side
latents of :mod:`rdgap.codecs.entropy_models.context`.

The network is trained on the rate objective (``Σ −log2 p``, over the counts
of each value, so one step costs a few hundred flops) with torch on a CPU in
well under a second, then turned into a deterministic *integer* table
(:func:`integer_table`, frequencies summing to ``2^PRECISION``) that is stored
with the codec and hashed: the decoder never evaluates the network, so floating
point differences between machines cannot desynchronise it.

CompressAI's ``EntropyBottleneck`` implements the same density but pins
``numpy < 2``, which this project's lock file cannot satisfy; hence this small
hand-written version.
"""

from __future__ import annotations

import numpy as np
import torch

#: The integer tables sum to ``2^PRECISION``; the escape slot gets one count.
PRECISION = 20
#: Widths of the hidden layers of each channel's cumulative network.
FILTERS = (3, 3, 3)


class DeepFactorizedDensity(torch.nn.Module):
    """Per-channel monotone cumulative network (Ballé et al. 2018, appendix 6.1).

    Parameters
    ----------
    channels : int
        Independent univariate densities.
    filters : tuple of int
        Hidden widths of every channel's network.
    init_scale : float
        Initial spread of the density (the network starts near ``σ(x / init_scale)``).
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = FILTERS,
                 init_scale: float = 4.0):
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels: expected ≥ 1 densities, got {channels}")
        widths = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        self.factors = torch.nn.ParameterList()
        generator = torch.Generator().manual_seed(0)
        for i in range(len(widths) - 1):
            start = float(np.log(np.expm1(1.0 / scale / widths[i + 1])))
            self.matrices.append(torch.nn.Parameter(
                torch.full((channels, widths[i + 1], widths[i]), start, dtype=torch.float64)))
            self.biases.append(torch.nn.Parameter(
                torch.rand((channels, widths[i + 1], 1), generator=generator,
                           dtype=torch.float64) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(torch.nn.Parameter(
                    torch.zeros((channels, widths[i + 1], 1), dtype=torch.float64)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)`` for ``x`` of shape ``(channels, 1, n)``: ``c(x) = σ(f(x))``."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.nn.functional.softplus(matrix) @ x + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def probabilities(self, values: torch.Tensor) -> torch.Tensor:
        """``c(k + ½) − c(k − ½)`` of integers ``values`` ``(n,)``, for every channel
        ``(channels, n)``; computed on the side of the median where it does not cancel."""
        channels = self.matrices[0].shape[0]
        x = values.to(torch.float64).expand(channels, 1, -1)
        lower, upper = self.logits(x - 0.5), self.logits(x + 0.5)
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))[:, 0]


def fit_deep_density(samples: np.ndarray, limit: int, steps: int = 400,
                     filters: tuple[int, ...] = FILTERS) -> np.ndarray:
    """Each column's integer table over ``-limit..limit`` and an escape slot.

    Parameters
    ----------
    samples : (N, G) int array
        Integer latents, one column per density, within ``-limit..limit``.
    limit : int
        Half width of the tables (≥ 1).
    steps : int
        Full-batch Adam steps on the rate ``Σ −log2 p`` (T1 two-part rate, side part).
    filters : tuple of int
        Hidden widths of the cumulative networks.

    Returns
    -------
    (G, 2·limit + 2) array
        Probabilities, each a multiple of ``2^-PRECISION`` and ≥ ``2^-PRECISION``,
        every row summing to exactly 1 (:func:`integer_table`).
    """
    samples = np.asarray(samples)
    if samples.ndim != 2 or samples.shape[0] < 1 or samples.dtype.kind not in "iu":
        raise ValueError(f"samples: expected a non-empty (N, G) integer array, got "
                         f"{samples.dtype} of shape {samples.shape}")
    if limit < 1 or np.abs(samples).max() > limit:
        raise ValueError(f"limit: expected ≥ 1 and ≥ max |sample| = {np.abs(samples).max()}, "
                         f"got {limit}")
    counts = np.stack([np.bincount(column + limit, minlength=2 * limit + 1)
                       for column in samples.T.astype(np.int64)])
    weights = torch.from_numpy(counts / samples.shape[0])
    values = torch.arange(-limit, limit + 1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        density = DeepFactorizedDensity(samples.shape[1], filters)
        optimiser = torch.optim.Adam(density.parameters(), lr=0.05)
        for _ in range(steps):
            optimiser.zero_grad()
            p = density.probabilities(values)
            loss = -(weights * torch.log2(torch.clamp(p, min=2.0 ** -PRECISION))).sum()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            p = density.probabilities(values).numpy()
    return integer_table(p)


def integer_table(probabilities: np.ndarray) -> np.ndarray:
    """Rows of positive weights ``(G, n)`` → tables ``(G, n + 1)`` of integer counts
    summing to ``2^PRECISION`` (each ≥ 1, largest remainders rounded up, ties to the
    lowest index; one escape count last), returned divided by ``2^PRECISION``."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p.sum(1) <= 0):
        raise ValueError("probabilities: expected (G, n) finite non-negative weights with "
                         "positive rows")
    n = p.shape[1]
    free = 2 ** PRECISION - 1 - n  # after one count per symbol and one for the escape
    if free < 0:
        raise ValueError(f"probabilities: at most {2 ** PRECISION - 1} symbols per row, got {n}")
    target = p / p.sum(1, keepdims=True) * free
    counts = np.floor(target).astype(np.int64)
    remainder = target - counts
    for row in range(p.shape[0]):
        missing = free - int(counts[row].sum())
        order = np.lexsort((np.arange(n), -remainder[row]))
        counts[row, order[:missing]] += 1
    table = np.concatenate([counts + 1, np.ones((p.shape[0], 1), dtype=np.int64)], axis=1)
    return table / float(2 ** PRECISION)
