"""The per-token-id residual table (klt-context-tokens-table): exact round trips on both
coders, fewer bits than klt-context-tokens where each id carries its own offset, the
offset is the own id's row (causal), unseen ids get none, the table is in the hash,
save/load, and the property suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rdgap.codecs.coders.container import BitstreamError
from rdgap.codecs.coders.torch_context import TorchContextCodec
from rdgap.codecs.entropy_models.token_context import TokenContextCodec, fit_token_context_codec
from rdgap.codecs.entropy_models.token_table import (TokenTableCodec, fit_id_table,
                                                     fit_token_table_codec)
from rdgap.codecs.recipes import RECIPES, load_codec


def _sibling(name: str):
    """A test module of this folder (the suite imports in importlib mode: no package)."""
    spec = importlib.util.spec_from_file_location(f"_token_table_{name}",
                                                  Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_tokens = _sibling("test_token_context")
embedded_tokens, _arguments, VOCABULARY = (_tokens.embedded_tokens, _tokens._arguments,
                                           _tokens.VOCABULARY)
assert_reconstruction = _sibling("test_torch_context").assert_reconstruction

#: Magnitude of each id's own fixed offset in the constructed source.
ID_OFFSET = 3.0


def id_offset_source(windows: int, tokens: int, seed: int):
    """:func:`embedded_tokens` plus a fixed random vector per id (not linear in the
    8-wide embedding, so ``V e(x_t)`` cannot carry it; a per-id table can)."""
    hidden, ids, embedding = embedded_tokens(windows, tokens, seed)
    offsets = np.random.default_rng(99).normal(0, ID_OFFSET, (VOCABULARY, hidden.shape[-1]))
    hidden = hidden + torch.from_numpy(offsets[ids.numpy()]).float()
    return hidden, ids, embedding


@pytest.fixture(scope="module")
def codecs():
    """``(table codec, klt-context-tokens codec, embedding)`` fitted on the same windows
    at the same steps."""
    fit, ids, embedding = id_offset_source(24, 64, seed=0)
    arguments = _arguments(fit, 0.5)
    return (fit_token_table_codec(fit, ids, embedding, *arguments, groups=2),
            fit_token_context_codec(fit, ids, embedding, *arguments, groups=2), embedding)


def test_fit_id_table_is_the_shrunk_mean_of_each_ids_residual():
    residual = np.arange(12, dtype=float).reshape(1, 4, 3)
    ids = np.array([[9, 5, 7, 5, 2]])            # position 0 (id 9) has no residual
    table_ids, rows = fit_id_table(residual, ids, shrink=1.0)
    assert table_ids.tolist() == [2, 5, 7]
    assert np.allclose(rows[1], (residual[0, 0] + residual[0, 2]) / 3)  # n = 2: · 2/3
    assert np.allclose(rows[0], residual[0, 3] / 2)
    assert np.allclose(fit_id_table(residual, ids, shrink=0.0)[1][1],
                       (residual[0, 0] + residual[0, 2]) / 2)
    with pytest.raises(ValueError, match="ids"):
        fit_id_table(residual, ids[:, :-1])
    with pytest.raises(ValueError, match="shrink"):
        fit_id_table(residual, ids, shrink=-1.0)


def test_round_trip_is_exact_on_the_cpu_coder(codecs):
    codec = codecs[0]
    x, ids, _ = id_offset_source(3, 50, seed=7)
    for window, window_ids in zip(x, ids):
        data = codec.encode(window, input_ids=window_ids)
        hidden, decoded_ids = codec.decode_with_ids(data)
        assert torch.equal(hidden, codec.reconstruct(window, input_ids=window_ids))
        assert torch.equal(decoded_ids, window_ids)
        assert codec.encode(window, input_ids=window_ids) == data


def test_torch_coder_forms_the_same_offsets_and_decodes_alike(codecs):
    model = codecs[0]
    coder = TorchContextCodec(model, lanes=4)
    x, ids, _ = id_offset_source(3, 40, seed=3)
    q = coder.quantize(x, ids)
    for b in range(len(x)):
        first, result, _ = model._code(x[b], model.offsets(ids[b].numpy()))
        assert np.array_equal(q.symbols[b].numpy(), result.symbols[0])
        assert np.array_equal(q.side[b].numpy(), result.side[0])
    data = coder.encode_batch(x, ids)
    decoded, decoded_ids = coder.decode_batch_with_ids(data)
    assert torch.equal(decoded_ids, ids)
    for b in range(len(x)):
        cpu = model.decode(model.encode(x[b], input_ids=ids[b]))
        assert_reconstruction(decoded[b], cpu)


def test_the_table_lowers_the_bits_where_each_id_carries_an_offset(codecs):
    table, plain, _ = codecs
    x, ids, _ = id_offset_source(6, 64, seed=5)
    with_table = sum(table.estimate_bits(w, input_ids=i) for w, i in zip(x, ids))
    without = sum(plain.estimate_bits(w, input_ids=i) for w, i in zip(x, ids))
    assert with_table < 0.9 * without, (with_table, without)
    # the id bits are the same (same unigram law): the gain is the body's
    assert table.id_bits(ids[0]) == plain.id_bits(ids[0])


def test_the_offset_is_the_own_ids_row_and_causal(codecs):
    """offsets(ids) − V f_t = T[x_t] exactly (the own id, not x_{t±1}); changing ids
    after position t changes no offset up to t."""
    table, _, _ = codecs
    plain = TokenContextCodec(**{k: v for k, v in table._constructor_arguments().items()
                                 if k not in ("table_ids", "table_rows")})
    ids = torch.from_numpy(np.resize(table.table_ids, 40)).numpy()
    added = table.offsets(ids) - plain.offsets(ids)
    rows = table.table_rows[np.searchsorted(table.table_ids, ids[1:])]
    assert np.allclose(added, rows, rtol=0, atol=1e-12)
    # an id table read one token late or early would not be this
    assert not np.allclose(added, table.table_rows[np.searchsorted(table.table_ids, ids[:-1])])
    later = ids.copy()
    later[20:] = table.table_ids[0]
    assert np.array_equal(table.offsets(later)[:19], table.offsets(ids)[:19])


def test_unseen_ids_get_no_offset(codecs):
    table, _, _ = codecs
    plain = TokenContextCodec(**{k: v for k, v in table._constructor_arguments().items()
                                 if k not in ("table_ids", "table_rows")})
    unseen = np.setdiff1d(np.arange(VOCABULARY), table.table_ids)
    assert unseen.size > 0
    ids = np.resize(unseen, 30)
    assert np.array_equal(table.offsets(ids), plain.offsets(ids))


def test_one_changed_table_entry_changes_the_digest_and_refuses_the_stream(codecs):
    table = codecs[0]
    rows = table.table_rows.copy()
    rows[0, 0] += 1e-9
    other = TokenTableCodec(**{**table._constructor_arguments(), "table_rows": rows})
    assert other.digest != table.digest
    x, ids, _ = id_offset_source(1, 20, seed=8)
    data = table.encode(x[0], input_ids=ids[0])
    with pytest.raises(BitstreamError):
        other.decode(data)
    with pytest.raises(ValueError, match="table_ids"):
        TokenTableCodec(**{**table._constructor_arguments(),
                           "table_ids": table.table_ids[::-1].copy()})
    with pytest.raises(ValueError, match="table_rows"):
        TokenTableCodec(**{**table._constructor_arguments(), "table_rows": rows[:-1]})


def test_save_load_round_trip(codecs, tmp_path):
    table, _, embedding = codecs
    folder = table.save(tmp_path / "codec")
    for loaded in (TokenTableCodec.load(folder, embedding=embedding),
                   load_codec(folder, embedding=embedding)):
        assert type(loaded) is TokenTableCodec and loaded.digest == table.digest
        assert np.array_equal(loaded.table_ids, table.table_ids)
        x, ids, _ = id_offset_source(1, 30, seed=12)
        assert loaded.encode(x[0], input_ids=ids[0]) == table.encode(x[0], input_ids=ids[0])
    with pytest.raises(ValueError, match="embedding"):
        TokenTableCodec.load(folder)
    with pytest.raises(ValueError, match="context-tokens"):
        TokenContextCodec.load(folder, embedding=embedding)  # another kind


def test_rescaled_keeps_the_table(codecs):
    table = codecs[0]
    scaled = table.rescaled(1.5)
    assert isinstance(scaled, TokenTableCodec)
    assert np.array_equal(scaled.table_rows, table.table_rows)


def test_the_recipe_is_registered_as_a_refinement_of_klt_context_tokens():
    r = RECIPES["klt-context-tokens-table"]
    assert r.parent == "klt-context-tokens" and r.needs_token_ids and r.torch_coder
    assert r.codec_class is TokenTableCodec


def test_property_suite_passes(codecs):
    """check_codec with ``input_ids=``: the encoder gets ids that are a fixed function of
    the window length (the codec needs ids at the encoder; the decoder reads them from
    the stream)."""
    from rdgap.testing import PROPERTIES, check_codec

    def ids_for(hidden):
        return torch.arange(np.shape(hidden)[0]) * 7 % VOCABULARY

    # cross-process is left out: a fresh process cannot load the codec without the LM's
    # embedding table, which is not saved with it (by design; save/load is tested above)
    chosen = [p for p in PROPERTIES if p != "cross-process"]
    report = check_codec(codecs[0], properties=chosen, max_examples=4, streams=8,
                         sibling=codecs[1], input_ids=ids_for)
    assert {"round-trip", "determinism", "robustness", "T2-upper",
            "sibling-streams"} <= set(report.checked)


def test_the_recipe_fits_the_table_on_the_statistics_windows_only(tiny_model):
    """Recipe.fit → fit_codec → token_table.fit_model: the table's ids are those of the
    statistics windows (positions ≥ 1), none only the probe windows hold (fitting on the
    probe would flatter the calibration)."""
    from rdgap.codecs.recipes import recipe

    ids, hidden, context = _tokens._tiny_context(tiny_model)
    half = context.hidden.shape[0]
    fitted = recipe("klt-context-tokens-table").fit(context, ids[:half], 0.02)
    codec = fitted.codec
    assert isinstance(codec, TokenTableCodec) and fitted.calibration.met
    assert np.array_equal(codec.table_ids, np.unique(ids[:half, 1:].numpy()))
    assert np.setdiff1d(ids[half:, 1:].numpy(), ids[:half, 1:].numpy()).size > 0
    window, window_ids = hidden[-1], ids[-1]
    assert torch.equal(codec.decode(codec.encode(window, input_ids=window_ids)),
                       codec.reconstruct(window, input_ids=window_ids))
