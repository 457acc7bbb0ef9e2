"""Per-component steps learned end to end (straight-through rounding), in the KLT domain.

Length (≈440 lines): the objective, its optimiser and the fitter of one step rule;
splitting them would separate the straight-through objective from the only code
that calls it.

The third way of issue 4 to set the steps, after ``c·σ`` and THEORY.md T7's Fisher
allocation: the log-steps ``θ_j = log Δ_j`` of the Fisher-whitened KLT components
(the domain of ``klt-laplace`` / ``klt-context``, :func:`rdgap.codecs.fit.base_steps`)
minimise, on the statistics windows of a :class:`rdgap.codecs.fit.FitContext`,

``L(θ) = ΔCE(suffix(x̂)) + λ · R(S)``

with ``S = round_ste(Z/Δ)``, ``x̂ = μ + A⁻¹ (Δ ⊙ S)`` (:func:`rdgap.codecs.quantizers.ste.round_ste`),
``ΔCE`` in nats/token against the exact hidden state's cross-entropy, and ``R`` the
bits/token of ``S`` under discretised Laplace densities of scale ``σ_j/Δ_j`` steps
(:func:`rdgap.codecs.quantizers.ste.discretised_bits`; ``σ_j`` the components' Laplace scale, or a
residual scale given by the caller). The LM stays frozen. Position 0 keeps T7's steps
(reconstructed by plain rounding, not trained). Training starts from T7's isotropic
steps at the predicted scale ``√(level / unit ΔCE)``; ``λ`` defaults to T7's slope at
the level (:func:`t7_lambda`). Windows are cropped (the first ``crop`` tokens, so
position 0 stays position 0) and a few are drawn per step, deterministically from
``seed``.

The learned step *vector* then replaces T7's in :func:`rdgap.codecs.fit.fit_codec`
(``steps=``), which fits the codec (e.g. the joint ``klt-context`` model) and
calibrates the common scale on the probe windows exactly as for T7's steps: only the
shape of the learned allocation is kept, its overall scale is calibrated.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import recipes
from ..entropy_models.context import table_scale
from ..entropy_models.context_fit import fit_context_codec
from ..fit import FitContext, FittedCodec, base_steps, fit_codec, unit_delta_ce
from .ste import discretised_bits, round_ste

#: Variants whose steps can be learned here (recipes with ``learnable_steps``).
BASE_VARIANTS = recipes.names(learnable_steps=True)
#: Distortion terms of :class:`StepObjective`.
DISTORTIONS = ("kl", "ce")


def t7_lambda(target_delta_ce: float, scale_in_steps: np.ndarray) -> float:
    """λ (nats per bit) at which T7's predicted curve has slope ``−dD/dR`` at the level.

    T7 (THEORY.md): ``R_pred(D) = Σ_j [h(Y_j) + ½ log2(n F_jj / (24 D))]`` over the
    components with positive rate, so ``dR/dD = −n_active / (2 D ln 2)`` and
    ``λ = 2 ln 2 · D / n_active``. A component is active when its high-resolution
    Laplace rate ``log2(2e·b/Δ)`` is positive, i.e. ``b/Δ > 1/(2e)``.

    Parameters
    ----------
    target_delta_ce : float
        The level ``D`` (nats/token, > 0).
    scale_in_steps : array
        Laplace scale ``b/Δ`` of every component at the initial steps.
    """
    if not (np.isfinite(target_delta_ce) and target_delta_ce > 0):
        raise ValueError(f"target_delta_ce: expected a ΔCE level > 0 nats/token, "
                         f"got {target_delta_ce}")
    active = max(int(np.sum(np.asarray(scale_in_steps) > 1 / (2 * math.e))), 1)
    return 2 * math.log(2) * target_delta_ce / active


@dataclass
class StepObjective:
    """``L = ΔCE + λ·R`` of KLT-domain steps on cropped windows (see the module).

    Parameters
    ----------
    split : rdgap.split.SplitModel
        The split model whose suffix measures ΔCE (its parameters may be trained by
        the caller, e.g. :mod:`rdgap.codecs.quantizers.finetune`; the exact CE is computed once,
        at construction, so ΔCE stays against the model as it was then).
    hidden : torch.Tensor
        ``(windows, tokens, channels)`` hidden states.
    input_ids : torch.Tensor
        ``(windows, tokens)`` their token ids.
    mean, analysis, synthesis : arrays
        ``μ``, ``A`` and ``A⁻¹`` of positions ≥ 1.
    rate_scale : (C,) array
        Laplace scale ``σ_j`` of each component, in the units of ``Z`` (not steps).
    first_mean, first_step : (C,) arrays
        Position 0's mean and (fixed) steps.
    lam : float
        ``λ`` in nats per bit (≥ 0).
    crop : int
        Tokens kept of every window (the first ``crop``).
    distortion : {"kl", "ce"}
        The distortion term: ``"ce"`` is ΔCE on the windows' tokens; ``"kl"`` (default)
        is ``KL(p(x) ‖ p(x̂))`` per token, whose Hessian at ``x̂ = x`` is T7's Fisher, so
        its expectation equals ΔCE's to second order (THEORY.md T7) while its gradient
        has no first-order noise term (ΔCE's gradient at small errors is dominated by
        ``∇CE·e``, zero-mean noise). ΔCE is reported either way. ``p(x)`` is the
        current suffix's: use ``"ce"`` when the suffix is trained too.
    device : str or torch.device
        Where the windows and the computation live (the split's model must be there).
    """

    split: object
    hidden: torch.Tensor
    input_ids: torch.Tensor
    mean: np.ndarray
    analysis: np.ndarray
    synthesis: np.ndarray
    rate_scale: np.ndarray
    first_mean: np.ndarray
    first_step: np.ndarray
    lam: float
    crop: int = 128
    distortion: str = "kl"
    device: str | torch.device = "cpu"
    exact_ce: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        check_lambda(self.lam)
        if self.hidden.dim() != 3 or tuple(self.input_ids.shape) != tuple(self.hidden.shape[:2]):
            raise ValueError(f"input_ids: expected the ids of hidden's windows, shape "
                             f"{tuple(self.hidden.shape[:2])}, got {tuple(self.input_ids.shape)}")
        if self.distortion not in DISTORTIONS:
            raise ValueError(f"distortion: expected one of {DISTORTIONS}, got "
                             f"{self.distortion!r}")
        if not 2 <= self.crop:
            raise ValueError(f"crop: expected ≥ 2 tokens per window, got {self.crop}")
        x = self.hidden[:, :self.crop].detach().double().to(self.device)
        self.ids = self.input_ids[:, :self.crop].long().to(self.device)
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64,  # noqa: E731
                                              device=self.device)
        mean, first_mean, first_step = map(as_tensor, (self.mean, self.first_mean,
                                                       self.first_step))
        self._z = ((x[:, 1:] - mean) @ as_tensor(self.analysis).T).float()
        self._first = (first_mean + first_step * torch.round((x[:, 0] - first_mean)
                                                            / first_step)).float()
        self._mean, self._synthesis = mean.float(), as_tensor(self.synthesis).float()
        self._sigma = as_tensor(self.rate_scale).float()
        self._x = x.float()
        with torch.no_grad():
            self.exact_ce = torch.cat([self._cross_entropy(self._x[i:i + 2], slice(i, i + 2))
                                       for i in range(0, len(x), 2)])

    @property
    def windows(self) -> int:
        """Number of windows the objective draws from."""
        return self.hidden.shape[0]

    def _log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities ``(B, T − 1, V)`` (float32) of the suffix."""
        return torch.log_softmax(self.split.suffix_differentiable(hidden)[:, :-1].float(), -1)

    def _cross_entropy(self, hidden: torch.Tensor, index) -> torch.Tensor:
        ids = self.ids[index][:, 1:]
        return -self._log_probs(hidden).gather(-1, ids[..., None]).squeeze(-1)

    def reconstruct(self, log_step: torch.Tensor, index) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x̂, S)`` of windows ``index``: the reconstruction ``(B, T, C)`` (position 0
        by T7's steps) and the straight-through symbols of positions ≥ 1.

        Parameters
        ----------
        log_step : torch.Tensor
            ``(C,)`` log-steps of positions ≥ 1 (the gradient flows to them).
        index : tensor of int or slice
            Which windows (of the cropped statistics windows).
        """
        step = log_step.exp()
        symbols = round_ste(self._z[index] / step)
        rest = self._mean + (symbols * step) @ self._synthesis.T
        return torch.cat([self._first[index][:, None], rest], 1), symbols

    def __call__(self, log_step: torch.Tensor, index) -> tuple[torch.Tensor, float, float]:
        """``(L, ΔCE, bits/token)`` on windows ``index``; ``L`` carries the gradient."""
        recon, symbols = self.reconstruct(log_step, index)
        log_q = self._log_probs(recon)
        ids = self.ids[index][:, 1:]
        delta = (-log_q.gather(-1, ids[..., None]).squeeze(-1) - self.exact_ce[index]).mean()
        if self.distortion == "kl":
            with torch.no_grad():
                log_p = self._log_probs(self._x[index])
            distortion = (log_p.exp() * (log_p - log_q)).sum(-1).mean()
        else:
            distortion = delta
        bits = discretised_bits(symbols, self._sigma / log_step.exp()).sum()
        rate = bits / (symbols.shape[0] * (symbols.shape[1] + 1))
        return distortion + self.lam * rate, float(delta.detach()), float(rate.detach())


def check_lambda(lam: float) -> float:
    """``lam`` itself, or an error naming it unless it is a finite number ≥ 0."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) \
            or not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam: expected a finite rate weight λ ≥ 0 (nats per bit), got {lam}")
    return float(lam)


