"""``klt-context-tokens`` in ``rdgap validate``: accepted (never a default) where the
receiver holds the token-embedding table, fitted with the fit windows' ids, coded with
each evaluation window's ids (its rate counts them), skipped with a reason elsewhere."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rdgap.codecs.fit import FitContext
from rdgap.split import SplitModel
from rdgap.codecs.entropy_models.token_fit import fit_token_codec
from rdgap.validation import architecture, statistics
from rdgap.validation.models import LoadedModel, tiny_llama
from rdgap.validation.coding import CodedCodec, code_windows
from rdgap.validation.runner import ValidateConfig, run_validation
from rdgap.validation.tasks import CausalLMTask, token_variant_refusal

VARIANT = "klt-context-tokens"


def _config(folder, cache, **overrides) -> ValidateConfig:
    settings = {"architectures": (str(folder),), "splits": [2], "windows": 3,
                "window_length": 64, "fit_windows": 8, "variants": (VARIANT,),
                "levels": (0.2,), "cache_dir": str(cache), "jacobian_positions": 8}
    return ValidateConfig(**(settings | overrides))


def test_validate_fits_and_codes_the_token_variant(tiny_model_folder, tmp_path):
    """Through run_validation: one job, its row rated with the ids in the stream (T2 holds
    on every stream), its T9 fit rate computed with the fit windows' ids, and its worst
    case B counting one coded id per token."""
    result = run_validation(_config(tiny_model_folder, tmp_path / "c"), progress=False)
    assert [job for job in result["jobs"] if VARIANT in job] == [
        f"{tiny_model_folder.name}/split=2/{VARIANT}/level=0.2"]
    (row,) = [r for r in result["runs"] if r["codec"] == VARIANT]
    assert row["level"] == "dce<=0.2" and row["t2_violations"] == 0
    assert row["bits_per_token_estimated"] is not None
    payload = row["bits_per_token_actual"] - row["container_bits_per_token"]
    assert payload <= 1.01 * row["bits_per_token_estimated"] + 64 / 64
    assert row["fit_delta_ce_nats"] <= 0.2
    statistics = row["statistics"]
    assert statistics["t9_fit_rate"] is not None and statistics["t9_fit_rate"] > 0
    assert statistics["rate_interval_bound_parts"]["token_ids"] > 0
    assert result["architectures"][0]["skipped_variants"] == {}


def test_coding_passes_each_windows_ids_and_counts_them(tiny_model):
    split = SplitModel(tiny_model, 2)
    ids = torch.randint(3, 128, (8, 96), generator=torch.Generator().manual_seed(7))
    hidden = split.prefix(ids)
    context = FitContext.build(split, ids, hidden, statistics_windows=4)
    fitted = fit_token_codec(context, ids[:4], 0.05)
    coded = CodedCodec(fitted.codec, VARIANT)
    recon = code_windows(coded, hidden[4:], ids[4:])
    for w in range(4):
        data = fitted.codec.encode(hidden[4 + w], input_ids=ids[4 + w])
        back, back_ids = fitted.codec.decode_with_ids(data)
        assert coded.window_bits[w] == 8 * len(data)  # the stream holds the ids
        assert torch.equal(back_ids, ids[4 + w]) and torch.equal(recon[w], back)
        assert coded.window_estimates[w] > fitted.codec.id_bits(ids[4 + w]) > 0
    with pytest.raises(ValueError, match="input_ids"):
        code_windows(CodedCodec(fitted.codec, VARIANT), hidden[4:])
    # T9's fit rate: each fit window rated with its own ids; ids of other windows refused
    found = statistics.codec_statistics(
        fitted.codec, hidden[:4], hidden[4:], np.asarray(coded.window_bits), np.arange(4),
        fit_input_ids=ids[:4])
    expected = np.mean([fitted.codec.estimate_bits(hidden[w], input_ids=ids[w])
                        for w in range(4)]) / hidden.shape[1]
    assert found["t9_fit_rate"] == pytest.approx(expected, rel=1e-12)
    for wrong in (ids[:3], ids[:4, :50]):
        with pytest.raises(ValueError, match="^fit_input_ids:"):
            statistics.codec_statistics(fitted.codec, hidden[:4], hidden[4:],
                                        np.asarray(coded.window_bits), np.arange(4),
                                        fit_input_ids=wrong)


def test_which_architectures_can_run_it():
    assert token_variant_refusal(CausalLMTask(LoadedModel(tiny_llama(num_layers=3), None,
                                                          "tied"))) is None
    untied = tiny_llama(num_layers=3)
    untied.lm_head.weight = torch.nn.Parameter(untied.lm_head.weight.detach().clone())
    reason = token_variant_refusal(CausalLMTask(LoadedModel(untied, None, "untied")))
    assert VARIANT in reason and "untied" in reason and "tie" in reason
    vit = SimpleNamespace(name="digits-vit", model_type="vit", task="image classification")
    assert "no token ids" in token_variant_refusal(vit) and "digits-vit" in \
        token_variant_refusal(vit)
    encoder = SimpleNamespace(name="all-minilm-l6-v2", model_type="bert",
                              task="sentence embedding")
    assert "all-minilm-l6-v2" in token_variant_refusal(encoder)
    ValidateConfig(variants=(VARIANT,)).check()  # accepted, though not a default
    assert VARIANT not in ValidateConfig().variants
    with pytest.raises(ValueError, match="variants"):
        ValidateConfig(variants=("klt-context-token",)).check()


def test_an_architecture_that_cannot_run_it_skips_it_and_says_why(tiny_model_folder, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(architecture, "token_variant_refusal",
                        lambda task, variant: f"{variant}: no table")
    result = run_validation(_config(tiny_model_folder, tmp_path / "c", windows=2,
                                    window_length=16, fit_windows=4, splits=[1]),
                            progress=False)
    assert not any(VARIANT in job for job in result["jobs"])
    assert result["runs"] and not any(r["codec"] == VARIANT for r in result["runs"])
    assert result["architectures"][0]["skipped_variants"] == {VARIANT: f"{VARIANT}: no table"}


def test_the_recipes_that_need_token_ids_are_those_whose_codec_codes_them():
    """validate passes token ids to a recipe, and skips it where the receiver has no
    embedding table, by ``Recipe.needs_token_ids``: it must say what the codec does."""
    from rdgap.codecs import recipes

    for name, recipe in recipes.RECIPES.items():
        codes_ids = bool(getattr(recipe.codec_class, "needs_input_ids", False))
        assert recipe.needs_token_ids == codes_ids, name
    assert recipes.names(needs_token_ids=True) == (VARIANT, "klt-context-tokens-table",
                                                   "klt-context-tokens-table-gen")
