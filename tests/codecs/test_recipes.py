"""The one registry of variants (rdgap.codecs.recipes): every consumer reads it, every
recipe fits, passes rdgap.testing's properties, and saves / loads by its kind."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from rdgap.codecs import recipes
from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
from rdgap.codecs.recipes import RECIPES, Recipe, load_codec, recipe

ROOT = Path(__file__).resolve().parents[2]


def _benchmark(module: str):
    """A script of benchmarks/ imported as a module."""
    import importlib

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.pop(0)


def test_every_consumer_reads_the_registry():
    from rdgap.codecs.fit import KLT_VARIANTS, PIPELINE_VARIANTS, VARIANTS
    from rdgap.codecs.quantizers.learned_steps import BASE_VARIANTS
    from rdgap.validation.runner import FITTED_VARIANTS

    FITTERS = _benchmark("codec_bench").FITTERS
    assert set(FITTERS) == set(RECIPES)
    assert PIPELINE_VARIANTS == recipes.names(fitter=recipes.GENERIC_FITTER)
    assert VARIANTS == recipes.names(fitter=recipes.GENERIC_FITTER, parent=None)
    # one pipeline fits every recipe that wraps no other (learned steps, window control)
    assert set(PIPELINE_VARIANTS) == {n for n, r in RECIPES.items()
                                      if r.steps != "learned"
                                      and r.quantizer != "window-controlled"}
    assert set(KLT_VARIANTS) == {n for n in VARIANTS if RECIPES[n].transform == "fisher-klt"}
    assert set(FITTED_VARIANTS) == {n for n, r in RECIPES.items() if r.in_validate}
    assert BASE_VARIANTS == tuple(n for n, r in RECIPES.items() if r.learnable_steps)
    # the old names of the four places are all still there
    assert {"gaussian-std", "gaussian-fisher", "laplace-fisher", "klt-laplace",
            "klt-context"} == set(VARIANTS)
    assert {"klt-context-tokens", "klt-context-learned", "klt-hyperprior",
            "klt-deep"} <= set(FITTERS)


def test_every_recipe_names_parts_and_resolves():
    for name, r in RECIPES.items():
        assert r.name == name
        assert callable(r.codec_class.load)
        assert r.parent is None or r.parent in RECIPES
    with pytest.raises(ValueError, match="entropy_model: expected one of"):
        Recipe("bad", "identity", "uniform", "std", "no-such-model", recipes.GENERIC_FITTER,
               "rdgap.codecs.entropy_models.factorized:FactorizedCodec")
    with pytest.raises(ValueError, match="variant: expected one of"):
        recipe("no-such-variant")


def test_every_part_of_a_pipeline_recipe_knows_how_to_fit_itself():
    """Each transform and entropy model of the recipes fitted by the one pipeline names
    the function that fits it; an entropy model without one is refused by name."""
    from rdgap.codecs.fit import PIPELINE_VARIANTS

    for name in PIPELINE_VARIANTS:
        r = RECIPES[name]
        transform = recipes.transform_fit(r.transform)
        assert transform is None if r.transform == "identity" else callable(transform), name
        assert callable(recipes.entropy_model_fit(r.entropy_model)), name
    with pytest.raises(ValueError, match="ENTROPY_MODEL_FITS"):
        recipes.entropy_model_fit("no-such-model")
    with pytest.raises(ValueError, match="TRANSFORM_FITS"):
        recipes.transform_fit("no-such-transform")


@pytest.mark.parametrize("name", ["laplace-fisher", "klt-context", "klt-hyperprior"])
def test_the_pipeline_fits_each_entropy_model_through_the_registry(name, monkeypatch):
    """Recipe.fit → fit_codec → the entropy model's registered ``fit_model``, with T7's
    start and the recipe's options: a stand-in registered for the model is the one called
    (the defect this catches: a fitter that bypasses the part, as the per-variant fitters
    did before issue 16)."""
    import torch
    from rdgap.codecs.fit import FitContext

    golden = _benchmark("golden_streams")
    split, fit_ids, fit_hidden, _, _ = golden.tiny_input()
    context = FitContext.build(split, fit_ids, fit_hidden, statistics_windows=6)
    seen = []

    class Called(Exception):
        pass

    def stand_in(start, context, input_ids=None, **options):
        seen.append((start, input_ids, options))
        raise Called

    monkeypatch.setitem(recipes.ENTROPY_MODEL_FITS, RECIPES[name].entropy_model,
                        f"{__name__}:_STAND_IN")
    monkeypatch.setitem(globals(), "_STAND_IN", stand_in)
    with pytest.raises(Called):
        recipe(name).fit(context, fit_ids[:6], 1e-3, cap=None, probe_option=1)
    (start, input_ids, options), = seen
    assert start.variant == name and start.scale > 0 and options == {"probe_option": 1}
    assert torch.equal(input_ids, fit_ids[:6])
    assert (start.transform is None) == (RECIPES[name].transform == "identity")


@pytest.fixture(scope="module")
def fitted():
    """Every recipe fitted on the golden-streams tiny input (small training budgets)."""
    import torch
    from rdgap.codecs.fit import FitContext

    golden = _benchmark("golden_streams")
    split, fit_ids, fit_hidden, eval_ids, eval_hidden = golden.tiny_input()
    out = {}
    for name, r in RECIPES.items():
        torch.manual_seed(0)
        context = FitContext.build(split, fit_ids, fit_hidden, statistics_windows=6)
        out[name] = r.fit(context, fit_ids[:6], golden.LEVEL, **golden.TRAINING.get(name, {}))
    return out, eval_hidden, eval_ids


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_saves_and_loads_by_its_kind(fitted, name, tmp_path):
    codecs, eval_hidden, eval_ids = fitted
    codec = codecs[name].codec
    assert codecs[name].variant == name
    if isinstance(codec, RateCappedCodec):  # Recipe.fit's default rate cap
        assert codecs[name].uncapped is codec.base
        codec_of_recipe = codec.base
    else:
        codec_of_recipe = codec
    assert isinstance(codec_of_recipe, recipe(name).codec_class)
    codec.save(tmp_path / name)
    tokens = getattr(codec, "needs_input_ids", False)
    # a token-context codec loads only with the embedding table it was fitted with
    loaded = load_codec(tmp_path / name, **({"embedding": codec.embedding} if tokens else {}))
    assert type(loaded) is type(codec) and loaded.digest == codec.digest
    kwargs = {"input_ids": eval_ids[0]} if tokens else {}
    assert loaded.encode(eval_hidden[0], **kwargs) == codec.encode(eval_hidden[0], **kwargs)


@pytest.mark.parametrize("name", [n for n, r in RECIPES.items()
                                  if not r.needs_token_ids])
def test_every_recipe_passes_the_property_suite(fitted, name):
    """(The token-id recipes take ids at the encoder; test_token_context.py and
    test_token_table.py adapt them.)"""
    from rdgap.testing import check_codec

    report = check_codec(fitted[0][name].codec, max_examples=4, streams=8)
    assert {"round-trip", "determinism", "robustness", "T2-upper"} <= set(report.checked)


def test_load_codec_refuses_a_kind_no_recipe_saves(tmp_path):
    (tmp_path / "config.json").write_text('{"rdgap_codec": "nonsense"}')
    with pytest.raises(ValueError, match="holds codec kind 'nonsense'"):
        load_codec(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_codec(tmp_path / "missing")


def test_steps_of_the_parent_recipe_are_shared():
    """Refinements keep their parent's transform and step rule (same reconstruction)."""
    for r in RECIPES.values():
        if r.parent and r.steps != "learned":
            parent = RECIPES[r.parent]
            assert (r.transform, r.steps) == (parent.transform, parent.steps), r.name
    assert np.all([RECIPES[n].torch_coder for n in ("klt-context", "klt-laplace")])


