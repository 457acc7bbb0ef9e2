"""benchmarks/early_splits.py: the quantities it adds to codec_bench rows.

Each check could fail: the id cost must be the fitted codec's own ``id_bits`` (a law
fitted on the evaluation ids, or a uniform one, is caught), the parameter count must be
the size of the fitted codecs' predictor arrays (a missing ``V``, table or table ids
is caught), the prefix count must be the model's parameters before the split, and the
two-s.e. criterion and CPU ratio must follow the row.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rdgap.codecs.entropy_models.context_fit import fit_context_codec
from rdgap.codecs.entropy_models.token_table import fit_token_table_codec

import tiny_architectures

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


early = _load("early_splits", ROOT / "benchmarks" / "early_splits.py")
tokens = _load("_early_token_context", ROOT / "tests" / "codecs" / "test_token_context.py")


@pytest.fixture(scope="module")
def fitted():
    """A klt-context-tokens-table codec, a klt-context codec, their fit ids and embedding."""
    fit, ids, embedding = tokens.embedded_tokens(12, 64, seed=0)
    arguments = tokens._arguments(fit, 0.5)
    return (fit_token_table_codec(fit, ids, embedding, *arguments),
            fit_context_codec(fit, *arguments), ids.numpy(), embedding)


def test_id_bits_are_the_codecs_own_id_cost(fitted):
    table, _, ids, _ = fitted
    _, held, _ = tokens.embedded_tokens(5, 64, seed=3)
    own = sum(table.id_bits(window) for window in held) / held.numel()
    measured = early.id_bits_per_token(ids, held.numpy(), tokens.VOCABULARY)
    assert measured == pytest.approx(own, rel=1e-6)
    # a law fitted on the evaluation ids themselves would cost fewer bits: not the codec's
    assert early.id_bits_per_token(held.numpy(), held.numpy(), tokens.VOCABULARY) < 0.99 * own
    with pytest.raises(ValueError, match="evaluation_ids"):
        early.id_bits_per_token(ids, np.array([tokens.VOCABULARY]), tokens.VOCABULARY)


def test_predictor_parameters_are_the_fitted_predictor_arrays(fitted):
    table, context, ids, embedding = fitted
    channels, width = tokens.CHANNELS, embedding.shape[1]
    count = early.predictor_parameters("klt-context-tokens-table", channels, width, ids)
    assert count["total"] == (table.predictor.size + table.bias.size
                              + table.token_weights.size + table.table_rows.size
                              + table.table_ids.size)
    assert count["T"] == table.table_rows.size + table.table_ids.size
    plain = early.predictor_parameters("klt-context-tokens", channels, width, ids)
    assert plain["total"] == table.predictor.size + table.bias.size + table.token_weights.size
    assert early.predictor_parameters("klt-context", channels, width, ids)["total"] == \
        context.predictor.size + context.bias.size
    assert early.predictor_parameters("gaussian-fisher", channels, width, ids)["total"] == 0
    with pytest.raises(ValueError, match="recipe"):
        early.predictor_parameters("klt-laplace", channels, width, ids)


def test_prefix_parameters_are_the_embedding_and_the_first_layers():
    model = tiny_architectures.build("llama")
    counted = {id(p) for p in model.parameters()}
    after = [p for layer in model.model.layers[2:] for p in layer.parameters()]
    after += list(model.model.norm.parameters())
    after += [p for p in model.lm_head.parameters()
              if p is not model.model.embed_tokens.weight]
    total = sum(p.numel() for p in model.parameters() if id(p) in counted)
    prefix = early.prefix_parameters(model, 2)
    assert prefix["total"] == total - sum(p.numel() for p in after)
    assert prefix["embedding"] == model.model.embed_tokens.weight.numel()
    assert early.prefix_parameters(model, 3)["layers"] > prefix["layers"]
    with pytest.raises(ValueError, match="split"):
        early.prefix_parameters(model, tiny_architectures.LAYERS + 1)


def _row(codec: str, bits: float, dce: float, se: float, split: int = 4) -> dict:
    return {"split": split, "codec": codec, "level": "dce<=0.05",
            "bits_per_token_actual": bits, "delta_ce_nats": dce, "delta_ce_nats_stderr": se,
            "kl_nats": 0.08, "top1_agreement": 0.9, "encode_s": 1.0, "decode_s": 0.5,
            "prefix_forward_s": 3.0, "statistics_windows": 22, "tokens": 8192,
            "t2_violations": 0}


def test_annotate_applies_the_two_se_criterion_and_the_id_split():
    predictor, prefix = {"total": 10}, {"total": 1000, "layers": 100}
    inside = early.annotate(_row("klt-context-tokens", 500.0, 0.04, 0.0049), 11.0,
                            predictor, prefix)
    assert inside["meets_two_se"] and inside["body_bits_per_token"] == pytest.approx(489.0)
    assert inside["codec_cpu_ratio"] == pytest.approx(0.5)
    assert inside["predictor_fraction_of_prefix_layers"] == pytest.approx(0.1)
    outside = early.annotate(_row("klt-context", 500.0, 0.04, 0.0051), 11.0, predictor,
                             prefix)
    assert not outside["meets_two_se"] and outside["id_bits_per_token"] == 0.0
    assert outside["level"] == 0.05


def test_plot_writes_a_figure(tmp_path):
    rows = [early.annotate(_row(codec, bits, 0.045, 0.003, split), 11.0, {"total": 1},
                           {"total": 10, "layers": 5})
            for split in (2, 4) for codec, bits in (("klt-context", 800.0),
                                                    ("klt-context-tokens", 600.0))]
    path = tmp_path / "early.png"
    early.plot(rows, 0.05, path)
    assert path.stat().st_size > 10_000
