"""The shift guard on the torch rANS coder (rdgap.codecs.coders.torch_guard): the same
detector chooses the same sub-codec as on the CPU, the window decodes to that sub-codec's
reconstruction, CPU and torch streams are never confused, the rate theorem bounds every
torch stream with both sub-codecs capped, and what has no torch coder is refused by name.

The source and the shift are test_shift_guard.py's (tests/shift_guard_source.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.coders.backend import torch_codec
from rdgap.codecs.coders.container import BitstreamError, header_size, unpack
from rdgap.codecs.coders.torch_guard import TorchShiftGuardedCodec
from rdgap.codecs.quantizers.shift_guard import USE_FALLBACK, USE_PRIMARY, ShiftGuardedCodec
from rdgap.codecs.recipes import recipe
from rdgap.codecs.symbol_zstd import ZstdSymbols

from shift_guard_source import LEVEL, QUIET, TOKENS, shifted
from shift_guard_source import fitted, source  # noqa: F401 (the module's fixtures)


def test_the_same_choice_and_reconstruction_as_the_cpu_codec(fitted, source):
    cpu = fitted.codec
    coder = torch_codec(cpu, lanes=4)
    assert isinstance(coder, TorchShiftGuardedCodec)
    assert coder.codec_id == "sg-klt-context-laplace-rans" and coder.digest != cpu.digest
    other, _ = shifted(cpu.primary, source[2][:4])
    seen = set()
    for window in (*source[2][:4], *other):
        data = coder.encode(window)
        which = unpack(data, coder.codec_id, coder.digest).payload[0]
        assert which == cpu.choose(window)[0]
        seen.add(which)
        sub = cpu.primary if which == USE_PRIMARY else cpu.fallback
        # each torch coder decodes to its CPU model's reconstruction (to float rounding)
        assert torch.allclose(coder.decode(data), sub.reconstruct(window), atol=1e-5)
        assert torch.allclose(coder.decode(data), cpu.decode(cpu.encode(window)), atol=1e-5)
        assert coder.encode(window) == data
        assert coder.estimate_bits(window) == pytest.approx(cpu.estimate_bits(window))
    assert seen == {USE_PRIMARY, USE_FALLBACK}


def test_cpu_and_torch_streams_are_never_confused(fitted, source):
    cpu, window = fitted.codec, source[2][0]
    coder = torch_codec(cpu, lanes=4)
    with pytest.raises(BitstreamError, match="written by codec"):
        coder.decode(cpu.encode(window))
    with pytest.raises(BitstreamError, match="written by codec"):
        cpu.decode(coder.encode(window))


def test_capped_sub_codecs_bound_every_torch_stream(source):
    """Both sub-codecs rate-capped (Recipe.fit's default): every torch stream is at most
    max_s(bound_s − H_s) + H + 1 bytes with the torch sub-coders' own bounds, on ordinary,
    shifted and heavy windows."""
    torch.manual_seed(0)
    capped = recipe("klt-context").fit(source[1], None, LEVEL, shift_guard="gaussian-fisher",
                                       quiet_fraction=QUIET).codec
    coder = torch_codec(capped, lanes=4)
    evaluation = source[2][:4]
    heavy = evaluation.clone()
    heavy[:, 1:] += torch.from_numpy(np.random.default_rng(5).laplace(
        0.0, 8.0, heavy[:, 1:].shape).astype(np.float32))
    other, _ = shifted(capped.primary.base, evaluation)
    bound = coder.stream_bytes_bound(TOKENS)
    own = header_size(coder.codec_id, 2) + 1
    assert bound == max(c.stream_bytes_bound(TOKENS) - header_size(c.codec_id, 2) + own
                        for c in (coder.primary, coder.fallback))
    for window in (*evaluation, *other, *heavy):
        data = coder.encode(window)
        assert len(data) <= bound
        # the cap is decided on the torch stream's own bytes (torch_window), so where it
        # binds the torch coder may pick another factor than the CPU one
        assert torch.allclose(coder.decode(data), coder.reconstruct(window), atol=1e-5)
    for window in (*evaluation, *other):
        assert torch.allclose(coder.decode(coder.encode(window)),
                              capped.decode(capped.encode(window)), atol=1e-5)


def test_what_has_no_torch_coder_is_refused_by_name(fitted):
    cpu = fitted.codec
    no_torch = ShiftGuardedCodec(cpu.primary, ZstdSymbols(cpu.fallback), cpu.detector)
    with pytest.raises(ValueError, match="guarded: its fallback has no torch coder"):
        torch_codec(no_torch)
    coder = torch_codec(cpu, lanes=4)
    with pytest.raises(ValueError, match="guarded: expected a fitted \\(CPU\\)"):
        TorchShiftGuardedCodec(coder)
    with pytest.raises(ValueError, match="folder: a torch-coded shift guard"):
        coder.save("unused")


def test_the_gpu_check_of_the_guard_runs_its_cpu_self_check(fitted, source):
    """benchmarks/gpu_check.py's item 4 with the CPU as the device (its logic, as a lent
    GPU would run it): both paths taken, identical bytes, decodes within tolerance."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("gpu_check", folder / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    report = gpu_check.check_guard(fitted.codec.primary, source[2], torch.device("cpu"))
    assert report["identical_streams"] == report["windows"] == 8
    assert 0 < report["fallback_windows"] < 8
    assert max(report["error_over_tolerance"].values()) <= 1.0


def test_the_property_suite(fitted):
    """check_codec drives the torch-coded guard: round trip, determinism, robustness to
    damaged bytes and crafted headers. T2 is left out: the torch coders' overhead is 64
    flush bits per lane and section, not constriction's (test_torch_context.py checks it
    with those constants); cross-process too: the codec is built from the CPU one."""
    from rdgap.testing import check_codec

    coder = torch_codec(fitted.codec, lanes=4)
    chosen = ["round-trip", "determinism", "robustness", "crafted-headers"]
    report = check_codec(coder, properties=chosen, max_examples=4, streams=8)
    assert {"round-trip", "determinism", "robustness", "crafted-headers"} <= set(report.checked)
