"""T2's proven stream length (validation.stream_length): the table-cost bound against
constriction's own integer tables, and every stream of a fitted codec inside the bound."""

from __future__ import annotations

import constriction
import numpy as np
import pytest

from rdgap.codecs.coders.container import header_size
from rdgap.validation.stream_length import proven_payload_bound, table_cost_bound

from .statistics_data import fitted_codec, gaussian_windows


def constriction_frequencies(probabilities, precision: int = 24) -> np.ndarray:
    """constriction's integer table for ``probabilities``, read off its decoder (one pop
    from the state 2^63 + slot gives f·2^(63 - P) + slot - c)."""
    model = constriction.stream.model.Categorical(probabilities, perfect=False)
    shift = 63 - precision
    freq, slot = np.zeros(len(probabilities), np.int64), 0
    while slot < 1 << precision:
        coder = constriction.stream.stack.AnsCoder(np.array([slot, 1 << 31], np.uint32))
        symbol = int(coder.decode(model, 1)[0])
        low, high = (int(v) for v in coder.get_compressed())
        state = low | high << 32
        f = state >> shift
        freq[symbol], slot = f, slot + f
    return freq


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_table_cost_bound_holds_on_constriction_tables(seed):
    """Why: the proven gate is only proven if tau bounds every entry's log2(p 2^24 / f)."""
    rng = np.random.default_rng(seed)
    p = np.maximum(rng.dirichlet(np.full(40, 0.3)), 2.0 ** -20)
    p /= p.sum()
    freq = constriction_frequencies(p)
    assert freq.sum() == 1 << 24 and freq.min() >= 1
    cost = np.log2(p * 2.0 ** 24 / freq)
    tau = table_cost_bound(p)
    assert cost.max() <= tau
    assert tau < 1e-3          # and small: the table is floored at 2^-20


def test_every_stream_is_inside_the_proven_bound_and_three_percent_low_is_not():
    rng = np.random.default_rng(5)
    fit = gaussian_windows(rng, 40, 64, [1.0, 0.01, 5.0, 0.3])
    codec = fitted_codec(fit, step_factor=0.05)
    cache = {}
    lows = 0
    for window in gaussian_windows(rng, 10, 64, [1.0, 0.01, 5.0, 0.3]):
        payload = 8 * (len(codec.encode(window)) - header_size(codec.codec_id, 2))
        estimate = codec.estimate_bits(window)
        bound = proven_payload_bound(codec, window, estimate, cache)
        assert payload <= bound
        lows += payload > proven_payload_bound(codec, window, 0.97 * estimate, cache)
    assert lows == 10


def test_other_codecs_are_not_bounded_and_bad_tables_are_refused():
    from rdgap.codecs.baselines import Float16Cast

    assert proven_payload_bound(Float16Cast(), None, 1.0) is None
    with pytest.raises(ValueError, match="probabilities"):
        table_cost_bound([1.0])
    with pytest.raises(ValueError, match="probabilities"):
        table_cost_bound([0.5, 0.0, 0.5])


def test_container_mismatch_catches_a_byte_not_counted_and_a_broken_stream():
    from rdgap.validation.stream_length import container_mismatch

    rng = np.random.default_rng(6)
    codec = fitted_codec(gaussian_windows(rng, 10, 16, [1.0, 2.0]))
    data = codec.encode(gaussian_windows(rng, 1, 16, [1.0, 2.0])[0])
    header = header_size(codec.codec_id, 2)
    assert not container_mismatch(data, header)
    assert container_mismatch(data, header - 1) and container_mismatch(data, header + 1)
    assert container_mismatch(data[:-1], header)                 # truncated: does not parse
    assert container_mismatch(b"", header)
