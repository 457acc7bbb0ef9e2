"""The one registry of codec variants: each a named recipe of parts.

A reference codec is a composition

    transform → quantizer → entropy model → coder → container

and a *variant* (``klt-context``, ``gaussian-fisher``, ...) is a named choice of
those parts plus the rule that sets its steps and the function that fits it.
Every consumer reads :data:`RECIPES`: :mod:`rdgap.codecs.fit` (``VARIANTS``),
``rdgap validate`` (:data:`rdgap.validation.runner.FITTED_VARIANTS`),
``benchmarks/codec_bench.py`` (``FITTERS``), :mod:`rdgap.codecs.quantizers.learned_steps`
(``BASE_VARIANTS``), ``rdgap split-run`` (:func:`load_codec`, a saved codec of
any recipe) and the golden-stream and property tests.

Adding a variant is one :class:`Recipe` line below (and, for a new entropy model,
one module under ``codecs/entropy_models/`` whose ``fit_model`` is named in
:data:`ENTROPY_MODEL_FITS`; see ``docs/adding-an-entropy-model.md``). Each part fits
itself (:data:`TRANSFORM_FITS`, :data:`ENTROPY_MODEL_FITS`); one pipeline,
:func:`rdgap.codecs.fit.fit_codec`, and one calibration drive them.

>>> from rdgap.codecs.recipes import RECIPES, recipe
>>> recipe("klt-context").entropy_model
'context'
>>> [name for name, r in RECIPES.items() if r.in_validate][:3]
['gaussian-std', 'gaussian-fisher', 'laplace-fisher']
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

#: Transforms (``codecs/transforms/``).
TRANSFORMS = {
    "identity": "the hidden state as it is, one step per channel",
    "fisher-klt": "Fisher-whitened KLT (rdgap.codecs.transforms.klt.fisher_klt)",
}
#: Quantizers (``codecs/quantizers/``).
QUANTIZERS = {
    "uniform": "uniform scalar quantizer, reconstruction at the cell centre "
               "(rdgap.codecs.quantizers.uniform)",
    "deadzone-centroid": "dead zone, reconstruction at the cell centroid of the Laplace law "
                         "(rdgap.codecs.quantizers.deadzone)",
    "rdoq": "the uniform quantizer's cells and reconstruction; per symbol the encoder writes "
            "the level among nearest, one toward zero and zero minimising (x − k)² + c·bits(k) "
            "under the entropy model's own tables (rdgap.codecs.quantizers.rdoq)",
    "deadzone-rdo": "the dead-zone quantizer with greedy RDO inside the causal loop: a "
                    "nonzero symbol moves one level toward zero where ΔD + c·Δbits < 0 "
                    "(rdgap.codecs.quantizers.deadzone.rdo_symbols)",
    "window-controlled": "the parent's quantizer, its steps × a per-window factor the encoder "
                         "chooses from a ladder (T11 distortion control, rate cap; "
                         "rdgap.codecs.quantizers.window_control)",
}
#: Step rules: how the quantizer's per-channel steps are set before calibration.
STEP_RULES = {
    "std": "c·σ_j per channel (the BD-rate anchor)",
    "fisher": "THEORY.md T7: Δ_j ∝ 1/√F_jj (one step in the whitened KLT domain)",
    "learned": "T7's start, learned end to end (rdgap.codecs.quantizers.learned_steps)",
}
#: Entropy models (``codecs/entropy_models/``).
ENTROPY_MODELS = {
    "gaussian": "discretised Gaussian per channel (factorized)",
    "laplace": "discretised Laplace per channel (factorized)",
    "deep-factorized": "learned deep factorized density per channel, integer tables",
    "context": "causal context + per-token scale hyperprior (closed form)",
    "context-tokens": "context + the current token's embedding; ids coded in the stream",
    "context-tokens-table": "context-tokens + a per-token-id residual table (fit windows)",
    "hyperprior": "context + a learned scale hyperprior with integer hyper-synthesis",
}

#: Where each transform fits itself from cached hidden states: ``"module:function"``,
#: ``fit(context, name) -> transform`` (None: nothing to fit).
TRANSFORM_FITS = {
    "identity": None,
    "fisher-klt": "rdgap.codecs.transforms.klt:fit",
}
#: Where each entropy model fits itself from cached hidden states: ``"module:function"``,
#: ``fit_model(start, context, input_ids=None, **options) -> ModelFit``
#: (:mod:`rdgap.codecs.entropy_models.model_fit`), called by the one fit pipeline,
#: :func:`rdgap.codecs.fit.fit_codec`.
ENTROPY_MODEL_FITS = {
    "gaussian": "rdgap.codecs.entropy_models.factorized:fit_model",
    "laplace": "rdgap.codecs.entropy_models.factorized:fit_model",
    "deep-factorized": "rdgap.codecs.entropy_models.deep_factorized:fit_model",
    "context": "rdgap.codecs.entropy_models.context_fit:fit_model",
    "context-tokens": "rdgap.codecs.entropy_models.token_fit:fit_model",
    "context-tokens-table": "rdgap.codecs.entropy_models.token_table:fit_model",
    "hyperprior": "rdgap.codecs.entropy_models.hyperprior_fit:fit_model",
}

#: The default rate cap of :meth:`Recipe.fit`: this multiple of the fitted rate (issue 14;
#: see docs/codec.md, "A rate cap on every recipe").
DEFAULT_CAP = 2.0


def _resolve(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def transform_fit(name: str):
    """The function that fits the transform ``name`` (:data:`TRANSFORM_FITS`), or None."""
    if name not in TRANSFORM_FITS:
        raise ValueError(f"transform: no fit known for {name!r}; expected one of "
                         f"{sorted(TRANSFORM_FITS)} (add it to TRANSFORM_FITS)")
    path = TRANSFORM_FITS[name]
    return None if path is None else _resolve(path)


def entropy_model_fit(name: str):
    """The ``fit_model`` of the entropy model ``name`` (:data:`ENTROPY_MODEL_FITS`)."""
    if name not in ENTROPY_MODEL_FITS:
        raise ValueError(f"entropy_model: no fit_model known for {name!r}; expected one of "
                         f"{sorted(ENTROPY_MODEL_FITS)} (add its module:function to "
                         f"ENTROPY_MODEL_FITS, or give the recipe its own fitter)")
    return _resolve(ENTROPY_MODEL_FITS[name])


@dataclass(frozen=True)
class Recipe:
    """A named composition of parts and the function that fits it.

    Attributes
    ----------
    name : str
        The variant's name (``--variants`` of ``rdgap validate`` and the benchmark).
    transform, quantizer, steps, entropy_model : str
        Keys of :data:`TRANSFORMS`, :data:`QUANTIZERS`, :data:`STEP_RULES`,
        :data:`ENTROPY_MODELS`.
    fitter : str
        ``"module:function"`` with the signature
        ``fitter(context, input_ids, level, method="fit", margin=0.0, **options)``
        returning a :class:`rdgap.codecs.fit.FittedCodec`; resolved on first use,
        so that importing the registry imports no codec. :data:`GENERIC_FITTER` (most
        recipes): the one fit pipeline, in which the transform
        (:data:`TRANSFORM_FITS`) and the entropy model (:data:`ENTROPY_MODEL_FITS`) fit
        themselves; others wrap a recipe (learned steps, window control).
    codec : str
        ``"module:Class"`` of the fitted codec (its ``load`` reads a saved folder).
    saved_kind : str or None
        The ``rdgap_codec`` field its ``save`` writes in ``config.json``.
    in_validate : bool
        Accepted by ``rdgap validate --variants``.
    learnable_steps : bool
        Its steps can be learned end to end (:mod:`rdgap.codecs.quantizers.learned_steps`).
    parent : str or None
        The recipe it varies (docs' "refines" column): its transform, with another
        entropy model, other steps (learned, or a per-window factor) or another encoder
        decision (RDOQ) — not necessarily the same reconstruction.
    torch_coder : bool
        Coded by the torch rANS backend too (:mod:`rdgap.codecs.coders`).
    needs_token_ids : bool
        Its fitter takes the fit windows' token ids and its codec codes each window's
        ids in the stream: ``rdgap validate`` passes them, and skips the recipe where
        the receiver holds no token-embedding table
        (:func:`rdgap.validation.tasks.token_variant_refusal`).
    """

    name: str
    transform: str
    quantizer: str
    steps: str
    entropy_model: str
    fitter: str
    codec: str
    saved_kind: str | None = None
    in_validate: bool = False
    learnable_steps: bool = False
    parent: str | None = None
    torch_coder: bool = False
    options: dict = field(default_factory=dict)
    needs_token_ids: bool = False

    def __post_init__(self):
        for value, known, what in ((self.transform, TRANSFORMS, "transform"),
                                   (self.quantizer, QUANTIZERS, "quantizer"),
                                   (self.steps, STEP_RULES, "steps"),
                                   (self.entropy_model, ENTROPY_MODELS, "entropy_model")):
            if value not in known:
                raise ValueError(f"{what}: expected one of {sorted(known)}, got {value!r} "
                                 f"(recipe {self.name!r})")

    def fit(self, context, input_ids, level: float, method: str = "fit",
            margin: float = 0.0, cap: float | None = DEFAULT_CAP,
            shift_guard: str | None = None, **options):
        """Fit and calibrate this recipe at ΔCE ``level`` (see :attr:`fitter`).

        ``cap`` (default :data:`DEFAULT_CAP`): the rate cap ``B_cap`` as a multiple of
        the fitted rate (mean real bits/token on the fit probe windows); the fitted codec
        is then a :class:`~rdgap.codecs.quantizers.rate_cap.RateCappedCodec` of the
        recipe's codec, whose every stream is at most ``B_cap`` bits/token (THEORY.md
        T8). ``cap=None`` fits the recipe's codec as it is. The window-controlled
        recipes carry their own cap (``cap_multiple``); recipes whose codec cannot be
        rescaled (``klt-context-tokens``) are not capped. :attr:`FittedCodec.rate_cap
        <rdgap.codecs.fit.FittedCodec.rate_cap>` says which, in words.

        ``shift_guard`` (default None: no guard): the name of a fallback recipe (e.g.
        ``"gaussian-fisher"``, which holds its level on text the fit never saw); the
        result is then this recipe's codec and the fallback's, both fitted at ``level``
        under ``cap``, behind a detector fitted on the fit windows
        (:func:`rdgap.codecs.quantizers.shift_guard_fit.fit_guarded`, variant
        ``name + "-sg"``; ``options`` may set its ``quiet_fraction``, ``quantile`` and
        ``slack``; issue 19, docs/domain-shift.md "A shift guard").
        """
        if shift_guard is not None:
            from .quantizers.shift_guard_fit import fit_guarded

            return fit_guarded(context, input_ids, level, method=method, margin=margin,
                               primary=self.name, fallback=shift_guard, cap=cap, **options)
        if self.fitter == GENERIC_FITTER:  # fit_codec fits the recipe by its name
            options = {"variant": self.name, **options}
        fitted = _resolve(self.fitter)(context, input_ids, level, method=method,
                                       margin=margin, **{**self.options, **options})
        from .quantizers.rate_cap import apply_cap

        return apply_cap(fitted, context, cap, own_cap=self.quantizer == "window-controlled")

    @property
    def codec_class(self):
        return _resolve(self.codec)


#: The fitter of the recipes fitted by name (:func:`rdgap.codecs.fit.fit_codec`).
GENERIC_FITTER = _FIT = "rdgap.codecs.fit:fit_recipe"
_FACTORIZED = "rdgap.codecs.entropy_models.factorized:FactorizedCodec"
_CONTEXT = "rdgap.codecs.entropy_models.context:ContextCodec"
_WC_FIT = "rdgap.codecs.quantizers.window_control_fit:fit_controlled"
_WC = "rdgap.codecs.quantizers.window_control:WindowControlledCodec"
#: The rate-capped wrapper every capped recipe's codec is saved as.
_CAPPED, CAPPED_KIND = "rdgap.codecs.quantizers.rate_cap:RateCappedCodec", "rate-capped"
#: The shift guard of any two fitted codecs (issue 19; docs/domain-shift.md).
_GUARDED, GUARDED_KIND = "rdgap.codecs.quantizers.shift_guard:ShiftGuardedCodec", "shift-guarded"

#: The RDOQ weight ``c`` of the ``-rdoq`` recipes (``λ = c·Δ²``, squared steps per bit):
#: chosen by measurement (benchmarks/rdoq_sweep.py, docs/codec.md "RDOQ").
RDOQ_WEIGHT = 0.12

#: Generated windows (``klt-context-tokens-table-gen``) that join the statistics windows
#: as the token table's fit text (docs/benchmarks.md, "The id table with more fit text").
GENERATED_FIT_WINDOWS = 48

#: Every variant, in the order the benchmark and ``rdgap validate`` list them.
RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("gaussian-std", "identity", "uniform", "std", "gaussian", _FIT, _FACTORIZED,
           "factorized", in_validate=True, torch_coder=True),
    Recipe("gaussian-fisher", "identity", "uniform", "fisher", "gaussian", _FIT, _FACTORIZED,
           "factorized", in_validate=True, torch_coder=True),
    Recipe("laplace-fisher", "identity", "uniform", "fisher", "laplace", _FIT, _FACTORIZED,
           "factorized", in_validate=True, torch_coder=True),
    Recipe("klt-laplace", "fisher-klt", "uniform", "fisher", "laplace", _FIT, _FACTORIZED,
           "factorized", in_validate=True, learnable_steps=True, torch_coder=True),
    Recipe("klt-context", "fisher-klt", "deadzone-centroid", "fisher", "context", _FIT,
           _CONTEXT, "context", in_validate=True, learnable_steps=True, torch_coder=True),
    Recipe("klt-context-tokens", "fisher-klt", "deadzone-centroid", "fisher",
           "context-tokens", _FIT,
           "rdgap.codecs.entropy_models.token_context:TokenContextCodec", "context-tokens",
           in_validate=True, parent="klt-context", torch_coder=True, needs_token_ids=True),
    # + T[x_t], the ridge's mean residual per token id on the fit windows (issue 20)
    Recipe("klt-context-tokens-table", "fisher-klt", "deadzone-centroid", "fisher",
           "context-tokens-table", _FIT,
           "rdgap.codecs.entropy_models.token_table:TokenTableCodec", "context-tokens-table",
           parent="klt-context-tokens", torch_coder=True, needs_token_ids=True),
    # the same, its ridge, table and scales fitted also on windows the model writes from
    # the statistics windows' prompts (generated_text.py; the probe stays held out)
    Recipe("klt-context-tokens-table-gen", "fisher-klt", "deadzone-centroid", "fisher",
           "context-tokens-table", _FIT,
           "rdgap.codecs.entropy_models.token_table:TokenTableCodec", "context-tokens-table",
           parent="klt-context-tokens-table", torch_coder=True, needs_token_ids=True,
           options={"generated": GENERATED_FIT_WINDOWS}),
    Recipe("klt-context-learned", "fisher-klt", "deadzone-centroid", "learned", "context",
           "rdgap.codecs.quantizers.learned_steps:fit_learned_codec", _CONTEXT, "context",
           parent="klt-context", torch_coder=True),
    Recipe("klt-hyperprior", "fisher-klt", "deadzone-centroid", "fisher", "hyperprior", _FIT,
           "rdgap.codecs.entropy_models.hyperprior:HyperpriorCodec", "hyperprior",
           parent="klt-context", torch_coder=True),
    Recipe("klt-deep", "fisher-klt", "uniform", "fisher", "deep-factorized", _FIT,
           "rdgap.codecs.entropy_models.deep_factorized:DeepFactorizedCodec", "deep-factorized",
           parent="klt-laplace", torch_coder=True),
    # RDOQ: the parent's stream format and decoder; the encoder writes the levels that
    # minimise D + λ·R with λ = c·Δ² (c measured: docs/codec.md, "RDOQ").
    Recipe("klt-laplace-rdoq", "fisher-klt", "rdoq", "fisher", "laplace", _FIT, _FACTORIZED,
           "factorized", parent="klt-laplace", torch_coder=True,
           options={"rdoq": RDOQ_WEIGHT}),
    Recipe("klt-context-rdoq", "fisher-klt", "deadzone-rdo", "fisher", "context", _FIT,
           _CONTEXT, "context", parent="klt-context", torch_coder=True,
           options={"rdo": RDOQ_WEIGHT}),
    # Window-controlled variants: the parent fitted as above, then a per-window step factor
    # chosen by the encoder (THEORY.md T11) under a rate cap (issue 14 item 1).
    Recipe("klt-context-wc", "fisher-klt", "window-controlled", "fisher", "context", _WC_FIT,
           _WC, "window-controlled", in_validate=True, parent="klt-context",
           torch_coder=True, options={"base": "klt-context", "variant": "klt-context-wc"}),
    Recipe("klt-laplace-wc", "fisher-klt", "window-controlled", "fisher", "laplace", _WC_FIT,
           _WC, "window-controlled", parent="klt-laplace",
           torch_coder=True, options={"base": "klt-laplace", "variant": "klt-laplace-wc"}),
    Recipe("gaussian-fisher-wc", "identity", "window-controlled", "fisher", "gaussian", _WC_FIT,
           _WC, "window-controlled", parent="gaussian-fisher",
           torch_coder=True,
           options={"base": "gaussian-fisher", "variant": "gaussian-fisher-wc"}),
)}

#: Old names kept for one release: name → recipe name.
ALIASES: dict[str, str] = {}


def register(new: Recipe) -> Recipe:
    """Add a recipe at run time (a plugin, or a docs example; rdgap's own recipes are the
    lines of :data:`RECIPES`). Its entropy model must be a key of :data:`ENTROPY_MODELS`
    (add a description there first for a new one).

    Raises
    ------
    ValueError
        If a recipe of that name exists.
    """
    if new.name in RECIPES or new.name in ALIASES:
        raise ValueError(f"recipe: a variant called {new.name!r} exists already")
    RECIPES[new.name] = new
    return new


def recipe(name: str) -> Recipe:
    """The recipe called ``name`` (or an alias of it)."""
    name = ALIASES.get(name, name)
    if name not in RECIPES:
        raise ValueError(f"variant: expected one of {list(RECIPES)}, got {name!r}")
    return RECIPES[name]


def names(**where) -> tuple[str, ...]:
    """Recipe names whose attributes equal ``where``, e.g. ``names(in_validate=True)``.

    >>> names(learnable_steps=True)
    ('klt-laplace', 'klt-context')
    """
    return tuple(n for n, r in RECIPES.items()
                 if all(getattr(r, key) == value for key, value in where.items()))


def fit(name: str, context, input_ids, level: float, method: str = "fit",
        margin: float = 0.0, **options):
    """Fit the recipe called ``name``: ``recipe(name).fit(...)``."""
    return recipe(name).fit(context, input_ids, level, method=method, margin=margin,
                            **options)


def load_codec(folder: str | Path, **options):
    """A codec of any recipe saved with its ``save(folder)``, by the kind in its config.

    Raises
    ------
    FileNotFoundError
        Without ``config.json`` in ``folder``.
    ValueError
        For a kind no recipe saves.
    """
    import json

    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"folder: expected config.json in {folder} (written by a "
                                f"codec's save)")
    kind = json.loads(config_path.read_text()).get("rdgap_codec")
    if kind == CAPPED_KIND:  # any recipe's codec under a rate cap (Recipe.fit's default)
        return _resolve(_CAPPED).load(folder, **options)
    if kind == GUARDED_KIND:  # a primary and a fallback codec behind a shift detector
        return _resolve(_GUARDED).load(folder, **options)
    for r in RECIPES.values():
        if r.saved_kind == kind:
            return r.codec_class.load(folder, **options)
    kinds = sorted({r.saved_kind for r in RECIPES.values() if r.saved_kind}
                   | {CAPPED_KIND, GUARDED_KIND})
    raise ValueError(f"folder: {folder} holds codec kind {kind!r}; expected one of {kinds}")