def test_register_adds_a_recipe_and_refuses_a_taken_name():
    new = Recipe("tmp-test-recipe", "identity", "uniform", "fisher", "laplace",
                 recipes.GENERIC_FITTER, "rdgap.codecs.entropy_models.factorized:FactorizedCodec")
    try:
        assert recipes.register(new) is recipe("tmp-test-recipe")
        with pytest.raises(ValueError, match="exists already"):
            recipes.register(new)
    finally:
        RECIPES.pop("tmp-test-recipe", None)


@pytest.mark.parametrize("name", list(RECIPES))
def test_the_torch_coder_flag_is_true(fitted, name):
    """A recipe flagged ``torch_coder`` round-trips on the torch rANS coder; one that is not
    flagged is refused with an error naming the codec."""
    import torch
    from rdgap.codecs.coders.backend import torch_codec

    codecs, eval_hidden, eval_ids = fitted
    # the recipe's own format (the torch coder of the rate-capped format, Recipe.fit's
    # default, is tested in tests/codecs/test_torch_window.py)
    codec = codecs[name].uncapped or codecs[name].codec
    if not recipe(name).torch_coder:
        with pytest.raises(ValueError, match=type(codec).__name__):
            torch_codec(codec)
        return
    coder = torch_codec(codec, lanes=4)
    tokens = getattr(codec, "needs_input_ids", False)
    stream = coder.encode(eval_hidden[0], eval_ids[0]) if tokens else coder.encode(eval_hidden[0])
    kwargs = {"input_ids": eval_ids[0]} if tokens else {}
    expected = codec.reconstruct(eval_hidden[0], **kwargs)
    # the CPU rounding of the joint models' float prediction: equal on one machine
    assert torch.equal(coder.decode(stream), expected)
