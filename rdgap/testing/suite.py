r"""The property suite: :func:`check_codec` and the base class :class:`CodecPropertyTests`.

Properties, in the order they run (the first that fails raises a
:class:`PropertyViolation`, an ``AssertionError`` whose message starts with the
property's name and holds the numbers and the shrunk input):

``round-trip``
    ``decode(encode(x))`` equals, bit for bit (shape, dtype and bytes), what the
    codec claims to preserve: ``x`` itself when it declares ``lossless``,
    ``reconstruct(x)`` when it declares that, otherwise the decoded tensor must
    survive a second pass (``decode(encode(y)) == y`` for ``y`` the first
    decode). Any exception from ``encode`` or ``decode`` of a valid input fails
    it too. A codec that drops its last byte or decodes one symbol wrong fails
    here.
``determinism``
    ``encode(x)`` and ``encode(copy of x)`` give the same bytes, three times.
``T2-upper``
    ``A ≤ (1 + ε)·E + c1`` for every stream, where ``A`` is the stream's bits
    minus the declared ``header_bits`` and ``E = estimate_bits(x)``
    (THEORY.md T2, hard and per stream). An estimate 10 % low fails here as
    soon as ``0.1·E > ε·E + c1``, i.e. on any stream carrying more than a few
    hundred bits.
``T2-lower``
    ``A ≥ E − c0`` per stream, when ``c0`` (``lower_overhead_bits``) is finite.
    It catches an estimate that is too high. A coder with no lower constant
    (constriction's ``AnsCoder`` starts from an empty state, so
    :func:`rdgap.bounds.rans_length_bounds` with ``start="empty"`` gives
    ``lower = 0``) declares ``c0 = inf`` and is held to ``T2-calibration``.
``robustness``
    Truncated streams, single-bit flips (every bit of the first 32 bytes and
    random bits after), padded, shifted, reversed and foreign bytes make
    ``decode`` raise one of the declared ``decode_errors`` (default
    ``ValueError``; rdgap's codecs raise
    :class:`~rdgap.codecs.container.BitstreamError`) or return exactly the
    original reconstruction. Returning any other tensor, raising another
    exception type, running past ``decode_timeout`` seconds (decode runs in a
    worker thread) or exceeding the memory budget (on Linux an address-space
    limit of ``memory_budget_bytes`` above the current size is set while the
    corrupted streams are decoded) fails. A crash of the interpreter
    (segfault) cannot be caught in-process: run pytest with ``-p faulthandler``
    to see where. A codec that ignores a corrupted header fails here.
``T1-entropy``
    On ``N`` streams of a source with known entropy ``H`` that the codec
    carries exactly, the mean stream length ``L̄`` satisfies
    ``L̄ ≥ H − m·r − log2(2/δ)/N``, with ``m`` i.i.d. units per stream of
    information in ``[0, b]`` and ``r = hoeffding_radius(N·m, δ/2, b,
    one-sided)`` (T8). Proof: streams are self-delimiting (the decoder knows
    where a stream ends, as in any format that states its length), so their
    concatenation is a prefix code for the ``N``-tuple and Kraft gives
    ``P(Σ L_i < Σ ι_i − c) ≤ 2^-c`` with ``ι_i = −log2 p(x_i)``
    (Cover & Thomas §5.11), and Hoeffding over the ``N·m`` independent units
    gives ``mean ι ≥ H − m·r``, each with probability ``≥ 1 − δ/2``. It fails
    with probability at most ``δ`` for an honest codec. The default source
    for a hidden-state codec is small integers as float32; if the codec does
    not carry them exactly and declares no ``entropy_source``, this property
    and the two below are reported as not applicable.
``T2-calibration``
    On the same streams, ``mean(E − A) ≤ ε·mean(E) + calibration_slack_bits``:
    the estimate may not exceed the real bytes by more than the declared
    slack on average. This is the lower side of T2 for coders without ``c0``.
    It is a *working* constant, not a proven one: a coder that starts from an
    empty state has no per-stream lower constant
    (:func:`rdgap.bounds.rans_length_bounds`), but what it saves at the start
    is bounded in practice by a few words (rdgap's factorized codec and the
    constriction example write on average 30–40 bits *more* than the
    estimate), and the default slack is ``c1``. An estimate 10 % high fails
    here as soon as ``0.1·E`` exceeds ``ε·E + slack``; the default sources
    (128 or 256 tokens) carry thousands of bits per stream.
``T3-family``
    For a codec that declares a ``family`` (``"gaussian"``: a factorized
    discretised Gaussian), whose ``entropy_source`` states the family's T3
    bound ``B_G`` per stream (:func:`rdgap.bounds.gaussian_logdet_bound` with
    ``diagonal=True``), ``mean A ≤ (1 + ε)·B_G + c1 + z·s/√N`` with ``s`` the
    sample deviation of ``A`` and ``z = sqrt(2 ln(1/δ))`` (a sub-Gaussian
    allowance, a statistical check rather than a proof).

Examples
--------
>>> import zlib
>>> import numpy as np
>>> def encode(s):                       # int64 symbols, shape and CRC32 in the stream
...     body = np.array(s.shape, "<u4").tobytes() + s.astype("<i8").tobytes()
...     return body + zlib.crc32(body).to_bytes(4, "little")
>>> def decode(data):
...     if len(data) < 12 or zlib.crc32(data[:-4]).to_bytes(4, "little") != data[-4:]:
...         raise ValueError("data: truncated or corrupted stream")
...     shape = tuple(np.frombuffer(data[:8], "<u4"))
...     return np.frombuffer(data[8:-4], "<i8").reshape(shape).astype(np.int64)
>>> report = check_codec(FunctionCodec(encode, decode, input_kind="symbols", lossless=True),
...                      properties=["round-trip", "determinism", "robustness"],
...                      max_examples=8)
>>> print(report.checked)
['round-trip', 'determinism', 'robustness']
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .adapters import FunctionCodec, adapt  # noqa: F401 - FunctionCodec for the example
from .protocol import declarations
from . import strategies as strategies_module

PROPERTIES = ("round-trip", "determinism", "T2-upper", "T2-lower", "robustness",
              "T1-entropy", "T2-calibration", "T3-family")
_STATISTICAL = ("T1-entropy", "T2-calibration", "T3-family")


class PropertyViolation(AssertionError):
    """A property of :func:`check_codec` that a codec breaks.

    Attributes
    ----------
    property : str
        One of :data:`PROPERTIES`.
    """

    def __init__(self, prop: str, message: str):
        super().__init__(f"{prop}: {message}")
        self.property = prop


@dataclass
class Report:
    """What :func:`check_codec` checked.

    Attributes
    ----------
    checked : list of str
        Properties that ran and held.
    not_applicable : dict
        Property → why it does not apply to this codec.
    numbers : dict
        Property → the summary numbers of the statistical properties.
    """

    codec: str
    checked: list = field(default_factory=list)
    not_applicable: dict = field(default_factory=dict)
    numbers: dict = field(default_factory=dict)


# -- helpers ---------------------------------------------------------------------------
def _array(value):
    """A numpy view of a tensor/array/list for bitwise comparison."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        import torch
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.view(torch.int16)
        return value.numpy()
    return np.asarray(value)


