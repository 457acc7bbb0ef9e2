"""T2: rANS length bounds and the table quantization cost, tested three ways.

(1) The numeric bounds equal their lambdified sympy derivations at drawn
parameters. (2) An independent pure-Python rANS, generic in (S, W, P) and in
how it starts, measures every step's growth of ``Φ = log2 x + W·E`` (within
``±ε`` of ``log2(M/f)``) and the exact stream length (inside the bounds).
(3) On synthetic sources with known entropy, every stream of the torch coder
and of constriction's AnsCoder lies inside its bounds (a deterministic
inequality), and the mean rate is within a stated slack of the entropy.
"""

from __future__ import annotations

import math

import constriction
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from rdgap.bounds import rans_length_bounds, table_quantization_cost
from rdgap.codecs.coders import rans_torch as rt
from rdgap.validation.synthetic import DiscreteSource

# ---------------------------------------------------------------- (1) sympy
geometry = st.sampled_from([(63, 32, 16), (63, 32, 24), (64, 32, 24), (32, 16, 12),
                            (32, 8, 8), (48, 16, 16), (64, 16, 16)])


@settings(max_examples=80, deadline=None)
@given(info=st.floats(0.0, 1e7), m=st.integers(0, 10 ** 6), sw_p=geometry,
       lanes=st.integers(1, 64))
def test_length_bounds_match_derivation(closed_form, close, info, m, sw_p, lanes):
    s, w, p = sw_p
    lower, upper, upper_empty = closed_form("rans_length_bounds")(info, m, p, s, w,
                                                                   min(lanes, m))
    b = rans_length_bounds(info, m, p, s, w, lanes=lanes)
    assert close(b.upper, upper) and close(b.lower, max(0.0, float(lower)))
    e = rans_length_bounds(info, m, p, s, w, start="empty")
    assert close(e.upper, upper_empty) and e.lower == 0.0 and e.c0 == math.inf


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), b=st.integers(2, 24))
def test_table_cost_matches_derivation(closed_form, close, seed, b):
    q = np.random.default_rng(seed).dirichlet(np.ones(3))
    f = rt.quantize_table(q, b).numpy()[0]
    assert close(table_quantization_cost(q, f, b), closed_form("table_quantization_cost")(
        *q, *f, b), abs_tol=1e-12)


