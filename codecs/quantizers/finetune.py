"""Fine-tune the LM jointly with the learned steps on ``CE(x̂) + λ·rate`` (optional path).

PAPER.md's objective: the language model (here its suffix, after the split) is trained
together with the codec on ``cross-entropy (nats) + λ·bits/token`` of the rounded state,
so that the network adapts to the quantization. The codec part is that of
:mod:`rdgap.codecs.quantizers.learned_steps` (KLT-domain log-steps, straight-through rounding,
discretised Laplace rate); here the suffix parameters are trained as well, on a copy of
the model (the original is never modified), on any ``device``.

What is trainable (``trainable``):

``"none"``
    nothing but the steps: exactly :func:`rdgap.codecs.quantizers.learned_steps.learn_steps`;
``"suffix"``
    the decoder layers after the split and the final norm. The token embedding (tied to
    the output head in SmolLM2) and the prefix layers stay frozen, so the hidden states
    at the split — and the statistics, Fisher and KLT fitted on them — are unchanged.

ΔCE is always reported against the ORIGINAL model's cross-entropy of the exact hidden
state, never against the fine-tuned model's (:func:`fit_finetuned_codec` calibrates to
the level in that sense, :func:`finetuned_context` says how). The fine-tuned parameters are saved with safetensors
(:meth:`Finetuned.save_state`, :func:`load_state`), never pickled.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .calibrate import DistortionProbe
from ..fit import FitContext, FittedCodec
from .learned_steps import LearnedSteps, fit_learned_codec, optimise, step_problem
from rdgap.split import SplitModel

TRAINABLE = ("none", "suffix")


def trainable_parameters(split: SplitModel, trainable: str) -> dict[str, torch.nn.Parameter]:
    """The parameters ``trainable`` names (see the module), by their name in the model.

    Parameters
    ----------
    split : SplitModel
        The model and where it is split.
    trainable : {"none", "suffix"}
        What is trained (:data:`TRAINABLE`).

    Returns
    -------
    dict of str to torch.nn.Parameter
        Empty for ``"none"``; the decoder layers after the split and the final norm for
        ``"suffix"``.
    """
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable: expected one of {TRAINABLE}, got {trainable!r}")
    if trainable == "none":
        return {}
    layers = {id(p) for layer in list(split.layers)[split.split:] for p in layer.parameters()}
    norm = getattr(getattr(split.model, "model", None), "norm", None)
    if norm is not None:
        layers |= {id(p) for p in norm.parameters()}
    return {name: p for name, p in split.model.named_parameters() if id(p) in layers}


@dataclass
class Finetuned:
    """A fine-tuned copy of the model, its split, and the steps learned with it.

    Attributes
    ----------
    model : torch.nn.Module
        The fine-tuned copy (on the training device).
    split : SplitModel
        ``model`` split where the original was.
    learned : LearnedSteps
        The KLT-domain steps trained jointly.
    trainable : str
        What was trained (:data:`TRAINABLE`).
    names : list of str
        Names of the trained model parameters.
    variant : str
        Whose transform and rate model the steps were learned for.
    """

    model: torch.nn.Module
    split: SplitModel
    learned: LearnedSteps
    trainable: str
    names: list[str]
    variant: str = "klt-context"

    def state(self) -> dict[str, torch.Tensor]:
        """The trained parameters (CPU copies), by name."""
        params = dict(self.model.named_parameters())
        return {name: params[name].detach().cpu().contiguous() for name in self.names}

    def save_state(self, path: str | Path) -> Path:
        """Write the trained parameters to ``path`` (safetensors) and return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(self.state(), str(path), metadata={"rdgap": "finetune",
                                                    "trainable": self.trainable,
                                                    "split": str(self.split.split)})
        return path


