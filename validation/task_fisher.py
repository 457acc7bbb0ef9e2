"""Fit contexts for tasks other than the causal LM: a distortion probe and a sampled Fisher.

:func:`rdgap.codecs.fit.fit_codec` needs, at a split, the hidden states of fit
windows, a :class:`rdgap.codecs.fisher.FisherDiagonal` of the distortion, and
a probe whose ``delta_ce(reconstruct)`` measures the distortion of
reconstructed hidden states (the name is the LM's; the value is the task's
primary distortion, e.g. 1 − cosine for the sentence encoder).

The Fisher follows THEORY.md T7: a task whose primary distortion, averaged
over ``units`` per window (1 embedding, or 16 images), is to second order
``D ≈ (1/units)·½ δᵀ F δ`` with ``F = E[g gᵀ]`` for the gradient ``g`` of a
*sampled* loss with respect to the hidden state (``−Σ log p(y)`` with ``y``
drawn from the model for a classifier; ``zᵀ e`` with a Rademacher vector ``z``
for a unit-norm embedding ``e``, since ``1 − cos(e, e') = ½‖e − e'‖²``). With
independent uniform errors of variance ``Δ_j²/12`` this gives
``D ≈ (1/units) Σ_t Σ_j F_tj,tj Δ_j² / 24`` (T7). :class:`FisherDiagonal`
states per-token Fishers of a per-token metric (``ΔCE ≈ Σ_j F_jj Δ_j²/24``
per token), so the diagonal is stored multiplied by ``tokens/units``; its
``predicted_delta_ce`` then predicts ``D`` itself. Like T7, this is an
approximation, never a bound.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from rdgap.codecs.transforms.fisher import FisherDiagonal

from .tasks import SplitTask, TaskWindows

#: ``loss(inputs, hidden, generator) -> tensor``: a sampled loss of a batch of windows, or a
#: vector of terms whose squared gradients add up (an exact expectation over labels).
SampledLoss = Callable[[dict, torch.Tensor, torch.Generator], torch.Tensor]


def _batches(count: int, size: int):
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


class MetricProbe:
    """The mean primary distortion of reconstructed hidden states on fixed windows.

    Parameters
    ----------
    task : SplitTask
        The task whose ``metrics_names[0]`` is measured.
    k : int
        The split.
    windows : TaskWindows
        The probe windows.
    hidden : torch.Tensor
        ``(windows, positions, width)`` exact hidden states after layer ``k``.
    """

    def __init__(self, task: SplitTask, k: int, windows: TaskWindows, hidden: torch.Tensor):
        if hidden.shape[0] != len(windows):
            raise ValueError(f"hidden: expected {len(windows)} windows like `windows`, got "
                             f"{hidden.shape[0]}")
        self.task, self.k, self.windows, self.hidden = task, k, windows, hidden
        self.parts = _batches(len(windows), task.batch_size)
        self.references = [task.suffix(k, windows.select(part).inputs, hidden[part])
                            for part in self.parts]

    def delta_ce(self, reconstruct: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """Mean primary distortion when each window's state is replaced by ``reconstruct(window)``."""
        values = []
        for part, reference in zip(self.parts, self.references):
            inputs = self.windows.select(part).inputs
            recon = torch.stack([reconstruct(window) for window in self.hidden[part]])
            output = self.task.suffix(self.k, inputs, recon)
            values.append(self.task.metrics(reference, output, inputs)[self.task.metrics_names[0]])
        return float(np.concatenate(values).mean())


