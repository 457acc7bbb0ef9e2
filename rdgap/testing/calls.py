r"""Per-call properties of the suite: ``output-ownership``, ``sibling-streams``, ``robustness``.

:class:`CallProperties` is a mixin of the suite's context: each method gets one
hypothesis input ``x`` and its stream ``data`` and raises a
:class:`~rdgap.testing.PropertyViolation` through ``_fail``.
"""

from __future__ import annotations

import numpy as np

from .compare import copy as _copy
from .compare import describe as _describe
from .compare import difference as _difference
from .compare import same as _same
from .report import PropertyViolation
from .corrupt import AddressLimit, Timeout, corruptions, timed


class CallProperties:
    """Needs ``codec``, ``decl``, ``sibling``, ``timeout``, ``budget``, ``_hung``,
    ``_sibling_differed`` and ``_fail()`` from the suite's context."""

    def _other_inputs(self, x):
        """Inputs of the shape of ``x`` with other values: mirrored in the symbol range (or
        negated), then the token order reversed."""
        if self.decl.input_kind == "symbols":
            lo, hi = self.decl.symbol_range
            yield (lo + hi) - np.asarray(x)
        else:
            yield -_copy(x)
        if hasattr(x, "flip"):
            yield x.flip(0)
        else:
            yield np.ascontiguousarray(np.asarray(x)[::-1])

    def _ownership(self, x, data):
        codec, prop = self.codec, "output-ownership"
        first = codec.decode(data)
        kept = _copy(first)
        for y in self._other_inputs(x):
            try:
                other_data = bytes(codec.encode(y))
                other = codec.decode(other_data)
            except Exception:  # noqa: BLE001 - an input the codec refuses teaches nothing here
                continue
            if not _same(other, kept):
                break
        else:
            return          # every other input decodes like x (e.g. all zeros): no evidence
        if not _same(first, kept):
            self._fail(prop, f"decoding another stream of the same shape changed the result of "
                             f"an earlier decode: {_difference(first, kept)} (the decoder "
                             f"returns a buffer it keeps and overwrites; return a new array)", x)
        expected = _copy(other)
        if _scribble(other):
            again = codec.decode(other_data)
            if not _same(again, expected):
                self._fail(prop, f"writing into a decoded result changed the next decode of the "
                                 f"same stream: {_difference(again, expected)} (decode returns "
                                 f"an object it keeps, e.g. a cache; return a copy)", x)

    def _sibling_streams(self, x, data):
        codec, sibling, prop = self.codec, self.sibling, "sibling-streams"
        allowed = ", ".join(e.__name__ for e in self.decl.decode_errors)
        try:
            foreign = bytes(sibling.encode(x))
        except Exception as error:  # noqa: BLE001
            self._fail(prop, f"the sibling's encode raised {type(error).__name__}: {error} (the "
                             f"sibling must be the same codec fitted differently)", x)
        if foreign == data:
            return
        self._sibling_differed = True
        for writer, reader, stream, who in ((sibling, codec, foreign, "the sibling's stream"),
                                            (codec, sibling, data, "the codec's stream")):
            expected = writer.decode(stream)
            try:
                out = reader.decode(stream)
            except self.decl.decode_errors:
                continue
            except Exception as error:  # noqa: BLE001
                self._fail(prop, f"decode of {who} by the other fitting raised "
                                 f"{type(error).__name__}: {error}; expected one of ({allowed})", x)
            if not _same(out, expected):
                self._fail(prop, f"the other fitting decoded {who} ({len(stream)} bytes, valid "
                                 f"checksum) into a different tensor silently instead of raising "
                                 f"({allowed}): {_difference(out, expected)} (write a fingerprint "
                                 f"of the tables into the stream and check it)", x)

    def _robustness(self, x, data, seed):
        codec, d = self.codec, self.decl
        try:
            # a copy: a decoder that reuses its output buffer must not compare against itself
            reference = _copy(codec.decode(data))
        except Exception as error:  # noqa: BLE001
            self._fail("round-trip", f"decode of the codec's own stream raised "
                                     f"{type(error).__name__}: {error}", x)
        if self._hung is not None:
            # A hang costs the whole timeout each time, so hypothesis does not shrink it:
            # every later example fails at once with the first input that hung.
            self._raise_hung()
        rng = np.random.default_rng(seed)
        allowed = ", ".join(e.__name__ for e in d.decode_errors)
        with AddressLimit(self.budget):
            for what, broken in corruptions(data, rng):
                try:
                    out = timed(codec.decode, broken, self.timeout)
                except Timeout:
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


def _scribble(value) -> bool:
    """Overwrite a decoded result in place (NaN for floats, +1 for integers); False when it
    cannot be written (read-only, or not an array), which is ownership too."""
    try:
        if hasattr(value, "detach") and hasattr(value, "fill_"):
            import torch
            with torch.no_grad():
                if value.is_floating_point():
                    value.fill_(float("nan"))
                elif value.dtype == torch.bool:
                    value.logical_not_()
                else:
                    value.add_(1)
            return True
        if isinstance(value, np.ndarray) and value.flags.writeable and value.size:
            if value.dtype.kind == "f":
                value.fill(np.nan)
            elif value.dtype.kind == "b":
                np.logical_not(value, out=value)
            else:
                np.add(value, 1, out=value, casting="unsafe")
            return True
    except (RuntimeError, ValueError, TypeError):
        return False
    return False