def load_state(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load parameters saved by :meth:`Finetuned.save_state` into ``model`` (in place).

    Parameters
    ----------
    model : torch.nn.Module
        A model of the architecture that was fine-tuned (e.g. a freshly loaded original);
        its parameters named in the file are overwritten.
    path : str or Path
        A safetensors file written by :meth:`Finetuned.save_state` (read with
        :func:`safetensors.torch.load_file`, never unpickled).

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    ValueError
        Naming ``path`` when a saved name is not a parameter of ``model`` or its shape
        differs (nothing is loaded then).
    """
    state = load_file(str(path))
    params = dict(model.named_parameters())
    for name, value in state.items():
        if name not in params or params[name].shape != value.shape:
            raise ValueError(f"path: {path} holds {name} {tuple(value.shape)}, which the model "
                             f"does not have with that shape")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    return model


def finetune(context: FitContext, input_ids: torch.Tensor, target_delta_ce: float,
             trainable: str = "suffix", lam: float | None = None, iterations: int = 40,
             windows_per_step: int = 2, crop: int = 128, lr: float = 0.01,
             parameter_lr: float = 1e-5, seed: int = 0, device: str | torch.device = "cpu",
             distortion: str = "ce", variant: str = "klt-context",
             progress: bool = True, max_seconds: float | None = None) -> Finetuned:
    """Train the steps (and the ``trainable`` parameters of a copy of the LM) on
    ``CE(x̂) + λ·rate`` over the statistics windows of ``context``.

    Parameters
    ----------
    context : FitContext
        Statistics windows, Fisher and split of the ORIGINAL model (not modified).
    input_ids : torch.Tensor
        ``(windows, tokens)`` token ids of ``context.hidden``.
    target_delta_ce : float
        The level (nats/token, > 0): initial scale and default ``λ`` (T7's slope).
    trainable : {"none", "suffix"}
        What of the LM is trained (see the module).
    lam : float, optional
        ``λ`` in nats per bit (≥ 0).
    iterations, windows_per_step, crop, lr, parameter_lr, seed
        Adam steps, windows per step, tokens per window, learning rates of the
        log-steps and of the LM parameters, seed of the window draws.
    device : str or torch.device
        Where the copy of the model and the windows are trained.
    distortion : {"ce", "kl"}
        ``"ce"`` (default, the paper's objective, against the original model's CE of the
        exact state) or ``"kl"`` (:class:`rdgap.codecs.quantizers.learned_steps.StepObjective`).
    variant : {"klt-context", "klt-laplace"}
        Whose transform and rate model.
    progress : bool
        Show a tqdm bar.
    max_seconds : float, optional
        Stop training after this much wall time (fewer than ``iterations`` steps).
    """
    model = copy.deepcopy(context.split.model).to(device)
    split = SplitModel(model, context.split.split)
    trained = trainable_parameters(split, trainable)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trained.values():
        p.requires_grad_(True)
    objective, log_step, first_step = step_problem(context, input_ids, target_delta_ce, variant,
                                                   lam, crop, split=split,
                                                   distortion=distortion, device=device)
    initial = log_step.detach().exp().double().cpu().numpy()
    log_step.requires_grad_(True)
    model.train(False)
    trace = optimise(objective, log_step, list(trained.values()), iterations=iterations,
                     windows_per_step=windows_per_step, lr=lr, parameter_lr=parameter_lr,
                     seed=seed, progress=progress, description=f"fine-tune ({trainable})",
                     max_seconds=max_seconds)
    for p in model.parameters():
        p.requires_grad_(False)
    learned = LearnedSteps(log_step.detach().exp().double().cpu().numpy(), initial, first_step,
                           objective.lam, trace)
    return Finetuned(model, split, learned, trainable, list(trained), variant)


class FinetunedProbe(DistortionProbe):
    """The probe windows under the fine-tuned suffix: its ΔCE is the codec's own distortion
    ``CE_ft(x̂) − CE_ft(x)``, its standard error (:meth:`estimate`) that of ΔCE against the
    ORIGINAL model, ``CE_ft(x̂) − CE_orig(x)`` per document — the two differ by the
    per-token offsets ``CE_ft(x) − CE_orig(x)``, which vary across documents too.

    Parameters
    ----------
    split : SplitModel
        The fine-tuned model, split where the original was.
    original : DistortionProbe
        The original model's probe (its windows, documents and exact CE).
    """

    def __init__(self, split: SplitModel, original: DistortionProbe):
        super().__init__(split, original.input_ids, original.hidden, original.batch_size,
                         documents=torch.as_tensor(original.documents))
        #: ``CE_ft(x) − CE_orig(x)`` of every predicted token ``(windows, tokens − 1)``
        self.offsets = self.exact_ce - original.exact_ce

    def estimate(self, reconstruct, with_ids: bool = False):
        """Mean of the codec's own distortion and the standard error over documents of ΔCE
        against the original model (what a calibration margin must use)."""
        from rdgap.validation.distortion import document_estimate

        values = self.per_window(reconstruct, with_ids)
        spread = document_estimate((values + self.offsets).mean(1).numpy(), self.documents)
        return float(values.mean()), spread.stderr


def finetuned_context(context: FitContext, finetuned: Finetuned) -> tuple[FitContext, float]:
    """``context`` with the fine-tuned suffix (on the CPU) and its own calibration probe,
    and the probe windows' offset ``mean(CE_ft(x) − CE_orig(x))`` (nats/token).

    ΔCE against the ORIGINAL model splits exactly into the codec's distortion under the
    fine-tuned model and that offset: ``CE_ft(x̂) − CE_orig(x) = [CE_ft(x̂) − CE_ft(x)] +
    [CE_ft(x) − CE_orig(x)]``. The probe measures the first term, which grows from 0 like
    T7's ``α²`` and suits :func:`rdgap.codecs.quantizers.calibrate.calibrate_scale`; the offset (often
    negative: fine-tuning on in-domain text lowers CE by itself) moves the target.
    Statistics, Fisher and KLT are the original's (the prefix is frozen).

    Parameters
    ----------
    context : FitContext
        The ORIGINAL model's fit context (its probe gives the windows and exact CE).
    finetuned : Finetuned
        The result of :func:`finetune`; not modified (a model trained on another device
        is copied to the CPU, never moved).

    Returns
    -------
    tuple of (FitContext, float)
        The context with the fine-tuned suffix and its probe, and the offset.
    """
    model = finetuned.model
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).to("cpu")
    split = SplitModel(model, finetuned.split.split)
    probe = FinetunedProbe(split, context.probe)
    offset = float(probe.offsets.mean())
    return FitContext(split, context.hidden, context.fisher, probe), offset


def fit_finetuned_codec(context: FitContext, finetuned: Finetuned, target_delta_ce: float,
                        method: str = "fit", margin: float = 0.0) -> FittedCodec:
    """The codec of ``finetuned.variant`` with the jointly learned steps, calibrated so that
    the fine-tuned suffix on its reconstruction meets ``target_delta_ce`` against the
    ORIGINAL model's CE on the probe windows: the codec's own distortion is calibrated to
    ``target − offset`` (:func:`finetuned_context`), and the returned calibration's ΔCE,
    target and trace are shifted back by the offset, i.e. against the original model; its
    standard error (and a margin's) is over documents of ΔCE against the original
    (:class:`FinetunedProbe`).

    Parameters
    ----------
    context : FitContext
        The ORIGINAL model's fit context.
    finetuned : Finetuned
        The result of :func:`finetune` (not modified).
    target_delta_ce : float
        The level (nats/token, > 0) against the original model's CE.
    method : {"fit", "bracket"}
        Calibration method (:func:`rdgap.codecs.quantizers.calibrate.calibrate_scale`).
    margin : float
        ``z ≥ 0`` standard errors over documents of ΔCE against the original model
        (:class:`FinetunedProbe`) added to the probe ΔCE.

    Returns
    -------
    FittedCodec
        Variant ``"<variant>-learned-finetuned-<trainable>"``, calibration against the
        original model.

    Raises
    ------
    ValueError
        Naming ``finetuned`` when the fine-tuned model alone, on the exact hidden states,
        is already ``target_delta_ce`` or more above the original.
    """
    if not (np.isfinite(target_delta_ce) and target_delta_ce > 0):
        raise ValueError(f"target_delta_ce: expected a ΔCE level > 0 nats/token, "
                         f"got {target_delta_ce}")
    tuned_context, offset = finetuned_context(context, finetuned)
    if not target_delta_ce - offset > 0:
        raise ValueError(f"finetuned: the fine-tuned model alone is {offset:.4g} nats/token "
                         f"above the original on the probe windows, not below the level "
                         f"{target_delta_ce}")
    fitted = fit_learned_codec(tuned_context, None, target_delta_ce - offset, method=method,
                               margin=margin, variant=finetuned.variant,
                               learned=finetuned.learned)
    c = fitted.calibration
    shifted = replace(c, delta_ce=c.delta_ce + offset, target=target_delta_ce,
                      trace=[(a, v + offset) for a, v in c.trace],
                      upper=None if c.upper is None else c.upper + offset)
    return replace(fitted, variant=f"{fitted.variant}-finetuned-{finetuned.trainable}",
                   calibration=shifted)