def optimise(objective: StepObjective, log_step: torch.Tensor, parameters=(),
             iterations: int = 40, windows_per_step: int = 2, lr: float = 0.01,
             parameter_lr: float = 1e-5, seed: int = 0, progress: bool = True,
             description: str = "learn steps", max_seconds: float | None = None) -> list[dict]:
    """Adam on ``log_step`` (and on ``parameters``, e.g. LM weights, with ``parameter_lr``)
    for ``iterations`` steps of ``windows_per_step`` windows drawn with ``seed`` (fewer if
    ``max_seconds`` of wall time run out first).

    Parameters
    ----------
    objective : StepObjective
        ``L = distortion + λ·rate`` on the windows.
    log_step : torch.Tensor
        ``(C,)`` log-steps with ``requires_grad``; updated in place.
    parameters : iterable of torch.nn.Parameter
        Further parameters trained with them (e.g. the suffix of a copy of the LM).
    iterations, windows_per_step : int
        Adam steps (≥ 0) and windows drawn per step (≥ 1).
    lr, parameter_lr : float
        Learning rates of ``log_step`` and of ``parameters``.
    seed : int
        Seed of the window draws.
    progress : bool
        Show a tqdm bar (labelled ``description``).
    description : str
        The bar's label.
    max_seconds : float, optional
        Wall-time cap of the training.

    Returns
    -------
    list of dict
        ``{"objective", "delta_ce", "bits_per_token"}`` of every step taken.
    """
    if not iterations >= 0:
        raise ValueError(f"iterations: expected ≥ 0 Adam steps, got {iterations}")
    if not windows_per_step >= 1:
        raise ValueError(f"windows_per_step: expected ≥ 1 window per step, got "
                         f"{windows_per_step}")
    if max_seconds is not None and not max_seconds >= 0:
        raise ValueError(f"max_seconds: expected a wall time ≥ 0 s or None, got {max_seconds}")
    groups = [{"params": [log_step], "lr": lr}]
    parameters = list(parameters)
    if parameters:
        groups.append({"params": parameters, "lr": parameter_lr})
    optimiser = torch.optim.Adam(groups)
    generator = torch.Generator().manual_seed(seed)
    count = min(windows_per_step, objective.windows)
    trace = []
    deadline = math.inf if max_seconds is None else time.perf_counter() + max_seconds
    for _ in tqdm(range(iterations), desc=description, unit="step", disable=not progress):
        if time.perf_counter() > deadline:
            break
        index = torch.randperm(objective.windows, generator=generator)[:count]
        optimiser.zero_grad()
        with torch.enable_grad():
            loss, delta, rate = objective(log_step, index)
            loss.backward()
        optimiser.step()
        trace.append({"objective": float(loss.detach()), "delta_ce": delta,
                      "bits_per_token": rate})
    return trace