def _same(a, b) -> bool:
    try:
        x, y = _array(a), _array(b)
    except (TypeError, ValueError):
        return a == b
    if x.dtype == object or y.dtype == object:
        return bool(np.array_equal(x, y))
    return x.shape == y.shape and x.dtype == y.dtype and \
        np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes()


def _difference(a, b) -> str:
    """Where two outputs differ, with the numbers."""
    try:
        x, y = _array(a), _array(b)
    except (TypeError, ValueError):
        return "they differ"
    if x.shape != y.shape:
        return f"shape {x.shape} instead of {y.shape}"
    if x.dtype != y.dtype:
        return f"dtype {x.dtype} instead of {y.dtype}"
    differ = np.ascontiguousarray(x).view(np.uint8).reshape(x.size, -1) != \
        np.ascontiguousarray(y).view(np.uint8).reshape(y.size, -1) if x.size else np.zeros((0, 1))
    rows = np.flatnonzero(differ.any(axis=1))
    if not rows.size:
        return "they differ"
    where = np.unravel_index(rows[0], x.shape)
    return (f"{rows.size} of {x.size} elements differ, first at index "
            f"{tuple(int(i) for i in where)}: {x[where]!r} instead of {y[where]!r}")


def _describe(x, limit: int = 48) -> str:
    try:
        a = _array(x)
    except (TypeError, ValueError):
        return repr(x)[:400]
    head = f"{type(x).__name__} shape {a.shape} dtype {getattr(x, 'dtype', a.dtype)}"
    if a.size and a.dtype != object:
        head += f", min {a.min():.6g}, max {a.max():.6g}"
    if a.size <= limit:
        return head + "\n    " + np.array2string(a, threshold=limit, precision=6).replace(
            "\n", "\n    ")
    return head + "\n    first values " + np.array2string(a.ravel()[:16], precision=6)


