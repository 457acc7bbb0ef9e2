"""The Fisher diagonal of the downstream loss with respect to the hidden state.

THEORY.md T7 predicts the distortion of quantization noise ``e`` at the split
as ``ΔCE ≈ ½ E[eᵀ F e]``, where ``F`` is the Fisher (Gauss–Newton) matrix of
the model's next-token log-loss with respect to the hidden state. Its diagonal
is estimated by sampling a label ``y_t ~ p(· | x_{≤t})`` at every position from
the model itself, back-propagating ``L = −Σ_t log p(y_t)`` (the window's total
loss) to the hidden state ``Y`` at the split, and averaging ``(∂L/∂Y_tj)²``.
For independent uniform errors of variance ``Δ_j²/12`` this gives the
per-token prediction ``ΔCE ≈ Σ_j F_jj Δ_j² / 24`` with
``F_jj = mean_t E[(∂L/∂Y_tj)²]`` over positions ``t ≥ 1``; position 0 gets its
own diagonal ``F0_j = E[(∂L/∂Y_0j)²]``, whose term is divided by the number of
tokens. This is an approximation (second order, sampled), never a bound.

:func:`shrink_toward_diagonal` makes the full matrix robust to text the fit corpus
lacks (issue 19, ``docs/domain-shift.md``): the Fisher-whitened KLT gives every
whitened component one step, so its error goes where the fit text's Fisher is
small, and other text is up to 2.4 times more sensitive there; the diagonal, which
``gaussian-fisher`` is built on, barely moves between texts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from rdgap.split import SplitModel


@dataclass
class FisherDiagonal:
    """Per-channel Fisher diagonal for positions ≥ 1 (``rest``) and position 0 (``first``).

    ``matrix`` is the full position-averaged Fisher of positions ≥ 1 when it
    was estimated (``fisher_diagonal(..., full=True)``), else None; ``shrinkage``
    is the weight ``λ`` it was shrunk toward its diagonal with
    (:func:`shrink_toward_diagonal`; 0: the estimate as it is).
    """

    rest: np.ndarray
    first: np.ndarray
    tokens: int
    matrix: np.ndarray | None = None
    shrinkage: float = 0.0

    def predicted_delta_ce(self, step: np.ndarray, first_step: np.ndarray) -> float:
        """T7's per-token prediction ``Σ_j F_jj Δ_j²/24`` (nats), position 0 included."""
        rest = float(np.sum(self.rest * step ** 2) / 24.0) * (self.tokens - 1) / self.tokens
        first = float(np.sum(self.first * first_step ** 2) / 24.0) / self.tokens
        return rest + first


def fisher_diagonal(split: SplitModel, hidden: torch.Tensor, samples: int = 1,
                    batch_size: int = 2, seed: int = 0, full: bool = False) -> FisherDiagonal:
    """Estimate the Fisher diagonal at the split from hidden states of fit windows.

    Parameters
    ----------
    split : SplitModel
        The model split where the codec sits.
    hidden : torch.Tensor
        ``(windows, tokens, channels)`` hidden states at the split.
    samples : int
        Labels drawn per position (more lowers the Monte-Carlo noise).
    full : bool
        Also estimate the full channel × channel Fisher of positions ≥ 1,
        ``mean_t E[g_t g_tᵀ]`` (THEORY.md T7 before its diagonal approximation).
    """
    if hidden.dim() != 3 or hidden.shape[1] < 2:
        raise ValueError(f"hidden: expected (windows, tokens ≥ 2, channels), got "
                         f"{tuple(hidden.shape)}")
    if samples < 1:
        raise ValueError(f"samples: expected ≥ 1, got {samples}")
    generator = torch.Generator().manual_seed(seed)
    channels = hidden.shape[2]
    squares = torch.zeros(hidden.shape[1], channels, dtype=torch.float64)
    outer = torch.zeros(channels, channels, dtype=torch.float64) if full else None
    count = 0
    for start in range(0, hidden.shape[0], batch_size):
        batch = hidden[start:start + batch_size].detach().clone()
        for _ in range(samples):
            batch.requires_grad_(True)
            with torch.enable_grad():
                logits = split.suffix_differentiable(batch)
                log_probs = torch.log_softmax(logits.float(), dim=-1)
                labels = torch.multinomial(log_probs.detach().exp().reshape(-1, logits.shape[-1]),
                                           1, generator=generator).reshape(logits.shape[:2])
                loss = -log_probs.gather(-1, labels[..., None]).sum()
                (grad,) = torch.autograd.grad(loss, batch)
            grad = grad.double()
            squares += (grad ** 2).sum(0)
            if full:
                rest = grad[:, 1:].reshape(-1, channels)
                outer += rest.T @ rest
            count += batch.shape[0]
            batch = batch.detach()
    mean = (squares / count).numpy()
    matrix = None
    if full:
        matrix = (outer / (count * (hidden.shape[1] - 1))).numpy()
    return FisherDiagonal(rest=mean[1:].mean(0), first=mean[0], tokens=hidden.shape[1],
                          matrix=matrix)


def shrink_toward_diagonal(fisher: FisherDiagonal, weight: float) -> FisherDiagonal:
    """The Fisher with its full matrix shrunk toward its diagonal: ``(1 − λ) F + λ diag(F)``.

    The Fisher-whitened KLT (:func:`rdgap.codecs.transforms.klt.fisher_klt`) built on
    the shrunk matrix keeps part of the decorrelation of the estimate (``λ = 0``) and
    moves toward the per-channel weighting of ``gaussian-fisher`` (``λ = 1``: every
    channel's error weighted by ``F_jj`` alone). The diagonal (``rest``, ``first``) is
    unchanged, so the per-channel recipes are unaffected; the quadratic form ``eᵀ F e``
    of T7 with the shrunk matrix is what every prediction of a codec fitted from it
    uses. Why: on text the fit corpus lacks, the sensitivity moves into directions
    where the estimate is small (``docs/domain-shift.md``); shrinkage raises the
    estimate there, a fixed robustness choice that costs rate on the fit text. It
    changes nothing the fit text can confirm, so ``λ`` is chosen on measurements of
    other text (``benchmarks/robust_fisher.py``), never calibrated on the fit corpus.

    Parameters
    ----------
    fisher : FisherDiagonal
        An estimate with its full ``matrix`` (``fisher_diagonal(..., full=True)``).
    weight : float
        ``λ`` in ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> f = FisherDiagonal(rest=np.array([2.0, 1.0]), first=np.ones(2), tokens=8,
    ...                    matrix=np.array([[2.0, 1.2], [1.2, 1.0]]))
    >>> shrink_toward_diagonal(f, 0.5).matrix
    array([[2. , 0.6],
           [0.6, 1. ]])
    """
    if fisher.matrix is None:
        raise ValueError("fisher: expected an estimate with its full matrix "
                         "(fisher_diagonal(..., full=True)); shrinkage acts on the matrix")
    if not (np.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise ValueError(f"weight: expected a shrinkage weight in [0, 1], got {weight}")
    if fisher.shrinkage:
        raise ValueError(f"fisher: already shrunk (λ = {fisher.shrinkage:g}); shrink the "
                         f"estimate once, with the weight wanted")
    matrix = np.asarray(fisher.matrix, dtype=np.float64)
    shrunk = (1.0 - weight) * matrix + weight * np.diag(np.diag(matrix))
    return replace(fisher, matrix=shrunk, shrinkage=float(weight))