@dataclass
class LearnedSteps:
    """Learned KLT-domain steps and how they were learned.

    Attributes
    ----------
    step : (C,) array
        Learned steps of positions ≥ 1 (at the scale they were trained at).
    initial_step : (C,) array
        T7's steps the training started from.
    first_step : (C,) array
        Position 0's steps (T7's, not trained).
    lam : float
        ``λ`` in nats per bit.
    trace : list of dict
        Objective, ΔCE and bits/token of every training step.
    """

    step: np.ndarray
    initial_step: np.ndarray
    first_step: np.ndarray
    lam: float
    trace: list[dict]


def step_problem(context: FitContext, input_ids: torch.Tensor, target_delta_ce: float,
                 variant: str = "klt-context", lam: float | None = None, crop: int = 128,
                 split=None, distortion: str = "kl", device="cpu"):
    """The :class:`StepObjective` of ``variant`` at the level, and its initial log-steps.

    T7's isotropic steps at the predicted scale start the training; the rate uses each
    component's marginal Laplace scale (``klt-laplace``) or, for ``klt-context``, the
    scale of its prediction residual in the context codec fitted at those steps
    (:func:`rdgap.codecs.entropy_models.context_fit.fit_context_codec`, side latent 0).

    Parameters
    ----------
    context : FitContext
        Statistics windows, Fisher and split.
    input_ids : torch.Tensor
        ``(windows, tokens)`` token ids of ``context.hidden``.
    target_delta_ce : float
        The level (nats/token, > 0).
    variant : {"klt-context", "klt-laplace"}
        Whose transform and rate model.
    lam : float, optional
        ``λ`` in nats per bit (≥ 0); default :func:`t7_lambda`.
    crop : int
        Tokens kept of every window.
    split : SplitModel, optional
        Replaces ``context.split`` (e.g. a copy of the model being fine-tuned, on
        ``device``).
    distortion : {"kl", "ce"}
        The distortion term (:class:`StepObjective`).
    device : str or torch.device
        Where the objective computes.

    Returns
    -------
    tuple
        ``(objective, log_step, first_step)``: the :class:`StepObjective`, the initial
        float32 ``(C,)`` log-steps on ``device`` (no gradient yet) and position 0's steps.
    """
    if variant not in BASE_VARIANTS:
        raise ValueError(f"variant: expected one of {BASE_VARIANTS}, got {variant!r}")
    if not (np.isfinite(target_delta_ce) and target_delta_ce > 0):
        raise ValueError(f"target_delta_ce: expected a ΔCE level > 0 nats/token, "
                         f"got {target_delta_ce}")
    if lam is not None:
        check_lambda(lam)
    stats, base, first_base, klt, _ = base_steps(variant, context)
    initial = float(np.sqrt(target_delta_ce / unit_delta_ce(variant, context.fisher, base,
                                                            first_base)))
    step, first_step = initial * base, initial * first_base
    sigma = stats.scale
    if variant == "klt-context":  # residual of the causal prediction, side latent 0
        reference = fit_context_codec(context.hidden, stats.mean, klt.analysis, klt.synthesis,
                                      step, stats.first_mean, stats.first_scale, first_step)
        sigma = table_scale(reference.base_index) * step
    lam = t7_lambda(target_delta_ce, sigma / step) if lam is None else lam
    objective = StepObjective(split or context.split, context.hidden, input_ids, stats.mean,
                              klt.analysis, klt.synthesis, sigma, stats.first_mean, first_step,
                              lam, crop, distortion, device)
    return (objective, torch.tensor(np.log(step), dtype=torch.float32, device=device),
            first_step)


