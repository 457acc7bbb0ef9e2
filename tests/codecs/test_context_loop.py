"""One implementation of the joint models' causal loop and table indices
(:mod:`rdgap.codecs.entropy_models.context_loop`), run by both coders: the CPU codec
(constriction) and the torch rANS coder read the same sections and reconstruct the same
bits, and a change to the shared loop changes both."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rdgap.codecs.coders import ans
from rdgap.codecs.coders.sections import grouped_columns
from rdgap.codecs.coders.torch_context import TorchContextCodec
from rdgap.codecs.entropy_models import context_loop
from rdgap.codecs.entropy_models.context import MAX_INDEX, MIN_INDEX


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(f"_context_loop_{name}",
                                                  Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_context, _tokens = _sibling("test_context"), _sibling("test_token_context")


@pytest.fixture(scope="module")
def context():
    model = _context.fitted(_context.scaled_tokens(8, 64, seed=0), groups=2)[0]
    return model, TorchContextCodec(model, lanes=4)


@pytest.fixture(scope="module")
def tokens():
    model = _tokens.fitted(lags=(0, 1), groups=2)[0]
    return model, TorchContextCodec(model, lanes=8)


def test_both_coders_reconstruct_the_same_bits(context, tokens):
    """On this CPU the two coders run the same loop in float64: decoded windows are
    equal bit for bit (not only to float rounding), one-token windows included."""
    model, codec = context
    x = _context.scaled_tokens(3, 40, seed=5)
    x[1, 7, 2] = 2e6  # an escape
    for n in (40, 2, 1):
        batch = codec.decode_batch(codec.encode_batch(x[:, :n]))
        for b in range(len(x)):
            assert torch.equal(model.decode(model.encode(x[b, :n])), batch[b])
    model, codec = tokens
    h, ids, _ = _tokens.embedded_tokens(2, 30, seed=4)
    batch, batch_ids = codec.decode_batch_with_ids(codec.encode_batch(h, ids))
    for b in range(len(h)):
        decoded, decoded_ids = model.decode_with_ids(model.encode(h[b], input_ids=ids[b]))
        assert torch.equal(decoded, batch[b]) and torch.equal(decoded_ids, batch_ids[b])


def test_both_coders_write_the_models_sections(context):
    """The constriction columns are the model's sections grouped by table row, and the
    torch coder writes the same (values, rows)."""
    model, codec = context
    x = _context.scaled_tokens(1, 20, seed=2)
    q = codec.quantize(x)
    sections = model.sections(q.first, q.side, q.symbols)
    for (values, rows), (v, r) in zip(sections, codec.sections(q)):
        assert torch.equal(values, v) and torch.equal(rows, r)
    columns, tables = grouped_columns(sections, model.section_tables())
    body = sections[1][1]
    assert int(body.min()) >= 0 and int(body.max()) <= MAX_INDEX - MIN_INDEX
    assert sum(c.size for c in columns) == sum(v.numel() for v, _ in sections)
    assert model.estimate_bits(x[0]) == pytest.approx(ans.estimate_bits(columns, tables))


def test_a_change_to_the_shared_loop_changes_both_coders(context, monkeypatch):
    """Defect injection: perturb the one prediction m_t = b + W Ẑ_{t−1}; both coders'
    symbols move (neither keeps a private copy of the loop)."""
    model, codec = context
    x = _context.scaled_tokens(1, 30, seed=8)
    cpu_before = model.encode(x[0])
    torch_before = codec.quantize(x).symbols.clone()
    original = context_loop.CausalLoop.predict

    def shifted(self, previous):
        return original(self, previous) + 3.0 * self.step

    monkeypatch.setattr(context_loop.CausalLoop, "predict", shifted)
    assert model.encode(x[0]) != cpu_before
    assert not torch.equal(codec.quantize(x).symbols, torch_before)


def test_a_change_to_the_table_index_rule_changes_both_coders(context, monkeypatch):
    """Defect injection: shift the one table-index rule; both coders' rows move."""
    model, codec = context
    x = _context.scaled_tokens(1, 30, seed=9)
    q = codec.quantize(x)
    cpu_rows = model.sections(q.first, q.side, q.symbols)[1][1].clone()
    torch_rows = codec.sections(q)[1][1].clone()
    original = context_loop.table_indices
    monkeypatch.setattr(context_loop, "table_indices",
                        lambda *a: (original(*a) + 1).clip(MIN_INDEX, MAX_INDEX))
    monkeypatch.setattr("rdgap.codecs.entropy_models.context.table_indices",
                        context_loop.table_indices)
    assert not torch.equal(model.sections(q.first, q.side, q.symbols)[1][1], cpu_rows)
    assert not torch.equal(codec.sections(q)[1][1], torch_rows)


def test_table_indices_are_the_same_rule_for_numpy_and_torch():
    base = np.array([-50, 0, 3, 60, 10], dtype=np.int64)
    group_of = np.array([0, 0, 1, 1, 1])
    side = np.array([[[-12, 12], [0, -3]]], dtype=np.int64)
    expected = np.clip(base + 2 * side[..., group_of], MIN_INDEX, MAX_INDEX)
    assert np.array_equal(context_loop.table_indices(base, group_of, side), expected)
    got = context_loop.table_indices(torch.from_numpy(base), torch.from_numpy(group_of),
                                     torch.from_numpy(side))
    assert np.array_equal(got.numpy(), expected)


def test_one_thread_keeps_the_streams_and_restores_the_thread_count(context):
    """The CPU codec runs its batch-of-one calls on one torch thread (context_loop.one_thread,
    for speed): the streams and reconstructions are those of the same calls on the
    caller's threads, and the caller's thread count is restored (also after an error)."""
    from rdgap.codecs.entropy_models.context import ContextCodec

    model, _ = context
    x = _context.scaled_tokens(2, 300, seed=8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for window in x:
            plain = ContextCodec._encode_payload.__wrapped__(model, window)
            assert model._encode_payload(window) == plain
            first, result, recon = ContextCodec._code.__wrapped__(model, window)  # 2 threads
            one = model._code(window)
            assert np.array_equal(one[0], first) and torch.equal(one[2], recon)
            assert np.array_equal(one[1].symbols, result.symbols)
            assert np.array_equal(one[1].side, result.side)
        seen = []
        counted = context_loop.one_thread(lambda: seen.append(torch.get_num_threads()))
        counted()
        assert seen == [1] and torch.get_num_threads() == 2

        def fails():
            raise RuntimeError("inside")
        with pytest.raises(RuntimeError, match="inside"):
            context_loop.one_thread(fails)()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