# ------------------------------------------------- (2) independent scalar rANS
def scalar_rans(symbols, freq, s, w, p, start):
    """Length in bits and the largest |δ| over the normalised steps of a generic rANS."""
    total, lower = 1 << p, 1 << (s - w)
    cum = np.concatenate([[0], np.cumsum(freq)]).tolist()
    x, words, worst = (lower if start == "lower" else 0), 0, 0.0
    for sym in reversed(symbols):
        f, c = int(freq[sym]), cum[sym]
        before = x
        emit = (x >> (s - p)) >= f
        if emit:
            x >>= w
            words += 1
        x = (x // f) * total + x % f + c
        if before >= lower or emit:           # the normalised regime of the proof
            delta = math.log2(x) + w * emit - math.log2(before) - math.log2(total / f)
            worst = max(worst, abs(delta))
    if start == "lower":                      # a lane without symbols is not flushed
        return (w * words + w * -(-s // w) if symbols else 0), worst
    return w * words + w * -(-x.bit_length() // w), worst


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), sw_p=geometry, n=st.integers(0, 400),
       alphabet=st.integers(1, 40), skew=st.sampled_from([0.03, 0.5, 5.0]),
       start=st.sampled_from(["lower", "empty"]))
def test_scalar_rans_steps_and_lengths_obey_bounds(seed, sw_p, n, alphabet, skew, start):
    """Why: each step is the proof's step, measured; the length is the proof's sum."""
    s, w, p = sw_p
    rng = np.random.default_rng(seed)
    freq = rt.quantize_table(rng.dirichlet(np.full(alphabet, skew)), p).numpy()[0]
    symbols = rng.choice(alphabet, size=n, p=freq / freq.sum()).tolist()
    length, worst = scalar_rans(symbols, freq, s, w, p, start)
    info = float(np.log2((1 << p) / freq[symbols]).sum()) if n else 0.0
    b = rans_length_bounds(info, n, p, s, w, start=start)
    assert worst <= b.epsilon_per_symbol * (1 + 1e-9)
    assert b.lower - 1e-6 <= length <= b.upper + 1e-6


def test_empty_start_has_no_lower_constant():
    """The counterexample of the docstring, on constriction itself: symbol 0 (cumulative
    0) pushed on an empty AnsCoder leaves it empty, whatever its probability."""
    model = constriction.stream.model.Categorical(np.array([1e-6, 1 - 1e-6]), perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.zeros(1000, np.int32), model)
    assert len(coder.get_compressed()) == 0
    assert np.all(coder.decode(model, 1000) == 0)


# ------------------------------------------------------- (3) synthetic sources
PMFS = [np.array([0.5, 0.25, 0.125, 0.125]), np.array([0.9] + [0.1 / 9] * 9),
        np.exp(-0.05 * np.arange(200)) / np.exp(-0.05 * np.arange(200)).sum()]
SIGMAS = 5.0      # CLT margin on the mean rate: a false alarm has probability ~6e-7


@pytest.mark.parametrize("pmf", PMFS, ids=["dyadic", "skewed", "geometric200"])
def test_torch_coder_every_stream_inside_bounds(pmf):
    """Why: rans_length_bounds(start="lower") holds for every stream (deterministic), and
    E[L]/m = H + D(p || f/M) + [-ε, ε] + [c1 lower, c1 upper]/m per symbol."""
    source, precision, lanes, streams, m = DiscreteSource(pmf), 16, 8, 64, 2048
    freq = rt.quantize_table(pmf, precision)
    symbols = torch.from_numpy(source.sample((streams, m), np.random.default_rng(5)))
    data = rt.encode(symbols, 0, freq, lanes=lanes)
    assert torch.equal(rt.decode(data, m, 0, freq, lanes=lanes), symbols)
    cost = np.log2((1 << precision) / freq.numpy()[0])
    info = cost[symbols.numpy()].sum(1)
    lengths = np.array([8 * len(d) for d in data])
    bounds = [rans_length_bounds(float(i), m, precision, 63, 32, lanes=lanes) for i in info]
    assert all(b.lower <= n <= b.upper for b, n in zip(bounds, lengths))
    b = bounds[0]
    expected = source.entropy_bits + table_quantization_cost(pmf, freq.numpy()[0], precision)
    sigma = math.sqrt(float(pmf @ cost ** 2 - (pmf @ cost) ** 2) / (m * streams))
    rate = lengths.mean() / m
    assert expected - b.epsilon_per_symbol - b.c0 / m - SIGMAS * sigma <= rate
    assert rate <= expected + b.epsilon_per_symbol + b.c1 / m + SIGMAS * sigma


def probe_constriction_table(model, alphabet: int, precision: int = 24) -> np.ndarray:
    """constriction's integer frequencies, read off its own decoder: from the state
    x = 2^63 + slot one pop gives f·2^(63-P) + slot - c, so f = new >> 39 (P = 24)."""
    shift = 63 - precision
    freq, slot = np.zeros(alphabet, np.int64), 0
    while slot < 1 << precision:          # walk the symbols' slot intervals [c, c + f)
        coder = constriction.stream.stack.AnsCoder(np.array([slot, 1 << 31], np.uint32))
        symbol = int(coder.decode(model, 1)[0])
        low, high = (int(v) for v in coder.get_compressed())
        state = low | high << 32
        f, c = state >> shift, slot - (state & ((1 << shift) - 1))
        assert c == slot and freq[symbol] == 0       # slot is the start of a fresh symbol
        freq[symbol], slot = f, c + f
    return freq


@pytest.mark.parametrize("pmf", PMFS, ids=["dyadic", "skewed", "geometric200"])
def test_constriction_every_stream_inside_bounds(pmf):
    """Why: constriction's AnsCoder is the 'empty' start with S = 64, W = 32, P = 24; with
    I = sum -log2 q + table_quantization_cost(q, f) every stream satisfies L <= upper."""
    source, m = DiscreteSource(pmf), 1024
    model = constriction.stream.model.Categorical(pmf, perfect=False)
    freq = probe_constriction_table(model, len(pmf))
    assert freq.min() >= 1 and freq.sum() == 1 << 24
    rng = np.random.default_rng(9)
    rates = []
    for _ in range(40):
        symbols = source.sample(m, rng).astype(np.int32)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(symbols, model)
        length = 32 * len(coder.get_compressed())
        info_q = float(-np.log2(pmf[symbols]).sum())
        info = info_q + table_quantization_cost(pmf, freq, 24, symbols=symbols)
        assert math.isclose(info, float(np.log2((1 << 24) / freq[symbols]).sum()), rel_tol=1e-9)
        b = rans_length_bounds(info, m, 24, 64, 32, start="empty")
        assert length <= b.upper
        rates.append(length / m)
    cost = np.log2((1 << 24) / freq)
    sigma = math.sqrt(float(pmf @ cost ** 2 - (pmf @ cost) ** 2) / (m * len(rates)))
    expected = source.entropy_bits + table_quantization_cost(pmf, freq, 24)
    assert np.mean(rates) <= expected + b.epsilon_per_symbol + b.c1 / m + SIGMAS * sigma


@pytest.mark.parametrize("call, match", [
    (lambda: rans_length_bounds(-1.0, 1, 16, 63, 32), "information_bits"),
    (lambda: rans_length_bounds(1.0, -1, 16, 63, 32), "num_symbols"),
    (lambda: rans_length_bounds(1.0, 1, 40, 63, 32), "precision"),
    (lambda: rans_length_bounds(1.0, 1, 16, 32, 32), "state_bits"),
    (lambda: rans_length_bounds(1.0, 1, 16, 63, 32, lanes=0), "lanes"),
    (lambda: rans_length_bounds(1.0, 1, 16, 64, 32, lanes=2, start="empty"), "lanes"),
    (lambda: rans_length_bounds(1.0, 1, 16, 63, 32, start="full"), "start"),
    (lambda: table_quantization_cost([0.5, 0.5], [1, 2], 2), "freq"),
    (lambda: table_quantization_cost([0.5, 0.5], [2, 2, 0], 2), "freq"),
    (lambda: table_quantization_cost([-0.5, 0.5], [2, 2], 2), "probabilities"),
    (lambda: table_quantization_cost([0.5, 0.5], [2, 2], 2, symbols=[2]), "symbols"),
    (lambda: table_quantization_cost([[0.5, 0.5]] * 2, [[2, 2]] * 2, 2, symbols=[0]), "tables"),
])
def test_bad_arguments_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), alphabet=st.integers(2, 50), b=st.integers(6, 16))
def test_expected_table_cost_is_a_divergence(seed, alphabet, b):
    """Why: E_q log2(q 2^b / f) = D(q || f/2^b) >= 0 (Gibbs), and it is the mean of the
    per-symbol costs over a large sample (law of large numbers, 6-sigma margin)."""
    rng = np.random.default_rng(seed)
    q = rng.dirichlet(np.ones(alphabet))
    f = rt.quantize_table(q, b).numpy()[0]
    expected = table_quantization_cost(q, f, b)
    assert expected >= -1e-15
    symbols = rng.choice(alphabet, size=20000, p=q)
    per = np.log2(q * 2.0 ** b / f)
    sd = math.sqrt(max(float(q @ per ** 2 - expected ** 2), 0.0) / 20000)
    assert abs(table_quantization_cost(q, f, b, symbols=symbols) / 20000 - expected) <= 6 * sd \
        + 1e-12