def learn_steps(context: FitContext, input_ids: torch.Tensor, target_delta_ce: float,
                variant: str = "klt-context", lam: float | None = None, iterations: int = 40,
                windows_per_step: int = 2, crop: int = 128, lr: float = 0.01, seed: int = 0,
                distortion: str = "kl", progress: bool = True) -> LearnedSteps:
    """Learn the KLT-domain steps of ``variant`` end to end with the LM frozen.

    Parameters
    ----------
    context : FitContext
        Statistics windows (``context.hidden``), Fisher and split.
    input_ids : torch.Tensor
        ``(windows, tokens)`` token ids of ``context.hidden``.
    target_delta_ce : float
        The level (nats/token, > 0): sets the initial scale and the default ``λ``.
    variant : {"klt-context", "klt-laplace"}
        Whose transform and rate model (see :func:`step_problem`).
    lam : float, optional
        ``λ`` in nats per bit (≥ 0); default :func:`t7_lambda`.
    iterations, windows_per_step, crop, lr, seed : int, float
        Adam steps, windows per step, tokens per window, learning rate of the
        log-steps, seed of the window draws.
    distortion : {"kl", "ce"}
        The distortion term (:class:`StepObjective`).
    progress : bool
        Show a tqdm bar.
    """
    objective, log_step, first_step = step_problem(context, input_ids, target_delta_ce,
                                                   variant, lam, crop,
                                                   distortion=distortion)
    initial = log_step.exp().double().numpy()
    log_step.requires_grad_(True)
    with _frozen(objective.split.model):
        trace = optimise(objective, log_step, iterations=iterations,
                         windows_per_step=windows_per_step, lr=lr, seed=seed, progress=progress)
    return LearnedSteps(log_step.detach().exp().double().numpy(), initial, first_step,
                        objective.lam, trace)