def _copy(x):
    return x.clone() if hasattr(x, "clone") else np.array(x, copy=True)


def _flips(data: bytes, rng: np.random.Generator, head_bytes: int = 32, random_bits: int = 32):
    n = len(data)
    bits = list(range(8 * min(head_bytes, n)))
    if n > head_bytes:
        bits += list(rng.integers(8 * head_bytes, 8 * n, random_bits))
    for bit in bits:
        broken = bytearray(data)
        broken[bit // 8] ^= 1 << (bit % 8)
        yield f"bit {bit} flipped (byte {bit // 8})", bytes(broken)


def _corruptions(data: bytes, rng: np.random.Generator):
    n = len(data)
    cuts = sorted({0, 1, n // 2, max(n - 4, 0), n - 1, *rng.integers(0, max(n, 1), 4).tolist()})
    for cut in cuts:
        if cut < n:
            yield f"truncated to {cut} of {n} bytes", data[:cut]
    yield from _flips(data, rng)
    yield "one zero byte appended", data + b"\0"
    yield "shifted by a 4-byte prefix", b"\0\1\2\3" + data
    yield "bytes reversed", data[::-1]
    yield "foreign: random bytes of the same length", rng.bytes(n)
    yield "foreign: 3 random bytes", rng.bytes(3)
    yield "foreign: a zlib stream", __import__("zlib").compress(rng.bytes(max(n, 8)))


class _Timeout(Exception):
    pass


def _timed(fn, arg, timeout: float):
    result = {}

    def work():
        try:
            result["value"] = fn(arg)
        except BaseException as error:  # noqa: BLE001 - reported to the caller
            result["error"] = error

    thread = threading.Thread(target=work, daemon=True, name="rdgap-decode")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _Timeout()
    if "error" in result:
        raise result["error"]
    return result["value"]


class _AddressLimit:
    """Limit the address space to its current size plus ``budget`` bytes (Linux only)."""

    def __init__(self, budget: int | None):
        self.budget, self.saved = budget, None

    def __enter__(self):
        if not self.budget:
            return self
        try:
            import resource
            with open("/proc/self/status") as status:
                size = next(int(line.split()[1]) * 1024 for line in status
                            if line.startswith("VmSize:"))
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            target = size + self.budget
            if hard != resource.RLIM_INFINITY:
                target = min(target, hard)
            if soft == resource.RLIM_INFINITY or soft > target:
                resource.setrlimit(resource.RLIMIT_AS, (target, hard))
                self.saved = (soft, hard)
        except (ImportError, OSError, StopIteration, ValueError):
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, self.saved)
        return False


# -- the suite ---------------------------------------------------------------------
def check_codec(codec, *, properties=None, max_examples: int = 20, sources: int = 2,
                streams: int = 24, delta: float = 1e-6, decode_timeout: float = 10.0,
                memory_budget_bytes: int | None = 1 << 30, inputs=None,
                derandomize: bool = True) -> Report:
    """Run the property suite of the module docstring on ``codec``.

    Parameters
    ----------
    codec : Codec, HiddenStateCodec or (encode, decode[, estimate_bits])
        Anything :func:`rdgap.testing.adapt` accepts.
    properties : sequence of str, optional
        A subset of :data:`PROPERTIES` (default: all, in order).
    max_examples : int
        Hypothesis examples per per-stream property (robustness uses a quarter).
    sources : int
        Known-entropy sources tried by the statistical properties.
    streams : int
        Streams ``N`` per source.
    delta : float
        Failure probability of each statistical check for an honest codec.
    decode_timeout : float
        Seconds one decode of a corrupted stream may take.
    memory_budget_bytes : int or None
        Extra address space while corrupted streams are decoded (``None``: no limit).
    inputs : hypothesis strategy, optional
        Inputs for the per-stream properties (default: :func:`strategies.hidden_states`
        or :func:`strategies.symbol_tensors` from the codec's declarations).
    derandomize : bool
        Reproducible hypothesis runs (default True).

    Returns
    -------
    Report

    Raises
    ------
    PropertyViolation
        (an ``AssertionError``) naming the first property that fails.
    ValueError, TypeError
        For a bad argument or declaration (the message names it).
    """
    codec = adapt(codec)
    decl = declarations(codec)
    chosen = list(PROPERTIES) if properties is None else list(properties)
    unknown = [p for p in chosen if p not in PROPERTIES]
    if unknown:
        raise ValueError(f"properties: unknown {unknown}; expected some of {list(PROPERTIES)}")
    for name, value in (("max_examples", max_examples), ("sources", sources)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer ≥ 1, got {value!r}")
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 2:
        raise ValueError(f"streams: expected an integer ≥ 2, got {streams!r}")
    if not 0 < delta < 1:
        raise ValueError(f"delta: expected 0 < delta < 1, got {delta!r}")
    if not decode_timeout > 0:
        raise ValueError(f"decode_timeout: expected seconds > 0, got {decode_timeout!r}")
    if inputs is None:
        if decl.input_kind == "symbols":
            inputs = strategies_module.symbol_tensors(decl.symbol_range, decl.channels)
        else:
            inputs = strategies_module.hidden_states(decl.channels)
    report = Report(codec=repr(codec))
    config = settings(max_examples=max_examples, deadline=None, derandomize=derandomize,
                      database=None, report_multiple_bugs=False, print_blob=False,
                      suppress_health_check=list(HealthCheck))
    context = _Context(codec, decl, delta, decode_timeout, memory_budget_bytes)
    statistical_source = None
    for prop in chosen:
        if prop in _STATISTICAL:
            if statistical_source is None:
                statistical_source = context.source_strategy()
            reason = context.not_applicable(prop, statistical_source)
            if reason:
                report.not_applicable[prop] = reason
                continue
            runs = []
            check = given(source=statistical_source, seed=st.integers(0, 2 ** 31))(
                lambda source, seed: runs.append(context.statistical(prop, source, seed, streams)))
            settings(config, max_examples=sources)(check)()
            report.numbers[prop] = runs[-1] if runs else {}
            report.checked.append(prop)
            continue
        reason = context.not_applicable(prop)
        if reason:
            report.not_applicable[prop] = reason
            continue
        examples = max(1, max_examples // 4) if prop == "robustness" else max_examples
        check = given(x=inputs, seed=st.integers(0, 2 ** 31))(
            _bind(context.per_stream, prop))
        settings(config, max_examples=examples)(check)()
        report.checked.append(prop)
    return report


def _bind(method, prop):
    def run(x, seed):
        method(prop, x, seed)
    return run


class _Context:
    def __init__(self, codec, decl, delta, timeout, budget):
        self.codec, self.decl, self.delta = codec, decl, delta
        self.timeout, self.budget = timeout, budget
        self._default_ok = self._estimate_ok = self._hung = None

    # applicability -------------------------------------------------------------
    def not_applicable(self, prop, source_strategy=None) -> str | None:
        d = self.decl
        if prop in ("T2-upper", "T2-lower", "T2-calibration") and not self._has_estimate():
            return "estimate_bits returns None (the codec has no likelihood model)"
        if prop == "T2-lower" and math.isinf(d.lower_overhead_bits):
            return ("the codec declares no lower constant (lower_overhead_bits = inf); "
                    "T2-calibration checks that side")
        if prop in _STATISTICAL and d.entropy_source is None and not self._default_carried():
            return ("decode(encode(x)) differs from x on the default known-entropy source "
                    "(small integers); declare entropy_source() to check it")
        if prop == "T3-family" and d.family is None:
            return "the codec declares no family"
        return None

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

    # per-stream properties --------------------------------------------------------
    def _fail(self, prop, message, x):
        raise PropertyViolation(prop, f"{message}\n  input: {_describe(x)}\n  codec: "
                                      f"{self.codec!r}")

    def _expected(self, x, data):
        d = self.decl
        if d.lossless:
            return x, "x itself (the codec declares lossless)"
        if d.reconstruct is not None:
            return d.reconstruct(x), "reconstruct(x)"
        return None, "the decoded tensor on a second pass (idempotence)"

    def per_stream(self, prop, x, seed):
        codec, d = self.codec, self.decl
        try:
            data = codec.encode(x)
        except Exception as error:  # noqa: BLE001 - any failure on valid input is reported
            self._fail("round-trip", f"encode raised {type(error).__name__}: {error}", x)
        if not isinstance(data, (bytes, bytearray)):
            self._fail("round-trip", f"encode returned {type(data).__name__}, expected bytes", x)
        data = bytes(data)
        if prop == "round-trip":
            expected, what = self._expected(x, data)
            try:
                decoded = codec.decode(data)
                if expected is None:
                    expected = codec.decode(codec.encode(decoded))
            except Exception as error:  # noqa: BLE001
                self._fail(prop, f"decode of the codec's own {len(data)}-byte stream raised "
                                 f"{type(error).__name__}: {error}", x)
            if not _same(decoded, expected):
                self._fail(prop, f"decode(encode(x)) differs from {what}: "
                                 f"{_difference(decoded, expected)}\n  decoded "
                                 f"{_describe(decoded)}\n  expected {_describe(expected)}", x)
        elif prop == "determinism":
            for attempt in range(3):
                again = bytes(codec.encode(_copy(x)))
                if again != data:
                    at = next((i for i, (a, b) in enumerate(zip(data, again)) if a != b),
                              min(len(data), len(again)))
                    self._fail(prop, f"encode gave {len(data)} bytes, then {len(again)} bytes "
                                     f"on call {attempt + 2} for the same input (first "
                                     f"difference at byte {at})", x)
        elif prop in ("T2-upper", "T2-lower"):
            estimate = codec.estimate_bits(x)
            if estimate is None:
                return
            estimate = float(estimate)
            actual = 8.0 * len(data) - d.header_bits
            eps, c1, c0 = d.relative_overhead, d.stream_overhead_bits, d.lower_overhead_bits
            if not math.isfinite(estimate) or estimate < 0:
                self._fail(prop, f"estimate_bits returned {estimate!r}, expected a finite "
                                 f"number ≥ 0", x)
            if prop == "T2-upper" and actual > (1 + eps) * estimate + c1:
                self._fail(prop, f"the stream is longer than T2 allows: actual {actual:.1f} "
                                 f"bits (stream {8 * len(data)} − header {d.header_bits:g}) > "
                                 f"(1 + ε)·estimate + c1 = (1 + {eps:g})·{estimate:.1f} + "
                                 f"{c1:g} = {(1 + eps) * estimate + c1:.1f} bits", x)
            if prop == "T2-lower" and actual < estimate - c0:
                self._fail(prop, f"the stream is shorter than T2 allows: actual {actual:.1f} "
                                 f"bits < estimate − c0 = {estimate:.1f} − {c0:g} = "
                                 f"{estimate - c0:.1f} bits", x)
        elif prop == "robustness":
            self._robustness(x, data, seed)

    def _robustness(self, x, data, seed):
        codec, d = self.codec, self.decl
        try:
            reference = codec.decode(data)
        except Exception as error:  # noqa: BLE001
            self._fail("round-trip", f"decode of the codec's own stream raised "
                                     f"{type(error).__name__}: {error}", x)
        if self._hung is not None:
            # A hang costs the whole timeout each time, so hypothesis does not shrink it:
            # every later example fails at once with the first input that hung.
            self._raise_hung()
        rng = np.random.default_rng(seed)
        allowed = ", ".join(e.__name__ for e in d.decode_errors)
        with _AddressLimit(self.budget):
            for what, broken in _corruptions(data, rng):
                try:
                    out = _timed(codec.decode, broken, self.timeout)
                except _Timeout:
                    self._hung = (f"decode of a stream {what} ran past {self.timeout:g} s\n"
                                  f"  stream: {len(data)} bytes\n  input (the first that "
                                  f"hung; not shrunk): {_describe(x)}\n  codec: {codec!r}")
                    break
                except MemoryError:
                    message = (f"decode of a stream {what} tried to allocate beyond the "
                               f"memory budget of {self.budget} bytes")
                except d.decode_errors:
                    continue
                except BaseException as error:  # noqa: BLE001
                    message = (f"decode of a stream {what} raised {type(error).__name__}: "
                               f"{error}; expected one of ({allowed}) - declare decode_errors "
                               f"if the codec raises another clear error")
                else:
                    if _same(out, reference):
                        continue
                    message = (f"decode of a stream {what} returned a wrong tensor silently "
                               f"instead of raising ({allowed}): {_difference(out, reference)}"
                               f"\n  returned {_describe(out)}")
                self._fail("robustness", f"{message}\n  stream: {len(data)} bytes", x)
        if self._hung is not None:
            self._raise_hung()

    def _raise_hung(self):
        raise PropertyViolation("robustness", self._hung)

    # statistical properties -----------------------------------------------------------
    def statistical(self, prop, source, seed, n):
        codec, d = self.codec, self.decl
        rng = np.random.default_rng(seed)
        lengths, infos, payload, estimates = [], [], [], []
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
            estimates = np.array(estimates)
            shortfall = float(np.mean(estimates - payload))
            allowed = d.relative_overhead * float(estimates.mean()) + d.calibration_slack_bits
            if shortfall > allowed:
                raise PropertyViolation(prop, f"the estimate exceeds the real bytes on average: "
                                              f"mean(estimate − actual) = {shortfall:.1f} bits > "
                                              f"ε·mean(estimate) + slack = "
                                              f"{d.relative_overhead:g}·{estimates.mean():.1f} + "
                                              f"{d.calibration_slack_bits:g} = {allowed:.1f} "
                                              f"bits{where}")
            return {"mean_estimate_bits": float(estimates.mean()),
                    "mean_actual_bits": float(payload.mean()), "allowed_shortfall_bits": allowed}
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


class CodecPropertyTests:
    """Base class for pytest: subclass it as ``Test…`` and define a ``codec`` fixture.

    Each property of :func:`check_codec` becomes one test; a property that does
    not apply to the codec passes and is recorded in the test's user
    properties (``record_property``). Class attributes tune the run:
    ``check_options`` (a dict of :func:`check_codec` keywords).

    Examples
    --------
    ::

        import pytest
        from rdgap.testing import CodecPropertyTests

        class TestMyCodec(CodecPropertyTests):
            @pytest.fixture
            def codec(self):
                return MyCodec()
    """

    check_options: dict = {}

    def _run(self, codec, record_property, *props):
        options = dict(self.check_options)
        report = check_codec(codec, properties=list(props), **options)
        for prop, why in report.not_applicable.items():
            record_property(f"not applicable: {prop}", why)
        return report

    def test_round_trip(self, codec, record_property):
        self._run(codec, record_property, "round-trip")

    def test_determinism(self, codec, record_property):
        self._run(codec, record_property, "determinism")

    def test_t2_bytes_against_estimate(self, codec, record_property):
        self._run(codec, record_property, "T2-upper", "T2-lower")

    def test_robustness(self, codec, record_property):
        self._run(codec, record_property, "robustness")

    def test_known_entropy(self, codec, record_property):
        self._run(codec, record_property, "T1-entropy", "T2-calibration", "T3-family")
