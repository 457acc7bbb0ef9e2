r"""The statistical properties of the suite: ``T1-entropy``, ``T2-calibration``, ``T3-family``.

:class:`StatisticalProperties` (a mixin of the suite's context) builds the
known-entropy sources (the codec's ``entropy_source`` or small integers that it
carries exactly) and checks one source over ``N`` streams; the statistics and
their error probabilities are stated in :mod:`rdgap.testing.suite`.
"""

from __future__ import annotations

import math

import numpy as np

from .compare import describe as _describe
from .compare import same as _same
from .report import PropertyViolation
from hypothesis import strategies as st

from . import strategies as strategies_module


class StatisticalProperties:
    """Needs ``codec``, ``decl``, ``delta``, ``_default_ok`` and ``_estimate_ok`` from the
    suite's context."""

    def _probe(self):
        source = self._default_source(16, 4, "gaussian")
        return source.encodable(source.sample(np.random.default_rng(0)))

    def _has_estimate(self) -> bool:
        if self._estimate_ok is None:
            try:
                self._estimate_ok = self.codec.estimate_bits(self._probe()) is not None
            except Exception:  # noqa: BLE001 - an estimate that fails is checked per stream
                self._estimate_ok = True
        return self._estimate_ok

    def _default_carried(self) -> bool:
        if self._default_ok is None:
            x = self._probe()
            try:
                self._default_ok = _same(self.codec.decode(self.codec.encode(x)), x)
            except Exception:  # noqa: BLE001 - not carried: the property does not apply
                self._default_ok = False
        return self._default_ok

    def _embed(self):
        if self.decl.input_kind == "symbols":
            return None
        import torch
        return lambda s: torch.from_numpy(s.astype(np.float32))

    def _symbol_range(self):
        """Up to 33 symbols of the codec's range, around 0 when the range holds it."""
        if self.decl.input_kind == "hidden":
            return -16, 16
        lo, hi = self.decl.symbol_range
        start = max(lo, min(-16, hi - 32))
        return start, min(hi, start + 32)

    def _default_source(self, tokens, channels, dist):
        lo, hi = self._symbol_range()
        law = strategies_module.truncated_scalar(dist, 3.0, lo, hi)
        return strategies_module.KnownEntropySource.iid(
            law, tokens, self.decl.channels or channels, embed=self._embed(),
            name=f"iid {dist}(scale=3) on {lo}..{hi}")

    def source_strategy(self):
        if self.decl.entropy_source is not None:
            return st.just(self.decl.entropy_source())
        lo, hi = self._symbol_range()
        return strategies_module.known_entropy_sources(
            tokens=None, channels=self.decl.channels, symbol_range=(lo, hi), embed=self._embed())

    def statistical(self, prop, source, seed, n):
        codec, d = self.codec, self.decl
        rng = np.random.default_rng(seed)
        lengths, infos, payload, estimates, short = [], [], [], [], []
        for _ in range(n):
            symbols = source.sample(rng)
            x = source.encodable(symbols)
            try:
                data = bytes(codec.encode(x))
                decoded = codec.decode(data)
            except Exception as error:  # noqa: BLE001 - reported with the property's name
                raise PropertyViolation(prop, f"coding a stream of the known-entropy source "
                                              f"{source.name} raised {type(error).__name__}: "
                                              f"{error}\n  input: {_describe(x)}") from None
            if not _same(decoded, x):
                raise PropertyViolation(prop, f"the known-entropy source {source.name} is not "
                                              f"carried exactly: decode(encode(x)) != x, so "
                                              f"its entropy does not bound the rate\n  input: "
                                              f"{_describe(x)}")
            lengths.append(8.0 * len(data))
            infos.append(source.information_bits(symbols))
            payload.append(8.0 * len(data) - d.header_bits)
            if prop == "T2-calibration":
                estimates.append(float(codec.estimate_bits(x)))
                short_x = x[:max(1, len(x) // 8)]
                short.append((float(codec.estimate_bits(short_x)),
                              8.0 * len(codec.encode(short_x)) - d.header_bits))
        lengths, payload = np.array(lengths), np.array(payload)
        where = f"\n  source: {source.name} (seed {seed}, N = {n} streams)\n  codec: {codec!r}"
        if prop == "T1-entropy":
            from rdgap.bounds import hoeffding_radius
            units = source.units
            radius = units * hoeffding_radius(n * units, self.delta / 2, source.unit_bound_bits,
                                              two_sided=False)
            kraft = math.log2(2 / self.delta) / n
            floor = source.entropy_bits - radius - kraft
            numbers = {"mean_bits": float(lengths.mean()), "entropy_bits": source.entropy_bits,
                       "radius_bits": radius, "kraft_bits": kraft}
            if lengths.mean() < floor:
                raise PropertyViolation(prop, f"the codec beats the entropy: mean stream "
                                              f"{lengths.mean():.1f} bits < H − m·r − "
                                              f"log2(2/δ)/N = {source.entropy_bits:.1f} − "
                                              f"{radius:.1f} − {kraft:.2f} = {floor:.1f} bits "
                                              f"(δ = {self.delta:g}; mean −log2 p(x) = "
                                              f"{np.mean(infos):.1f}){where}")
            return numbers
        if prop == "T2-calibration":
            numbers = {}
            for label, e, a in (("full", np.array(estimates), payload),
                                ("short", *(np.array(v) for v in zip(*short)))):
                shortfall = float(np.mean(e - a))
                allowed = d.relative_overhead * float(e.mean()) + d.calibration_slack_bits
                numbers[label] = {"mean_estimate_bits": float(e.mean()),
                                  "mean_actual_bits": float(a.mean()),
                                  "mean_shortfall_bits": shortfall,
                                  "allowed_shortfall_bits": allowed}
                if shortfall > allowed:
                    size = "streams" if label == "full" else \
                        "streams of the first eighth of the tokens"
                    raise PropertyViolation(prop, f"the estimate exceeds the real bytes on "
                                                  f"average over {n} {size}: mean(estimate − "
                                                  f"actual) = {shortfall:.1f} bits > ε·mean("
                                                  f"estimate) + slack = {d.relative_overhead:g}·"
                                                  f"{e.mean():.1f} + {d.calibration_slack_bits:g}"
                                                  f" = {allowed:.1f} bits{where}")
            numbers.update({k: numbers["full"][k] for k in ("mean_estimate_bits",
                                                            "mean_actual_bits",
                                                            "allowed_shortfall_bits")})
            return numbers
        bound = source.family_bound_bits
        if bound is None:
            raise PropertyViolation(prop, f"the codec declares family {d.family!r} but its "
                                          f"entropy_source states no family_bound_bits{where}")
        z = math.sqrt(2 * math.log(1 / self.delta))
        ceiling = (1 + d.relative_overhead) * bound + d.stream_overhead_bits + \
            z * float(payload.std(ddof=1)) / math.sqrt(n)
        if payload.mean() > ceiling:
            raise PropertyViolation(prop, f"the mean payload {payload.mean():.1f} bits exceeds "
                                          f"the {d.family} family's T3 bound: (1 + ε)·"
                                          f"{bound:.1f} + c1 + z·s/√N = {ceiling:.1f} bits "
                                          f"(entropy {source.entropy_bits:.1f}){where}")
        return {"mean_payload_bits": float(payload.mean()), "family_bound_bits": bound,
                "ceiling_bits": ceiling, "entropy_bits": source.entropy_bits}