class _frozen:
    """Context manager: every parameter of ``model`` has ``requires_grad`` False inside."""

    def __init__(self, model: torch.nn.Module):
        self.parameters = [p for p in model.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.parameters:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.parameters:
            p.requires_grad_(True)


def fit_learned_codec(context: FitContext, input_ids: torch.Tensor, target_delta_ce: float,
                      method: str = "fit", margin: float = 0.0, variant: str = "klt-context",
                      learned: LearnedSteps | None = None, **learn) -> FittedCodec:
    """``variant`` fitted and calibrated by :func:`rdgap.codecs.fit.fit_codec` (``method``,
    ``margin`` passed on) with the learned step vector (``learned``, or :func:`learn_steps`
    with ``**learn``) in place of T7's; the result's variant is ``"<variant>-learned"``.
    The signature is that of ``benchmarks/codec_bench.py``'s ``FITTERS``.

    Parameters
    ----------
    context : FitContext
        Statistics windows, Fisher, split and calibration probe.
    input_ids : torch.Tensor or None
        ``(windows, tokens)`` ids of ``context.hidden`` (unused when ``learned`` is given).
    target_delta_ce : float
        The level (nats/token, > 0) the calibration meets on the probe.
    method : {"fit", "bracket"}
        Calibration method.
    margin : float
        ``z ≥ 0`` standard errors over documents added to the probe ΔCE.
    variant : {"klt-context", "klt-laplace"}
        The codec whose steps are learned.
    learned : LearnedSteps, optional
        Steps learned already (e.g. jointly with the LM, :mod:`rdgap.codecs.quantizers.finetune`).
    **learn
        Arguments of :func:`learn_steps` when ``learned`` is None.

    Returns
    -------
    FittedCodec
        The calibrated codec, variant ``"<variant>-learned"``.
    """
    if learned is None:
        learned = learn_steps(context, input_ids, target_delta_ce, variant, **learn)
    fitted = fit_codec(variant, context, target_delta_ce, method=method, margin=margin,
                       steps=learned.step, label=f"{variant}-learned")
    return replace(fitted, variant=f"{variant}-learned")