def sampled_fisher(loss: SampledLoss, windows: TaskWindows, hidden: torch.Tensor, units: int,
                   batch_size: int = 4, samples: int = 1, seed: int = 0,
                   full: bool = True) -> FisherDiagonal:
    """The T7 Fisher of a per-window distortion averaged over ``units``, from sampled gradients.

    Parameters
    ----------
    loss : callable
        ``loss(inputs, hidden, generator)``: a scalar whose gradient ``g`` with
        respect to ``hidden`` has ``E[g gᵀ]`` equal (block by block, window by
        window) to ``units`` × the Hessian of the window's distortion; or a
        vector of terms ``l`` with ``Σ_l g_l g_lᵀ`` equal to it (no sampling).
    windows : TaskWindows
        Fit windows (their inputs are passed to ``loss``).
    hidden : torch.Tensor
        ``(windows, tokens ≥ 2, channels)`` hidden states at the split.
    units : int
        Units the distortion of a window is averaged over.
    samples : int
        Sampled losses per window (more lowers the Monte-Carlo noise).
    full : bool
        Also estimate the channel × channel matrix of positions ≥ 1 (for
        the ``klt-laplace`` variant).
    """
    if hidden.dim() != 3 or hidden.shape[1] < 2 or hidden.shape[0] != len(windows):
        raise ValueError(f"hidden: expected ({len(windows)} windows, tokens ≥ 2, channels), got "
                         f"{tuple(hidden.shape)}")
    if samples < 1 or units < 1:
        raise ValueError(f"samples, units: expected ≥ 1, got {samples} and {units}")
    generator = torch.Generator().manual_seed(seed)
    tokens, channels = hidden.shape[1], hidden.shape[2]
    squares = torch.zeros(tokens, channels, dtype=torch.float64)
    outer = torch.zeros(channels, channels, dtype=torch.float64)
    for part in _batches(len(windows), batch_size):
        inputs = windows.select(part).inputs
        batch = hidden[part].detach().clone().requires_grad_(True)
        for _ in range(samples):
            with torch.enable_grad():
                terms = loss(inputs, batch, generator).reshape(-1)
                grads = [torch.autograd.grad(term, batch, retain_graph=i + 1 < len(terms))[0]
                         for i, term in enumerate(terms)]
            for grad in grads:
                grad = grad.double()
                squares += (grad ** 2).sum(0)
                if full:
                    rest = grad[:, 1:].reshape(-1, channels)
                    outer += rest.T @ rest
    scale = tokens / (units * samples * len(windows))
    mean = (squares * scale).numpy()
    matrix = (outer * scale / (tokens - 1)).numpy() if full else None
    return FisherDiagonal(rest=mean[1:].mean(0), first=mean[0], tokens=tokens, matrix=matrix)


class TaskSuffix:
    """``FitContext.split`` for a task: the suffix at split ``k`` from a hidden state alone.

    Valid for tasks whose suffix needs no inputs beyond an optional attention
    mask (fixed-length windows: the sentence encoder and the ViT). Returns the
    task's output (an embedding or logits), not necessarily LM logits.
    """

    def __init__(self, task: SplitTask, k: int):
        self.task, self.split = task, k

    def suffix_differentiable(self, hidden: torch.Tensor,
                              attention_mask: torch.Tensor | None = None):
        inputs = {} if attention_mask is None else {"attention_mask": attention_mask}
        return self.task.suffix_differentiable(self.split, inputs, hidden)

    @torch.no_grad()
    def suffix(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None):
        return self.suffix_differentiable(hidden, attention_mask)


def task_fit_context(task: SplitTask, k: int, fit: TaskWindows, hidden: torch.Tensor,
                     loss: SampledLoss, units: int, samples: int = 1,
                     probe_all: bool = False):
    """The :class:`rdgap.codecs.fit.FitContext` of a task at split ``k``.

    As :meth:`rdgap.codecs.fit.FitContext.build` does for the LM: statistics
    and the Fisher (:func:`sampled_fisher`) from the first half of the fit
    windows, the probe (:class:`MetricProbe`) on the second half, so the
    calibration is not flattered by statistics fitted on the very windows it
    is measured on. With ``probe_all`` the probe measures *every* fit window
    instead (twice the calibration data, for tasks whose distortion is so noisy
    that the probe's sampling error outweighs that flattery, e.g. the ViT).
    """
    from rdgap.codecs.fit import FitContext

    if hidden.shape[0] < 2 or hidden.shape[0] != len(fit):
        raise ValueError(f"hidden: expected ≥ 2 fit windows (half fit, half calibrate), one "
                         f"per window of `fit` ({len(fit)}), got {hidden.shape[0]}")
    half = hidden.shape[0] // 2
    first, second = slice(0, half), slice(half, None)
    fisher = sampled_fisher(loss, fit.select(first), hidden[first], units,
                            batch_size=task.batch_size, samples=samples)
    probed = slice(0, None) if probe_all else second
    probe = MetricProbe(task, k, fit.select(probed), hidden[probed])
    return FitContext(TaskSuffix(task, k), hidden[first], fisher, probe)
